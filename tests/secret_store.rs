//! One conformance suite for every `SecretStore`: the in-memory store, SQLite on a real file,
//! a real PostgreSQL server and a real Redis server (`RedisSessions`). Each function in
//! `suite` takes a fresh store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use portcullis::store::{
    Guess, MemoryStore, NewSecret, PostgresStore, RedisSessions, SecretKind, SecretStore,
    SecretSubject, SqliteStore, StoreError, UserId,
};
use portcullis::token::{CodeKey, TokenDigest};
use time::OffsetDateTime;

struct Fixture {
    store: Arc<dyn SecretStore>,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<common::PgSchema>,
    /// The Redis server and key prefix the test wrote under.
    redis: Option<(String, String)>,
}

impl Fixture {
    async fn finish(self) {
        if let Some((url, prefix)) = &self.redis {
            common::redis_delete_prefix(url, prefix).await;
        }
    }
}

async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
        _schema: None,
        redis: None,
    })
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Some(Fixture {
        store: Arc::new(SqliteStore::connect(&url).await.unwrap()),
        _dir: Some(dir),
        _schema: None,
        redis: None,
    })
}

async fn postgres() -> Option<Fixture> {
    let schema = common::PgSchema::create(&common::postgres_url()?).await;
    Some(Fixture {
        store: Arc::new(PostgresStore::connect(&schema.url).await.unwrap()),
        _dir: None,
        _schema: Some(schema),
        redis: None,
    })
}

async fn redis() -> Option<Fixture> {
    let (url, prefix) = (common::redis_url()?, common::redis_prefix());
    let store = RedisSessions::new(MemoryStore::new(), &url).unwrap();
    Some(Fixture {
        store: Arc::new(store.prefix(&prefix)),
        _dir: None,
        _schema: None,
        redis: Some((url, prefix)),
    })
}

macro_rules! conformance {
    ($store:ident: $($test:ident),* $(,)?) => {
        mod $store {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(fixture) = crate::$store().await else { return };
                crate::suite::$test(fixture.store.clone()).await;
                fixture.finish().await;
            }
        )*}
    };
    ($($store:ident),*) => {$(
        conformance!($store:
            a_secret_is_spent_once_by_its_kind_and_digest,
            a_secret_expires_for_consumers_and_guessers_alike,
            fifty_concurrent_consumers_of_one_secret_have_exactly_one_winner,
            wrong_guesses_spend_attempts_until_even_the_right_code_is_refused,
            fifty_concurrent_wrong_guesses_are_evaluated_at_most_attempts_times,
            a_right_guess_racing_wrong_ones_wins_at_most_once,
            a_new_secret_can_replace_the_subjects_earlier_ones,
            concurrent_replacing_inserts_leave_one_live_secret,
            guesses_and_revocations_are_scoped_to_their_subject_and_kind,
            a_secret_without_a_subject_is_redeemed_by_digest_alone,
            duplicate_digests_conflict_within_a_kind,
            purge_deletes_what_expired_or_ended_before_the_cutoff,
            text_no_store_can_keep_is_refused_and_finds_nothing,
            payloads_and_timestamps_round_trip,
        );
    )*};
}

conformance!(memory, sqlite, postgres, redis);

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn key() -> CodeKey {
    CodeKey::new(b"a conformance-test code key, 32+ bytes").unwrap()
}

fn ada() -> SecretSubject {
    SecretSubject::email("ada@example.com")
}

/// A six-digit code for `subject`, limited to `attempts` wrong guesses, issued at `at(0)`.
fn code(subject: &SecretSubject, code: &str, attempts: u32) -> NewSecret {
    let digest = key().digest(SecretKind::MAGIC_LINK, subject, code);
    NewSecret::new(SecretKind::MAGIC_LINK, digest, at(0), FIVE_MINUTES)
        .subject(subject.clone())
        .attempts(attempts)
}

fn digest_of(subject: &SecretSubject, code: &str) -> TokenDigest {
    key().digest(SecretKind::MAGIC_LINK, subject, code)
}

