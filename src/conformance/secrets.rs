//! The [`SecretStore`] requirements.

use std::time::Duration;

use super::support::*;
use crate::store::*;
use crate::token::TokenDigest;

/// A secret is spent once by its kind and digest.
pub async fn a_secret_is_spent_once_by_its_kind_and_digest(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let digest = TokenDigest::of("reset-link-token");
    let new = NewSecret::new(SecretKind::PASSWORD_RESET, digest, at(0), FIVE_MINUTES)
        .subject(SecretSubject::User(UserId(7)));
    let stored = secrets.insert_secret(new).await.unwrap();
    assert_eq!(stored.subject, SecretSubject::User(UserId(7)));
    assert_eq!(stored.expires_at, at(300));
    // Another kind's digest space is another space.
    let other = secrets
        .consume_secret(SecretKind::EMAIL_VERIFICATION, &digest, at(1))
        .await;
    assert_eq!(other.unwrap(), None);
    let spent = secrets
        .consume_secret(SecretKind::PASSWORD_RESET, &digest, at(1))
        .await
        .unwrap();
    assert_eq!(spent, Some(stored));
    let again = secrets
        .consume_secret(SecretKind::PASSWORD_RESET, &digest, at(2))
        .await;
    assert_eq!(again.unwrap(), None, "a secret is spent once");
}

/// A secret expires for consumers and guessers alike; a guesser learns it expired
/// ([`Guess::Expired`]) unless it was spent first.
pub async fn a_secret_expires_for_consumers_and_guessers_alike(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let link = TokenDigest::of("link");
    let new = NewSecret::new(SecretKind::MAGIC_LINK, link, at(0), FIVE_MINUTES);
    secrets.insert_secret(new).await.unwrap();
    secrets
        .insert_secret(code(&ada(), "123456", 5))
        .await
        .unwrap();
    // Expired at its expiry, not a microsecond later.
    let consumed = secrets
        .consume_secret(SecretKind::MAGIC_LINK, &link, at(300))
        .await;
    assert_eq!(consumed.unwrap(), None);
    let guessed = guess_code(&secrets, &ada(), "123456", at(300)).await;
    assert_eq!(guessed.unwrap(), Guess::Expired);
    let wrong = guess_code(&secrets, &ada(), "000000", at(300)).await;
    assert_eq!(wrong.unwrap(), Guess::Expired, "nothing was evaluated");
    // A microsecond before, both are live.
    let before = at(300) - Duration::from_micros(1);
    let consumed = secrets
        .consume_secret(SecretKind::MAGIC_LINK, &link, before)
        .await;
    assert!(consumed.unwrap().is_some());
    let guessed = guess_code(&secrets, &ada(), "123456", before).await;
    assert!(matches!(guessed.unwrap(), Guess::Right(_)));
    let spent = guess_code(&secrets, &ada(), "123456", at(300)).await;
    assert_eq!(spent.unwrap(), Guess::NoSecret, "spent, not expired");
}

/// Fifty concurrent consumers of one secret have exactly one winner.
pub async fn fifty_concurrent_consumers_of_one_secret_have_exactly_one_winner(stores: Stores) {
    let Stores { secrets, .. } = stores;
    for round in 0..3 {
        let digest = TokenDigest::of(&format!("oidc-state-{round}"));
        let new = NewSecret::new(SecretKind::OIDC_STATE, digest, at(0), FIVE_MINUTES)
            .payload(&serde_json::json!({ "round": round }))
            .unwrap();
        secrets.insert_secret(new).await.unwrap();
        let consumers = (0..50).map(|_| {
            let secrets = secrets.clone();
            tokio::spawn(async move {
                secrets
                    .consume_secret(SecretKind::OIDC_STATE, &digest, at(1))
                    .await
                    .unwrap()
            })
        });
        let mut winners = 0;
        for consumer in join_all(consumers).await {
            if let Some(record) = consumer.unwrap() {
                winners += 1;
                let payload: serde_json::Value = record.payload_as().unwrap().unwrap();
                assert_eq!(payload["round"], round);
            }
        }
        assert_eq!(winners, 1, "round {round}: 50 consumers, {winners} winners");
    }
}

/// Wrong guesses spend attempts until even the right code is refused.
pub async fn wrong_guesses_spend_attempts_until_even_the_right_code_is_refused(stores: Stores) {
    let Stores { secrets, .. } = stores;
    secrets
        .insert_secret(code(&ada(), "123456", 3))
        .await
        .unwrap();
    for left in [2, 1, 0] {
        let guess = guess_code(&secrets, &ada(), "000000", at(1)).await.unwrap();
        assert_eq!(
            guess,
            Guess::Wrong {
                attempts_left: Some(left)
            }
        );
    }
    let right = guess_code(&secrets, &ada(), "123456", at(2)).await;
    assert_eq!(right.unwrap(), Guess::NoSecret, "a dead code stays dead");
    let later = guess_code(&secrets, &ada(), "123456", at(400)).await;
    assert_eq!(
        later.unwrap(),
        Guess::NoSecret,
        "a code out of attempts is not reported expired once its time is up"
    );
    let consumed = secrets
        .consume_secret(SecretKind::MAGIC_LINK, &digest_of(&ada(), "123456"), at(2))
        .await;
    assert_eq!(consumed.unwrap(), None, "nor can it be consumed by digest");
}

