//! `OneTimeSecrets` through the public API on every store: links spent exactly once, codes
//! with bounded guesses, expiry, replacement and payloads, on the in-memory store, SQLite,
//! PostgreSQL and Redis.

mod common;

use std::sync::Arc;
use std::time::Duration;

use portcullis::clock::ManualClock;
use portcullis::conformance::Fixture as _;
use portcullis::store::{SecretKind, SecretSubject, UserId};
use portcullis::token::CodeKey;
use portcullis::{Auth, OneTimeSecrets, RedeemError, SecretRequest};

const TEN_MINUTES: Duration = Duration::from_secs(600);

struct Setup {
    secrets: OneTimeSecrets,
    clock: Arc<ManualClock>,
}

/// Runs `case` against the store set-up `fixture`; `None` (the service is missing outside
/// CI) skips.
async fn run<F, Fut>(fixture: Option<common::stores::Fixture>, case: F)
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = fixture else { return };
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let auth = Auth::builder(fixture.stores.clone())
        .shared_clock(clock.clone())
        .build();
    let secrets = OneTimeSecrets::new(&auth, CodeKey::new(&[42; 32]).unwrap());
    case(Setup { secrets, clock }).await;
    fixture.finish().await;
}

common::stores::on_every_store!(
    a_link_is_spent_exactly_once_among_50_concurrent_redeemers,
    a_link_redeems_only_its_own_kind_and_only_before_it_expires,
    a_malformed_or_truncated_link_is_invalid,
    a_code_survives_only_its_attempts_even_under_concurrent_guessing,
    a_code_is_reported_expired_only_when_its_time_ran_out_unanswered,
    codes_are_scoped_to_their_subject,
    a_new_code_replaces_the_earlier_one_when_asked,
    payloads_come_back_with_the_redemption,
    revoked_secrets_are_dead,
);