/// `subject` presents `code` for its magic-link secret at `now`.
async fn guess_code(
    store: &Arc<dyn SecretStore>,
    subject: &SecretSubject,
    code: &str,
    now: OffsetDateTime,
) -> Result<Guess, StoreError> {
    let digest = digest_of(subject, code);
    store
        .guess_secret(SecretKind::MAGIC_LINK, subject, &digest, now)
        .await
}

mod suite {
    use super::*;

    pub(super) async fn a_secret_is_spent_once_by_its_kind_and_digest(store: Arc<dyn SecretStore>) {
        let digest = TokenDigest::of("reset-link-token");
        let new = NewSecret::new(SecretKind::PASSWORD_RESET, digest, at(0), FIVE_MINUTES)
            .subject(SecretSubject::User(UserId(7)));
        let stored = store.insert_secret(new).await.unwrap();
        assert_eq!(stored.subject, SecretSubject::User(UserId(7)));
        assert_eq!(stored.expires_at, at(300));
        // Another kind's digest space is another space.
        let other = store
            .consume_secret(SecretKind::EMAIL_VERIFICATION, &digest, at(1))
            .await;
        assert_eq!(other.unwrap(), None);
        let spent = store
            .consume_secret(SecretKind::PASSWORD_RESET, &digest, at(1))
            .await
            .unwrap();
        assert_eq!(spent, Some(stored));
        let again = store
            .consume_secret(SecretKind::PASSWORD_RESET, &digest, at(2))
            .await;
        assert_eq!(again.unwrap(), None, "a secret is spent once");
    }

    pub(super) async fn a_secret_expires_for_consumers_and_guessers_alike(
        store: Arc<dyn SecretStore>,
    ) {
        let link = TokenDigest::of("link");
        let new = NewSecret::new(SecretKind::MAGIC_LINK, link, at(0), FIVE_MINUTES);
        store.insert_secret(new).await.unwrap();
        store
            .insert_secret(code(&ada(), "123456", 5))
            .await
            .unwrap();
        // Expired at its expiry, not a microsecond later.
        let consumed = store
            .consume_secret(SecretKind::MAGIC_LINK, &link, at(300))
            .await;
        assert_eq!(consumed.unwrap(), None);
        let guessed = guess_code(&store, &ada(), "123456", at(300)).await;
        assert_eq!(guessed.unwrap(), Guess::NoSecret);
        // A microsecond before, both are live.
        let before = at(300) - Duration::from_micros(1);
        let consumed = store
            .consume_secret(SecretKind::MAGIC_LINK, &link, before)
            .await;
        assert!(consumed.unwrap().is_some());
        let guessed = guess_code(&store, &ada(), "123456", before).await;
        assert!(matches!(guessed.unwrap(), Guess::Right(_)));
    }