/// Fifty concurrent wrong guesses are evaluated at most attempts times.
pub async fn fifty_concurrent_wrong_guesses_are_evaluated_at_most_attempts_times(stores: Stores) {
    let Stores { secrets, .. } = stores;
    secrets
        .insert_secret(code(&ada(), "123456", 5))
        .await
        .unwrap();
    let guessers = (0..50).map(|n| {
        let secrets = secrets.clone();
        tokio::spawn(async move {
            let wrong = digest_of(&ada(), &format!("{:06}", 200_000 + n));
            secrets
                .guess_secret(SecretKind::MAGIC_LINK, &ada(), &wrong, at(1))
                .await
                .unwrap()
        })
    });
    let mut left_seen = Vec::new();
    let mut refused = 0;
    for guess in join_all(guessers).await {
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
    let right = guess_code(&secrets, &ada(), "123456", at(2)).await;
    assert_eq!(right.unwrap(), Guess::NoSecret);
}

/// A right guess racing wrong ones wins at most once.
pub async fn a_right_guess_racing_wrong_ones_wins_at_most_once(stores: Stores) {
    let Stores { secrets, .. } = stores;
    secrets
        .insert_secret(code(&ada(), "123456", 5))
        .await
        .unwrap();
    let guessers = (0..40).map(|n| {
        let secrets = secrets.clone();
        tokio::spawn(async move {
            let presented = if n % 4 == 0 {
                "123456".to_owned()
            } else {
                format!("{:06}", 300_000 + n)
            };
            guess_code(&secrets, &ada(), &presented, at(1))
                .await
                .unwrap()
        })
    });
    let (mut right, mut wrong) = (0, 0);
    for guess in join_all(guessers).await {
        match guess.unwrap() {
            Guess::Right(record) => {
                right += 1;
                assert_eq!(record.subject, ada());
            }
            Guess::Wrong { .. } => wrong += 1,
            Guess::NoSecret => {}
            Guess::Expired => panic!("a code five minutes long expired after a second"),
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

/// A new secret can replace the subjects earlier ones.
pub async fn a_new_secret_can_replace_the_subjects_earlier_ones(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let first = code(&ada(), "111111", 5).replacing_earlier();
    secrets.insert_secret(first).await.unwrap();
    let mut second = code(&ada(), "222222", 5).replacing_earlier();
    second.created_at = at(10);
    secrets.insert_secret(second).await.unwrap();
    // The first code is gone: presenting it is a wrong guess at the second.
    let old = guess_code(&secrets, &ada(), "111111", at(11)).await;
    assert_eq!(
        old.unwrap(),
        Guess::Wrong {
            attempts_left: Some(4)
        }
    );
    let new = guess_code(&secrets, &ada(), "222222", at(12)).await;
    assert!(matches!(new.unwrap(), Guess::Right(_)));
    // Without replacement, codes coexist (recovery codes).
    for n in 0..3 {
        let digest = key().digest(SecretKind::RECOVERY_CODE, &ada(), &format!("rc-{n}"));
        let recovery =
            NewSecret::new(SecretKind::RECOVERY_CODE, digest, at(0), FIVE_MINUTES).subject(ada());
        secrets.insert_secret(recovery).await.unwrap();
    }
    let revoked = secrets
        .revoke_secrets(SecretKind::RECOVERY_CODE, &ada(), at(1))
        .await;
    assert_eq!(revoked.unwrap(), 3);
}

/// Concurrent replacing inserts leave one live secret.
pub async fn concurrent_replacing_inserts_leave_one_live_secret(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let inserts = (0..20).map(|n| {
        let secrets = secrets.clone();
        tokio::spawn(async move {
            let new = code(&ada(), &format!("{:06}", 400_000 + n), 5).replacing_earlier();
            secrets.insert_secret(new).await.unwrap()
        })
    });
    join_all(inserts).await;
    let live = secrets
        .revoke_secrets(SecretKind::MAGIC_LINK, &ada(), at(1))
        .await;
    assert_eq!(
        live.unwrap(),
        1,
        "one request's code, the last one, is live"
    );
}

/// Guesses and revocations are scoped to their subject and kind.
pub async fn guesses_and_revocations_are_scoped_to_their_subject_and_kind(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let bob = SecretSubject::email("bob@example.com");
    let user = SecretSubject::User(UserId(1));
    secrets
        .insert_secret(code(&ada(), "123456", 5))
        .await
        .unwrap();
    // Bob presenting Ada's code (the digest she would present) has no code to guess at.
    let crossed = secrets
        .guess_secret(
            SecretKind::MAGIC_LINK,
            &bob,
            &digest_of(&ada(), "123456"),
            at(1),
        )
        .await;
    assert_eq!(crossed.unwrap(), Guess::NoSecret);
    let other_kind = secrets
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
        let revoked = secrets.revoke_secrets(kind, subject, at(1)).await;
        assert_eq!(revoked.unwrap(), 0, "{kind:?} {subject:?}");
    }
    // The same address in another case is the same subject.
    let same = SecretSubject::email("ADA@Example.com");
    let right = guess_code(&secrets, &same, "123456", at(2)).await;
    assert!(matches!(right.unwrap(), Guess::Right(_)));
}

/// A secret without a subject is redeemed by digest alone.
pub async fn a_secret_without_a_subject_is_redeemed_by_digest_alone(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let digest = TokenDigest::of("invite-link");
    let new = NewSecret::new(SecretKind::INVITE, digest, at(0), FIVE_MINUTES)
        .attempts(3)
        .replacing_earlier();
    secrets.insert_secret(new).await.unwrap();
    let nobody = SecretSubject::Nobody;
    let guess = secrets
        .guess_secret(SecretKind::INVITE, &nobody, &TokenDigest::of("x"), at(1))
        .await;
    assert_eq!(
        guess.unwrap(),
        Guess::NoSecret,
        "nobody's secrets share no guesses"
    );
    let revoked = secrets
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
    secrets.insert_secret(other).await.unwrap();
    let consumed = secrets
        .consume_secret(SecretKind::INVITE, &digest, at(2))
        .await;
    assert_eq!(consumed.unwrap().unwrap().attempts_left, Some(3));
}

/// Duplicate digests conflict within a kind.
pub async fn duplicate_digests_conflict_within_a_kind(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let digest = TokenDigest::of("same");
    let new = |kind| NewSecret::new(kind, digest, at(0), FIVE_MINUTES);
    secrets
        .insert_secret(new(SecretKind::INVITE))
        .await
        .unwrap();
    let duplicate = secrets.insert_secret(new(SecretKind::INVITE)).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict("digest"))),
        "{duplicate:?}"
    );
    secrets
        .insert_secret(new(SecretKind::TEMPORARY_TOKEN))
        .await
        .unwrap();
}