async fn a_link_is_spent_exactly_once_among_50_concurrent_redeemers(setup: Setup) {
    let request = SecretRequest::new(SecretKind::INVITE, TEN_MINUTES);
    let issued = setup.secrets.issue_link(request).await.unwrap();
    let link = issued.secret.expose().to_owned();
    let redeemers: Vec<_> = (0..50)
        .map(|_| {
            let (secrets, link) = (setup.secrets.clone(), link.clone());
            tokio::spawn(async move { secrets.redeem_link(SecretKind::INVITE, &link).await })
        })
        .collect();
    let mut winners = 0;
    for redeemer in redeemers {
        match redeemer.await.unwrap() {
            Ok(record) => {
                assert_eq!(record.id, issued.record.id);
                winners += 1;
            }
            Err(RedeemError::Invalid) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

async fn a_link_redeems_only_its_own_kind_and_only_before_it_expires(setup: Setup) {
    let secrets = &setup.secrets;
    let request = SecretRequest::new(SecretKind::PASSWORD_RESET, TEN_MINUTES)
        .subject(SecretSubject::User(UserId(1)));
    let link = secrets.issue_link(request).await.unwrap().secret;
    assert!(matches!(
        secrets
            .redeem_link(SecretKind::EMAIL_VERIFICATION, link.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
    setup.clock.advance(TEN_MINUTES);
    assert!(matches!(
        secrets
            .redeem_link(SecretKind::PASSWORD_RESET, link.expose())
            .await,
        Err(RedeemError::Invalid)
    ));

    let fresh = secrets
        .issue_link(SecretRequest::new(SecretKind::PASSWORD_RESET, TEN_MINUTES))
        .await
        .unwrap()
        .secret;
    setup.clock.advance(TEN_MINUTES - Duration::from_secs(1));
    assert!(
        secrets
            .redeem_link(SecretKind::PASSWORD_RESET, fresh.expose())
            .await
            .is_ok()
    );
}

async fn a_malformed_or_truncated_link_is_invalid(setup: Setup) {
    let secrets = &setup.secrets;
    let request = SecretRequest::new(SecretKind::MAGIC_LINK, TEN_MINUTES);
    let link = secrets.issue_link(request).await.unwrap().secret;
    let link = link.expose();
    let mut flipped = link.as_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    let oversized = "ots_".to_owned() + &"a".repeat(100_000);
    for bad in [
        "",
        "ots_",
        &link[..link.len() - 1],
        &flipped,
        &oversized,
        "ots_\0",
    ] {
        assert!(
            matches!(
                secrets.redeem_link(SecretKind::MAGIC_LINK, bad).await,
                Err(RedeemError::Invalid)
            ),
            "{bad:.20?}"
        );
    }
    assert!(
        secrets
            .redeem_link(SecretKind::MAGIC_LINK, link)
            .await
            .is_ok(),
        "refusing the bad ones spent nothing"
    );
}

async fn a_code_survives_only_its_attempts_even_under_concurrent_guessing(setup: Setup) {
    let ada = SecretSubject::email("ada@example.com");
    let request = SecretRequest::new(SecretKind::MAGIC_LINK, TEN_MINUTES)
        .subject(ada.clone())
        .attempts(5);
    let issued = setup.secrets.issue_code(request).await.unwrap();
    let code = issued.code.expose().to_owned();
    // 50 distinct wrong codes at once: exactly five are evaluated as wrong, whatever the
    // interleaving; the rest find the code dead.
    let right: u32 = code.parse().unwrap();
    let guessers: Vec<_> = (1..=50)
        .map(|n| {
            let (secrets, ada) = (setup.secrets.clone(), ada.clone());
            let wrong = format!("{:06}", (right + n) % 1_000_000);
            tokio::spawn(async move {
                secrets
                    .redeem_code(SecretKind::MAGIC_LINK, &ada, &wrong)
                    .await
            })
        })
        .collect();
    let mut evaluated = Vec::new();
    for guesser in guessers {
        match guesser.await.unwrap() {
            Err(RedeemError::WrongCode { attempts_left }) => evaluated.push(attempts_left),
            Err(RedeemError::Invalid) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    evaluated.sort();
    assert_eq!(
        evaluated,
        [Some(0), Some(1), Some(2), Some(3), Some(4)],
        "each wrong guess took exactly one attempt"
    );
    assert!(
        matches!(
            setup
                .secrets
                .redeem_code(SecretKind::MAGIC_LINK, &ada, &code)
                .await,
            Err(RedeemError::Invalid)
        ),
        "out of attempts: dead even for the right code"
    );
}

async fn a_code_is_reported_expired_only_when_its_time_ran_out_unanswered(setup: Setup) {
    let secrets = &setup.secrets;
    let (ada, bob) = (
        SecretSubject::email("ada@example.com"),
        SecretSubject::email("bob@example.com"),
    );
    let request = |subject: &SecretSubject| {
        SecretRequest::new(SecretKind::MAGIC_LINK, TEN_MINUTES).subject(subject.clone())
    };
    let code = secrets.issue_code(request(&ada)).await.unwrap().code;
    setup.clock.advance(TEN_MINUTES);
    for guess in [code.expose(), "000000"] {
        assert!(matches!(
            secrets
                .redeem_code(SecretKind::MAGIC_LINK, &ada, guess)
                .await,
            Err(RedeemError::Expired)
        ));
    }
    // Spent, then past its time: invalid, not expired.
    let spent = secrets.issue_code(request(&bob)).await.unwrap().code;
    secrets
        .redeem_code(SecretKind::MAGIC_LINK, &bob, spent.expose())
        .await
        .unwrap();
    setup.clock.advance(TEN_MINUTES);
    assert!(matches!(
        secrets
            .redeem_code(SecretKind::MAGIC_LINK, &bob, spent.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
}

async fn codes_are_scoped_to_their_subject(setup: Setup) {
    let secrets = &setup.secrets;
    let (ada, bob) = (
        SecretSubject::email("ada@example.com"),
        SecretSubject::email("bob@example.com"),
    );
    let ada_code = secrets
        .issue_code(SecretRequest::new(SecretKind::MAGIC_LINK, TEN_MINUTES).subject(ada.clone()))
        .await
        .unwrap()
        .code;
    // Bob has no code: guessing Ada's code for him finds nothing and costs Ada nothing.
    assert!(matches!(
        secrets
            .redeem_code(SecretKind::MAGIC_LINK, &bob, ada_code.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
    // A code is only ever right for its subject, and for its kind.
    assert!(matches!(
        secrets
            .redeem_code(SecretKind::PASSWORD_RESET, &ada, ada_code.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
    // Malformed codes cost no attempt (they cannot be right); padding whitespace is fine.
    for malformed in ["", "12345", "1234567", "12345a", "１２３４５６"] {
        assert!(matches!(
            secrets
                .redeem_code(SecretKind::MAGIC_LINK, &ada, malformed)
                .await,
            Err(RedeemError::Invalid)
        ));
    }
    let padded = format!(" {}\n", ada_code.expose());
    let record = secrets
        .redeem_code(
            SecretKind::MAGIC_LINK,
            &SecretSubject::email("ADA@example.com"),
            &padded,
        )
        .await
        .unwrap();
    assert_eq!(record.subject, ada);
    assert_eq!(
        record.attempts_left,
        Some(portcullis::DEFAULT_CODE_ATTEMPTS)
    );
}

async fn a_new_code_replaces_the_earlier_one_when_asked(setup: Setup) {
    let secrets = &setup.secrets;
    let ada = SecretSubject::User(UserId(7));
    let request = || {
        SecretRequest::new(SecretKind::MAGIC_LINK, TEN_MINUTES)
            .subject(ada.clone())
            .replacing_earlier()
    };
    let first = secrets.issue_code(request()).await.unwrap().code;
    let second = secrets.issue_code(request()).await.unwrap().code;
    if first.expose() != second.expose() {
        assert!(matches!(
            secrets
                .redeem_code(SecretKind::MAGIC_LINK, &ada, first.expose())
                .await,
            Err(RedeemError::WrongCode { .. })
        ));
    }
    assert!(
        secrets
            .redeem_code(SecretKind::MAGIC_LINK, &ada, second.expose())
            .await
            .is_ok()
    );
}

async fn payloads_come_back_with_the_redemption(setup: Setup) {
    let secrets = &setup.secrets;
    let state = serde_json::json!({"verifier": "v".repeat(43), "nonce": "n", "next": "/chat"});
    let request = SecretRequest::new(SecretKind::OIDC_STATE, TEN_MINUTES)
        .payload(&state)
        .unwrap();
    let link = secrets.issue_link(request).await.unwrap().secret;
    let record = secrets
        .redeem_link(SecretKind::OIDC_STATE, link.expose())
        .await
        .unwrap();
    let back: serde_json::Value = record.payload_as().unwrap().unwrap();
    assert_eq!(back, state);
    assert!(
        SecretRequest::new(SecretKind::OIDC_STATE, TEN_MINUTES)
            .payload(&"x".repeat(portcullis::store::MAX_SECRET_PAYLOAD))
            .is_err()
    );
}

async fn revoked_secrets_are_dead(setup: Setup) {
    let secrets = &setup.secrets;
    let ada = SecretSubject::User(UserId(3));
    let request =
        || SecretRequest::new(SecretKind::PASSWORD_RESET, TEN_MINUTES).subject(ada.clone());
    let link = secrets.issue_link(request()).await.unwrap().secret;
    let code = secrets.issue_code(request()).await.unwrap().code;
    assert_eq!(
        secrets
            .revoke(SecretKind::PASSWORD_RESET, &ada)
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        secrets
            .redeem_link(SecretKind::PASSWORD_RESET, link.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
    assert!(matches!(
        secrets
            .redeem_code(SecretKind::PASSWORD_RESET, &ada, code.expose())
            .await,
        Err(RedeemError::Invalid)
    ));
    assert!(matches!(
        secrets
            .issue_code(SecretRequest::new(SecretKind::PASSWORD_RESET, TEN_MINUTES))
            .await,
        Err(portcullis::IssueSecretError::CodeWithoutSubject)
    ));
}
