//! `flows::OidcSignIn` against a real OpenID Connect provider (npm `oidc-provider`, started by
//! `tests/oidc/provider.mjs`), on a real SQLite file: accounts found by `(issuer, subject)`,
//! linked by a verified address as the policy says, created, or refused; and the callbacks a
//! sign-in must refuse (replayed, from another browser, with an error).

mod common;

use http::HeaderMap;
use portcullis::flows::{Callback, EmailLinking, OidcConfig, OidcError, OidcSignIn};
use portcullis::redirect::LocalRedirect;
use portcullis::sign_in::SignInOutcome;
use portcullis::store::{NewUser, SqliteStore, User};
use portcullis::token::CodeKey;
use portcullis::{Auth, OneTimeSecrets, Secret};

const CLIENT: &str = "portcullis-test";
const SECRET: &str = "portcullis-test-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/auth/redirect";

struct Fixture {
    auth: Auth,
    oidc: OidcSignIn,
    provider: common::OidcProvider,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Option<Fixture> {
    let provider = common::oidc_provider(CLIENT, SECRET, REDIRECT).await?;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("oidc.db").display());
    let auth = Auth::builder(SqliteStore::connect(&url).await.unwrap()).build();
    let secrets = OneTimeSecrets::new(&auth, CodeKey::new(&[5; 32]).unwrap());
    let config = OidcConfig::new(
        &provider.issuer,
        CLIENT,
        Some(Secret::new(SECRET)),
        REDIRECT,
    );
    let oidc = OidcSignIn::discover(&auth, &secrets, config).await.unwrap();
    Some(Fixture {
        auth,
        oidc,
        provider,
        _dir: dir,
    })
}

/// A begun sign-in: the browser's cookie, and the provider's callback for `login`.
struct RoundTrip {
    cookie: HeaderMap,
    callback: Callback,
}

