//! Registration and password login, with legacy hash upgrade and audit events.

mod common;

use portcullis::audit::{AuditKind, RecordedEvents};
use portcullis::flows::{PasswordLogin, RegisterError, Registration};
use portcullis::sign_in::Refusal;
use portcullis::store::{NewUser, SqliteStore, UserUpdate};
use portcullis::{Auth, PasswordPolicy, Passwords, PolicyViolation};

struct Fixture {
    auth: Auth,
    login: PasswordLogin,
    events: RecordedEvents,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .unwrap();
    let events = RecordedEvents::new();
    let auth = Auth::builder(store).events(events.clone()).build();
    let passwords = Passwords::new(PasswordPolicy::default().deny(["password123"]));
    let login = PasswordLogin::new(&auth, &passwords);
    Fixture {
        auth,
        login,
        events,
        _dir: dir,
    }
}

fn kinds(events: &RecordedEvents) -> Vec<AuditKind> {
    events.events().into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn registration_hashes_with_argon2id_and_enforces_the_policy() {
    let f = fixture().await;
    let ada = f
        .login
        .register(Registration::new("ada", "correct horse").email("ada@example.com"))
        .await
        .unwrap();
    let stored = ada.password_hash.as_deref().unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert!(!stored.contains("correct horse"));
    assert!(matches!(
        f.login.register(Registration::new("bob", "short")).await,
        Err(RegisterError::Policy(PolicyViolation::TooShort { min: 8 }))
    ));
    assert!(matches!(
        f.login
            .register(Registration::new("bob", "PASSWORD123"))
            .await,
        Err(RegisterError::Policy(PolicyViolation::Denied))
    ));
    assert!(matches!(
        f.login
            .register(Registration::new("ADA", "correct horse"))
            .await,
        Err(RegisterError::Taken("username"))
    ));
    assert!(matches!(
        f.login
            .register(Registration::new("carol", "correct horse").email("ADA@example.com"))
            .await,
        Err(RegisterError::Taken("email"))
    ));
    assert_eq!(kinds(&f.events), [AuditKind::UserRegistered]);
}

#[tokio::test]
async fn owasp_asvs_6_3_8_unknown_user_and_wrong_password_fail_the_same_way() {
    let f = fixture().await;
    f.login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    assert!(matches!(
        common::sign_in_with_password(&f.login, "ada", "wrong horse", None).await,
        Err(Refusal::InvalidCredentials)
    ));
    assert!(matches!(
        common::sign_in_with_password(&f.login, "nobody", "wrong horse", None).await,
        Err(Refusal::InvalidCredentials)
    ));
    let failures: Vec<_> = f
        .events
        .events()
        .into_iter()
        .filter(|e| e.kind == AuditKind::LoginFailed)
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures.iter().all(|e| e.user_id.is_none()),
        "failed logins do not say whom they targeted"
    );
}

#[tokio::test]
async fn login_records_last_login_and_refuses_inactive_accounts() {
    let f = fixture().await;
    let ada = f
        .login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    assert_eq!(ada.last_login, None);
    let logged_in = common::sign_in_with_password(&f.login, "ADA", "correct horse", None)
        .await
        .unwrap();
    assert!(logged_in.last_login.is_some());
    f.auth
        .update_user(ada.id, UserUpdate::default().active(false))
        .await
        .unwrap();
    assert!(matches!(
        common::sign_in_with_password(&f.login, "ada", "correct horse", None).await,
        Err(Refusal::Inactive)
    ));
    assert!(matches!(
        common::sign_in_with_password(&f.login, "ada", "wrong horse", None).await,
        Err(Refusal::InvalidCredentials)
    ));
}

#[tokio::test]
async fn accounts_without_a_password_cannot_log_in_with_one() {
    let f = fixture().await;
    f.auth
        .users()
        .create_user(NewUser::new("sso-only"), f.auth.now())
        .await
        .unwrap();
    assert!(matches!(
        common::sign_in_with_password(&f.login, "sso-only", "", None).await,
        Err(Refusal::InvalidCredentials)
    ));
    assert!(matches!(
        common::sign_in_with_password(&f.login, "sso-only", "anything", None).await,
        Err(Refusal::InvalidCredentials)
    ));
}

#[tokio::test]
async fn a_legacy_passlib_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
    let f = fixture().await;
    // Written by passlib 1.7.4 + bcrypt 4.0.1 (Semantik's CryptContext(schemes=["bcrypt"])).
    let legacy = "$2b$12$f7wazk1lkXzPSU50sx3pv.cq5C8ZJCUHUTG51Aqk0pw4P7RD6XKC2";
    let user = f
        .auth
        .users()
        .create_user(NewUser::new("legacy").password_hash(legacy), f.auth.now())
        .await
        .unwrap();
    assert!(matches!(
        common::sign_in_with_password(&f.login, "legacy", "secret124", None).await,
        Err(Refusal::InvalidCredentials)
    ));
    let upgraded = common::sign_in_with_password(&f.login, "legacy", "secret123", None)
        .await
        .unwrap();
    let hash = upgraded.password_hash.as_deref().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(kinds(&f.events).contains(&AuditKind::PasswordRehashed));
    // The new hash works; the stored record no longer holds the bcrypt hash.
    common::sign_in_with_password(&f.login, "legacy", "secret123", None)
        .await
        .unwrap();
    let stored = f.auth.users().user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, upgraded.password_hash);
}

#[tokio::test]
async fn a_corrupt_stored_hash_fails_closed() {
    let f = fixture().await;
    f.auth
        .users()
        .create_user(
            NewUser::new("broken").password_hash("not-a-hash"),
            f.auth.now(),
        )
        .await
        .unwrap();
    assert!(matches!(
        common::sign_in_with_password(&f.login, "broken", "not-a-hash", None).await,
        Err(Refusal::InvalidCredentials)
    ));
}

#[tokio::test]
async fn stored_events_keep_an_admin_log_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn portcullis::store::Store> = std::sync::Arc::new(
        SqliteStore::connect(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap(),
    );
    let auth = Auth::builder(store.clone())
        .events(portcullis::audit::StoredEvents::new(store.clone()))
        .build();
    let login = PasswordLogin::new(&auth, &Passwords::new(PasswordPolicy::default()));
    let ada = login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    common::sign_in_with_password(&login, "ada", "correct horse", None)
        .await
        .unwrap();
    let _ = common::sign_in_with_password(&login, "ada", "wrong horse", None).await;
    let kinds: Vec<AuditKind> = store
        .events(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            AuditKind::LoginFailed,
            AuditKind::LoginSucceeded,
            AuditKind::UserRegistered
        ]
    );
    assert_eq!(store.events(Some(ada.id), 10).await.unwrap().len(), 2);
}