/// Purge deletes what expired or ended before the cutoff.
pub async fn purge_deletes_what_expired_or_ended_before_the_cutoff(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let new = |name: &str, lifetime| {
        NewSecret::new(
            SecretKind::TEMPORARY_TOKEN,
            TokenDigest::of(name),
            at(0),
            lifetime,
        )
    };
    secrets
        .insert_secret(new("expired", Duration::from_secs(10)))
        .await
        .unwrap();
    secrets
        .insert_secret(new("spent", Duration::from_secs(1000)))
        .await
        .unwrap();
    secrets
        .insert_secret(new("live", Duration::from_secs(1000)))
        .await
        .unwrap();
    let spent = secrets
        .consume_secret(
            SecretKind::TEMPORARY_TOKEN,
            &TokenDigest::of("spent"),
            at(5),
        )
        .await;
    assert!(spent.unwrap().is_some());
    assert_eq!(
        secrets.purge_secrets(at(5)).await.unwrap(),
        0,
        "nothing before 5 s"
    );
    assert_eq!(secrets.purge_secrets(at(20)).await.unwrap(), 2);
    let live = secrets
        .consume_secret(
            SecretKind::TEMPORARY_TOKEN,
            &TokenDigest::of("live"),
            at(21),
        )
        .await;
    assert!(live.unwrap().is_some(), "the live secret was kept");
}

/// Text no store can keep is refused and finds nothing.
pub async fn text_no_store_can_keep_is_refused_and_finds_nothing(stores: Stores) {
    let Stores { secrets, .. } = stores;
    let nul = SecretSubject::email("ada\0@example.com");
    let refused = secrets.insert_secret(code(&nul, "123456", 5)).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidInput("subject"))),
        "{refused:?}"
    );
    let long = SecretSubject::email(&format!("{}@example.com", "a".repeat(320)));
    let refused = secrets.insert_secret(code(&long, "123456", 5)).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput("subject"))));
    // A payload set past the builder's check is refused by the store.
    let mut oversized = code(&ada(), "123456", 5);
    oversized.payload = Some(format!("\"{}\"", "x".repeat(5000)));
    let refused = secrets.insert_secret(oversized).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput("payload"))));
    for subject in [&nul, &long] {
        let guess = secrets
            .guess_secret(
                SecretKind::MAGIC_LINK,
                subject,
                &digest_of(subject, "1"),
                at(1),
            )
            .await;
        assert_eq!(guess.unwrap(), Guess::NoSecret);
        let revoked = secrets
            .revoke_secrets(SecretKind::MAGIC_LINK, subject, at(1))
            .await;
        assert_eq!(revoked.unwrap(), 0);
    }
}

/// Payloads and timestamps round trip.
pub async fn payloads_and_timestamps_round_trip(stores: Stores) {
    let Stores { secrets, .. } = stores;
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
    let stored = secrets.insert_secret(new).await.unwrap();
    let spent = secrets
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