impl Fixture {
    async fn round_trip(&self, oidc: &OidcSignIn, login: &str) -> RoundTrip {
        let next = LocalRedirect::parse("/settings").unwrap();
        let authorization = oidc.begin(Some(&next)).await.unwrap();
        let set_cookie = authorization.cookie.to_str().unwrap();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
        let url = &authorization.url;
        for part in [
            "code_challenge_method=S256",
            "state=",
            "nonce=",
            "scope=openid",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        let callback_url = self.provider.sign_in(url, login).await;
        assert!(callback_url.starts_with(REDIRECT), "{callback_url}");
        let query = callback_url.split_once('?').unwrap().1;
        let mut callback = Callback::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "code" => callback.code = Some(value.into_owned()),
                "state" => callback.state = Some(value.into_owned()),
                "error" => callback.error = Some(value.into_owned()),
                _ => {}
            }
        }
        let mut cookie = HeaderMap::new();
        let pair = set_cookie.split(';').next().unwrap();
        cookie.insert("cookie", pair.parse().unwrap());
        RoundTrip { cookie, callback }
    }

    async fn sign_in(&self, oidc: &OidcSignIn, login: &str) -> Result<User, OidcError> {
        let trip = self.round_trip(oidc, login).await;
        let completed = oidc.finish(&trip.cookie, &trip.callback).await?;
        assert_eq!(completed.next.as_str(), "/settings");
        match completed.outcome {
            SignInOutcome::SignedIn(signed_in) => Ok(signed_in.user().clone()),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_new_identity_gets_an_account_and_signs_in_to_it_again() {
    let Some(f) = fixture().await else { return };
    let ada = f.sign_in(&f.oidc, "ada@example.com").await.unwrap();
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert!(ada.email_verified);
    assert_eq!(ada.full_name.as_deref(), Some("Person ada@example.com"));
    let linked = f.auth.users().identities_of(ada.id).await.unwrap();
    assert_eq!(
        linked
            .iter()
            .map(|i| (i.issuer.as_str(), i.subject.as_str()))
            .collect::<Vec<_>>(),
        [(f.provider.issuer.as_str(), "ada@example.com")]
    );
    let again = f.sign_in(&f.oidc, "ada@example.com").await.unwrap();
    assert_eq!(again.id, ada.id);
    assert_eq!(f.auth.users().count_users().await.unwrap(), 1);
}

async fn existing(f: &Fixture, email: &str, verified: bool) -> User {
    let user = NewUser::new(email)
        .email(email)
        .email_verified(verified)
        .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    f.auth
        .users()
        .create_user(user, f.auth.now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_verified_address_links_the_account_that_holds_it_by_default() {
    let Some(f) = fixture().await else { return };
    let grace = existing(&f, "grace@example.com", true).await;
    let signed_in = f.sign_in(&f.oidc, "grace@example.com").await.unwrap();
    assert_eq!(signed_in.id, grace.id);
    assert_eq!(
        f.auth.users().identities_of(grace.id).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_account_that_never_verified_its_address_is_taken_over_with_its_password_gone() {
    let Some(f) = fixture().await else { return };
    let squatted = existing(&f, "linus@example.com", false).await;
    let signed_in = f.sign_in(&f.oidc, "linus@example.com").await.unwrap();
    assert_eq!(signed_in.id, squatted.id);
    assert!(signed_in.email_verified);
    let stored = f
        .auth
        .users()
        .user_by_id(squatted.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.password_hash, None,
        "the squatter's password is gone"
    );
}

#[tokio::test]
async fn the_linking_policy_can_refuse_or_keep_accounts_apart() {
    let Some(f) = fixture().await else { return };
    let held = existing(&f, "barbara@example.com", true).await;
    let refusing = f.oidc.clone().linking(EmailLinking::Refuse);
    let refused = f.sign_in(&refusing, "barbara@example.com").await;
    assert!(
        matches!(refused, Err(OidcError::AccountExists)),
        "{refused:?}"
    );
    let apart = f.oidc.clone().linking(EmailLinking::SeparateAccount);
    let separate = f.sign_in(&apart, "barbara@example.com").await.unwrap();
    assert_ne!(separate.id, held.id);
    assert_eq!(separate.email, None, "the address stays with its account");
    // Linked now: the same identity finds the separate account whatever the policy.
    assert_eq!(
        f.sign_in(&f.oidc, "barbara@example.com").await.unwrap().id,
        separate.id
    );
}

#[tokio::test]
async fn an_address_the_provider_did_not_verify_never_links_an_account() {
    let Some(f) = fixture().await else { return };
    existing(&f, "mallory@example.com", true).await;
    let refused = f.sign_in(&f.oidc, "unverified.mallory@example.com").await;
    assert!(
        matches!(refused, Err(OidcError::AccountExists)),
        "{refused:?}"
    );
    let fresh = f
        .sign_in(&f.oidc, "unverified.eve@example.com")
        .await
        .unwrap();
    assert_eq!(fresh.email.as_deref(), Some("eve@example.com"));
    assert!(
        !fresh.email_verified,
        "kept as the provider said: unverified"
    );
}

#[tokio::test]
async fn without_account_creation_an_unknown_identity_is_refused() {
    let Some(f) = fixture().await else { return };
    let closed = f.oidc.clone().create_users(false);
    let refused = f.sign_in(&closed, "stranger@example.com").await;
    assert!(matches!(refused, Err(OidcError::NoAccount)), "{refused:?}");
    assert_eq!(f.auth.users().count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn replayed_cross_browser_and_refused_callbacks_sign_nobody_in() {
    let Some(f) = fixture().await else { return };
    // Another browser (no cookie, or another sign-in's): RFC 9700 §4.7, login CSRF.
    let trip = f.round_trip(&f.oidc, "ada@example.com").await;
    let other = f.round_trip(&f.oidc, "ada@example.com").await;
    for cookie in [HeaderMap::new(), other.cookie.clone()] {
        let result = f.oidc.finish(&cookie, &trip.callback).await;
        assert!(matches!(result, Err(OidcError::StateInvalid)), "{result:?}");
    }
    // The state was spent by the first try: the right browser cannot use it afterwards.
    let late = f.oidc.finish(&trip.cookie, &trip.callback).await;
    assert!(matches!(late, Err(OidcError::StateInvalid)), "{late:?}");
    // A callback completes once.
    f.oidc.finish(&other.cookie, &other.callback).await.unwrap();
    let replay = f.oidc.finish(&other.cookie, &other.callback).await;
    assert!(matches!(replay, Err(OidcError::StateInvalid)), "{replay:?}");
    // No state, a made-up one, or the provider's refusal.
    let mut forged = other.callback.clone();
    forged.state = None;
    assert!(matches!(
        f.oidc.finish(&other.cookie, &forged).await,
        Err(OidcError::StateInvalid)
    ));
    forged.state = Some("ots_made_up".into());
    assert!(matches!(
        f.oidc.finish(&other.cookie, &forged).await,
        Err(OidcError::StateInvalid)
    ));
    let declined = f.round_trip(&f.oidc, "ada@example.com").await;
    let mut callback = declined.callback.clone();
    callback.code = None;
    callback.error = Some("access_denied".into());
    let result = f.oidc.finish(&declined.cookie, &callback).await;
    assert!(
        matches!(&result, Err(OidcError::Denied(code)) if code == "access_denied"),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().code(), "access_denied");
    // A code already exchanged is refused by the provider, never a sign-in.
    let used = f.round_trip(&f.oidc, "ada@example.com").await;
    let code = used.callback.code.clone();
    f.oidc.finish(&used.cookie, &used.callback).await.unwrap();
    let fresh = f.round_trip(&f.oidc, "ada@example.com").await;
    let mut swapped = fresh.callback.clone();
    swapped.code = code;
    let result = f.oidc.finish(&fresh.cookie, &swapped).await;
    assert!(matches!(result, Err(OidcError::Provider(_))), "{result:?}");
}

#[tokio::test]
async fn a_bare_id_token_signs_in_only_when_the_provider_signed_it_for_this_client() {
    let Some(f) = fixture().await else { return };
    let token = f
        .provider
        .id_token(CLIENT, SECRET, REDIRECT, "onetap@example.com")
        .await;
    let outcome = f.oidc.finish_id_token(&token).await.unwrap();
    let SignInOutcome::SignedIn(signed_in) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        signed_in.user().email.as_deref(),
        Some("onetap@example.com")
    );
    // Its signature altered, its claims altered, or not a token at all.
    let (head, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let resigned = format!("{head}.{flipped}{}", &signature[1..]);
    let (header, rest) = token.split_once('.').unwrap();
    let claims = rest.split('.').next().unwrap();
    let forged = format!("{header}.{claims}x.{signature}");
    for bad in [
        resigned,
        forged,
        "not.a.token".to_owned(),
        String::new(),
        "e".repeat(20_000),
    ] {
        let result = f.oidc.finish_id_token(&bad).await;
        assert!(
            matches!(result, Err(OidcError::InvalidIdToken(_))),
            "{result:?}"
        );
    }
}