    pub(super) async fn fifty_concurrent_consumers_of_one_secret_have_exactly_one_winner(
        store: Arc<dyn SecretStore>,
    ) {
        for round in 0..3 {
            let digest = TokenDigest::of(&format!("oidc-state-{round}"));
            let new = NewSecret::new(SecretKind::OIDC_STATE, digest, at(0), FIVE_MINUTES)
                .payload(&serde_json::json!({ "round": round }))
                .unwrap();
            store.insert_secret(new).await.unwrap();
            let consumers = (0..50).map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .consume_secret(SecretKind::OIDC_STATE, &digest, at(1))
                        .await
                        .unwrap()
                })
            });
            let mut winners = 0;
            for consumer in futures_util::future::join_all(consumers).await {
                if let Some(record) = consumer.unwrap() {
                    winners += 1;
                    let payload: serde_json::Value = record.payload_as().unwrap().unwrap();
                    assert_eq!(payload["round"], round);
                }
            }
            assert_eq!(winners, 1, "round {round}: 50 consumers, {winners} winners");
        }
    }

    pub(super) async fn wrong_guesses_spend_attempts_until_even_the_right_code_is_refused(
        store: Arc<dyn SecretStore>,
    ) {
        store
            .insert_secret(code(&ada(), "123456", 3))
            .await
            .unwrap();
        for left in [2, 1, 0] {
            let guess = guess_code(&store, &ada(), "000000", at(1)).await.unwrap();
            assert_eq!(
                guess,
                Guess::Wrong {
                    attempts_left: Some(left)
                }
            );
        }
        let right = guess_code(&store, &ada(), "123456", at(2)).await;
        assert_eq!(right.unwrap(), Guess::NoSecret, "a dead code stays dead");
        let consumed = store
            .consume_secret(SecretKind::MAGIC_LINK, &digest_of(&ada(), "123456"), at(2))
            .await;
        assert_eq!(consumed.unwrap(), None, "nor can it be consumed by digest");
    }

    pub(super) async fn fifty_concurrent_wrong_guesses_are_evaluated_at_most_attempts_times(
        store: Arc<dyn SecretStore>,
    ) {
        store
            .insert_secret(code(&ada(), "123456", 5))
            .await
            .unwrap();
        let guessers = (0..50).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let wrong = digest_of(&ada(), &format!("{:06}", 200_000 + n));
                store
                    .guess_secret(SecretKind::MAGIC_LINK, &ada(), &wrong, at(1))
                    .await
                    .unwrap()
            })
        });
        let mut left_seen = Vec::new();
        let mut refused = 0;
        for guess in futures_util::future::join_all(guessers).await {
            match guess.unwrap() {
                Guess::Wrong {
                    attempts_left: Some(left),
                } => left_seen.push(left),
                Guess::NoSecret => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        left_seen.sort_unstable();
        assert_eq!(left_seen, [0, 1, 2, 3, 4], "each attempt was taken once");
        assert_eq!(refused, 45);
        let right = guess_code(&store, &ada(), "123456", at(2)).await;
        assert_eq!(right.unwrap(), Guess::NoSecret);
    }

    pub(super) async fn a_right_guess_racing_wrong_ones_wins_at_most_once(
        store: Arc<dyn SecretStore>,
    ) {
        store
            .insert_secret(code(&ada(), "123456", 5))
            .await
            .unwrap();
        let guessers = (0..40).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let presented = if n % 4 == 0 {
                    "123456".to_owned()
                } else {
                    format!("{:06}", 300_000 + n)
                };
                guess_code(&store, &ada(), &presented, at(1)).await.unwrap()
            })
        });
        let (mut right, mut wrong) = (0, 0);
        for guess in futures_util::future::join_all(guessers).await {
            match guess.unwrap() {
                Guess::Right(record) => {
                    right += 1;
                    assert_eq!(record.subject, ada());
                }
                Guess::Wrong { .. } => wrong += 1,
                Guess::NoSecret => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(right <= 1, "{right} right guesses at one code");
        assert!(
            wrong <= 5,
            "{wrong} wrong guesses evaluated against 5 attempts"
        );
        // Ten right guesses among them: unless five wrong ones came first, one won.
        assert!(right == 1 || wrong == 5, "right {right}, wrong {wrong}");
    }

    pub(super) async fn a_new_secret_can_replace_the_subjects_earlier_ones(
        store: Arc<dyn SecretStore>,
    ) {
        let first = code(&ada(), "111111", 5).replacing_earlier();
        store.insert_secret(first).await.unwrap();
        let mut second = code(&ada(), "222222", 5).replacing_earlier();
        second.created_at = at(10);
        store.insert_secret(second).await.unwrap();
        // The first code is gone: presenting it is a wrong guess at the second.
        let old = guess_code(&store, &ada(), "111111", at(11)).await;
        assert_eq!(
            old.unwrap(),
            Guess::Wrong {
                attempts_left: Some(4)
            }
        );
        let new = guess_code(&store, &ada(), "222222", at(12)).await;
        assert!(matches!(new.unwrap(), Guess::Right(_)));
        // Without replacement, codes coexist (recovery codes).
        for n in 0..3 {
            let digest = key().digest(SecretKind::RECOVERY_CODE, &ada(), &format!("rc-{n}"));
            let recovery = NewSecret::new(SecretKind::RECOVERY_CODE, digest, at(0), FIVE_MINUTES)
                .subject(ada());
            store.insert_secret(recovery).await.unwrap();
        }
        let revoked = store
            .revoke_secrets(SecretKind::RECOVERY_CODE, &ada(), at(1))
            .await;
        assert_eq!(revoked.unwrap(), 3);
    }

    pub(super) async fn concurrent_replacing_inserts_leave_one_live_secret(
        store: Arc<dyn SecretStore>,
    ) {
        let inserts = (0..20).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = code(&ada(), &format!("{:06}", 400_000 + n), 5).replacing_earlier();
                store.insert_secret(new).await.unwrap()
            })
        });
        futures_util::future::join_all(inserts).await;
        let live = store
            .revoke_secrets(SecretKind::MAGIC_LINK, &ada(), at(1))
            .await;
        assert_eq!(
            live.unwrap(),
            1,
            "one request's code, the last one, is live"
        );
    }

    pub(super) async fn guesses_and_revocations_are_scoped_to_their_subject_and_kind(
        store: Arc<dyn SecretStore>,
    ) {
        let bob = SecretSubject::email("bob@example.com");
        let user = SecretSubject::User(UserId(1));
        store
            .insert_secret(code(&ada(), "123456", 5))
            .await
            .unwrap();
        // Bob presenting Ada's code (the digest she would present) has no code to guess at.
        let crossed = store
            .guess_secret(
                SecretKind::MAGIC_LINK,
                &bob,
                &digest_of(&ada(), "123456"),
                at(1),
            )
            .await;
        assert_eq!(crossed.unwrap(), Guess::NoSecret);
        let other_kind = store
            .guess_secret(
                SecretKind::INVITE,
                &ada(),
                &digest_of(&ada(), "123456"),
                at(1),
            )
            .await;
        assert_eq!(other_kind.unwrap(), Guess::NoSecret);
        for (kind, subject) in [
            (SecretKind::MAGIC_LINK, &bob),
            (SecretKind::MAGIC_LINK, &user),
            (SecretKind::INVITE, &ada()),
        ] {
            let revoked = store.revoke_secrets(kind, subject, at(1)).await;
            assert_eq!(revoked.unwrap(), 0, "{kind:?} {subject:?}");
        }
        // The same address in another case is the same subject.
        let same = SecretSubject::email("ADA@Example.com");
        let right = guess_code(&store, &same, "123456", at(2)).await;
        assert!(matches!(right.unwrap(), Guess::Right(_)));
    }

    pub(super) async fn a_secret_without_a_subject_is_redeemed_by_digest_alone(
        store: Arc<dyn SecretStore>,
    ) {
        let digest = TokenDigest::of("invite-link");
        let new = NewSecret::new(SecretKind::INVITE, digest, at(0), FIVE_MINUTES)
            .attempts(3)
            .replacing_earlier();
        store.insert_secret(new).await.unwrap();
        let nobody = SecretSubject::Nobody;
        let guess = store
            .guess_secret(SecretKind::INVITE, &nobody, &TokenDigest::of("x"), at(1))
            .await;
        assert_eq!(
            guess.unwrap(),
            Guess::NoSecret,
            "nobody's secrets share no guesses"
        );
        let revoked = store
            .revoke_secrets(SecretKind::INVITE, &nobody, at(1))
            .await;
        assert_eq!(revoked.unwrap(), 0);
        // A second owner-less secret does not replace the first.
        let other = NewSecret::new(
            SecretKind::INVITE,
            TokenDigest::of("invite-2"),
            at(0),
            FIVE_MINUTES,
        )
        .replacing_earlier();
        store.insert_secret(other).await.unwrap();
        let consumed = store
            .consume_secret(SecretKind::INVITE, &digest, at(2))
            .await;
        assert_eq!(consumed.unwrap().unwrap().attempts_left, Some(3));
    }

    pub(super) async fn duplicate_digests_conflict_within_a_kind(store: Arc<dyn SecretStore>) {
        let digest = TokenDigest::of("same");
        let new = |kind| NewSecret::new(kind, digest, at(0), FIVE_MINUTES);
        store.insert_secret(new(SecretKind::INVITE)).await.unwrap();
        let duplicate = store.insert_secret(new(SecretKind::INVITE)).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict("digest"))),
            "{duplicate:?}"
        );
        store
            .insert_secret(new(SecretKind::TEMPORARY_TOKEN))
            .await
            .unwrap();
    }

    pub(super) async fn purge_deletes_what_expired_or_ended_before_the_cutoff(
        store: Arc<dyn SecretStore>,
    ) {
        let new = |name: &str, lifetime| {
            NewSecret::new(
                SecretKind::TEMPORARY_TOKEN,
                TokenDigest::of(name),
                at(0),
                lifetime,
            )
        };
        store
            .insert_secret(new("expired", Duration::from_secs(10)))
            .await
            .unwrap();
        store
            .insert_secret(new("spent", Duration::from_secs(1000)))
            .await
            .unwrap();
        store
            .insert_secret(new("live", Duration::from_secs(1000)))
            .await
            .unwrap();
        let spent = store
            .consume_secret(
                SecretKind::TEMPORARY_TOKEN,
                &TokenDigest::of("spent"),
                at(5),
            )
            .await;
        assert!(spent.unwrap().is_some());
        assert_eq!(
            store.purge_secrets(at(5)).await.unwrap(),
            0,
            "nothing before 5 s"
        );
        assert_eq!(store.purge_secrets(at(20)).await.unwrap(), 2);
        let live = store
            .consume_secret(
                SecretKind::TEMPORARY_TOKEN,
                &TokenDigest::of("live"),
                at(21),
            )
            .await;
        assert!(live.unwrap().is_some(), "the live secret was kept");
    }

    pub(super) async fn text_no_store_can_keep_is_refused_and_finds_nothing(
        store: Arc<dyn SecretStore>,
    ) {
        let nul = SecretSubject::email("ada\0@example.com");
        let refused = store.insert_secret(code(&nul, "123456", 5)).await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput("subject"))),
            "{refused:?}"
        );
        let long = SecretSubject::email(&format!("{}@example.com", "a".repeat(320)));
        let refused = store.insert_secret(code(&long, "123456", 5)).await;
        assert!(matches!(refused, Err(StoreError::InvalidInput("subject"))));
        // A payload set past the builder's check is refused by the store.
        let mut oversized = code(&ada(), "123456", 5);
        oversized.payload = Some(format!("\"{}\"", "x".repeat(5000)));
        let refused = store.insert_secret(oversized).await;
        assert!(matches!(refused, Err(StoreError::InvalidInput("payload"))));
        for subject in [&nul, &long] {
            let guess = store
                .guess_secret(
                    SecretKind::MAGIC_LINK,
                    subject,
                    &digest_of(subject, "1"),
                    at(1),
                )
                .await;
            assert_eq!(guess.unwrap(), Guess::NoSecret);
            let revoked = store
                .revoke_secrets(SecretKind::MAGIC_LINK, subject, at(1))
                .await;
            assert_eq!(revoked.unwrap(), 0);
        }
    }

    pub(super) async fn payloads_and_timestamps_round_trip(store: Arc<dyn SecretStore>) {
        let payload = serde_json::json!({
            "verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "nonce": "n-0S6_WzA2Mj",
            "next": "/chat?q=名前&x=\"'--",
        });
        let precise = at(0) + Duration::from_micros(123_456);
        let new = NewSecret::new(
            SecretKind::OIDC_STATE,
            TokenDigest::of("state"),
            precise,
            Duration::from_micros(600_000_001),
        )
        .subject(SecretSubject::User(UserId(i64::MAX)))
        .payload(&payload)
        .unwrap();
        let stored = store.insert_secret(new).await.unwrap();
        let spent = store
            .consume_secret(SecretKind::OIDC_STATE, &TokenDigest::of("state"), precise)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(spent, stored);
        assert_eq!(spent.created_at, precise);
        assert_eq!(
            spent.expires_at,
            precise + Duration::from_micros(600_000_001)
        );
        assert_eq!(spent.subject, SecretSubject::User(UserId(i64::MAX)));
        let read: serde_json::Value = spent.payload_as().unwrap().unwrap();
        assert_eq!(read, payload);
    }
}
