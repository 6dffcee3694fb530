//! The [`TokenStore`] requirements; most run once per token kind.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::support::*;
use crate::assurance::{Factor, Factors};
use crate::store::*;

/// Tokens of unknown users are refused.
pub async fn tokens_of_unknown_users_are_refused(stores: Stores) {
    let Stores { tokens, .. } = stores;
    let orphan = tokens
        .insert_token(token(TokenKind::ApiKey, UserId(424_242), 1))
        .await;
    assert!(matches!(orphan, Err(StoreError::Corrupt(_))), "{orphan:?}");
    assert_eq!(
        tokens
            .token_by_digest(TokenKind::ApiKey, &digest(1))
            .await
            .unwrap(),
        None
    );
}

/// Tokens are found by kind and digest.
pub async fn tokens_are_found_by_kind_and_digest(stores: Stores) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let mut new = token(TokenKind::ApiKey, ada.id, 1);
    new.scopes = Some(vec!["read".into(), "write".into()]);
    new.family = Some(FamilyId::new("f1"));
    let stored = tokens.insert_token(new.clone()).await.unwrap();
    assert_eq!(stored.kind, TokenKind::ApiKey);
    assert_eq!(stored.digest, digest(1));
    assert_eq!(stored.user_id, ada.id);
    assert_eq!(stored.name.as_deref(), Some("token 1"));
    assert_eq!(stored.hint, "pc_…0001");
    assert_eq!(stored.family, Some(FamilyId::new("f1")));
    assert_eq!(stored.scopes, Some(vec!["read".into(), "write".into()]));
    assert_eq!(stored.expires_at, Some(at(3600)));
    assert_eq!(stored.revoked_at, None);
    assert_eq!(stored.last_used_at, None);
    assert_eq!(
        tokens
            .token_by_digest(TokenKind::ApiKey, &digest(1))
            .await
            .unwrap(),
        Some(stored)
    );
    assert_eq!(
        tokens
            .token_by_digest(TokenKind::Refresh, &digest(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tokens
            .token_by_digest(TokenKind::ApiKey, &digest(2))
            .await
            .unwrap(),
        None
    );
    // Every kind is storable.
    for (n, kind) in TokenKind::ALL.into_iter().enumerate() {
        let record = tokens
            .insert_token(token(kind, ada.id, 100 + n as u32))
            .await
            .unwrap();
        assert_eq!(record.kind, kind);
    }
}

/// A token comes with its owner's whole account in one lookup, whatever the token's state
/// (or the store says it cannot join them, and `Auth` makes two queries instead).
pub async fn tokens_come_with_their_owner(stores: Stores) {
    let Stores { users, tokens, .. } = stores;
    // Every column of the owner set, so that a decoder reading one column for another fails.
    let new = NewUser::new("ada")
        .email("ada@example.com")
        .email_verified(true)
        .phone("+15550001")
        .phone_verified(true)
        .full_name("Ada L.")
        .photo_url("https://example.com/ada.png")
        .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .roles(["admin", "staff"])
        .daily_allowance(12);
    let created = users.create_user(new, at(0)).await.unwrap();
    let ada = users
        .update_user(created.id, UserUpdate::default().last_login(at(5)), at(7))
        .await
        .unwrap()
        .unwrap();
    let _other = user(&*users, "grace").await;
    let mut new = token(TokenKind::Session, ada.id, 1);
    new.family = Some(FamilyId::new("f1"));
    let stored = tokens.insert_token(new).await.unwrap();
    match tokens.token_and_owner(TokenKind::Session, &digest(1)).await {
        Err(StoreError::Unsupported(_)) => return,
        found => assert_eq!(found.unwrap(), Some((stored.clone(), Some(ada.clone())))),
    }
    for (kind, n) in [(TokenKind::Session, 2), (TokenKind::ApiKey, 1)] {
        assert_eq!(
            tokens.token_and_owner(kind, &digest(n)).await.unwrap(),
            None
        );
    }
    let revoked = tokens
        .revoke_tokens(
            TokenSelector::Family(FamilyId::new("f1")),
            RevokeReason::Revoked,
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(
        tokens
            .token_and_owner(TokenKind::Session, &digest(1))
            .await
            .unwrap(),
        Some((revoked[0].clone(), Some(ada)))
    );
}

/// Duplicate digests conflict within a kind.
pub async fn duplicate_digests_conflict_within_a_kind(stores: Stores) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    tokens
        .insert_token(token(TokenKind::ApiKey, ada.id, 1))
        .await
        .unwrap();
    let again = tokens
        .insert_token(token(TokenKind::ApiKey, ada.id, 1))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict("digest"))),
        "{again:?}"
    );
    tokens
        .insert_token(token(TokenKind::Session, ada.id, 1))
        .await
        .unwrap();
}

/// Tokens of user are listed oldest first by kind.
pub async fn tokens_of_user_are_listed_oldest_first_by_kind(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let bob = user(&*users, "bob").await;
    for n in 0..5 {
        tokens.insert_token(token(kind, ada.id, n)).await.unwrap();
    }
    tokens
        .insert_token(token(other(kind), ada.id, 10))
        .await
        .unwrap();
    tokens.insert_token(token(kind, bob.id, 11)).await.unwrap();
    let listed = tokens.tokens_of_user(ada.id, kind).await.unwrap();
    let digests: Vec<_> = listed.iter().map(|t| t.digest).collect();
    assert_eq!(digests, (0..5).map(digest).collect::<Vec<_>>());
    assert_eq!(
        tokens.tokens_of_user(bob.id, other(kind)).await.unwrap(),
        vec![]
    );
}

/// Active token limit counts only active tokens.
pub async fn active_token_limit_counts_only_active_tokens(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let limited = |n: u32, created: i64| NewToken {
        max_active: Some(2),
        created_at: at(created),
        ..token(kind, ada.id, n)
    };
    let first = tokens.insert_token(limited(1, 0)).await.unwrap();
    tokens.insert_token(limited(2, 0)).await.unwrap();
    let third = tokens.insert_token(limited(3, 0)).await;
    assert!(
        matches!(third, Err(StoreError::LimitReached { limit: 2 })),
        "{third:?}"
    );
    // Revoked and expired tokens free their slot.
    tokens
        .revoke_tokens(
            TokenSelector::Owned {
                id: first.id,
                owner: ada.id,
            },
            RevokeReason::Revoked,
            at(1),
        )
        .await
        .unwrap();
    tokens.insert_token(limited(3, 1)).await.unwrap();
    assert!(tokens.insert_token(limited(4, 1)).await.is_err());
    tokens.insert_token(limited(4, 3600)).await.unwrap();
    // Other kinds and users have their own counts.
    tokens
        .insert_token(NewToken {
            max_active: Some(2),
            ..token(other(kind), ada.id, 5)
        })
        .await
        .unwrap();
}

/// Concurrent inserts never exceed the active limit.
pub async fn concurrent_inserts_never_exceed_the_active_limit(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let tasks: Vec<_> = (0..30)
        .map(|n| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move {
                tokens
                    .insert_token(NewToken {
                        max_active: Some(20),
                        ..token(kind, ada.id, n)
                    })
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitReached { limit: 20 }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 20);
}

/// Rotation replaces an active token once.
pub async fn rotation_replaces_an_active_token_once(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let family = FamilyId::new("fam");
    let original = tokens
        .insert_token(NewToken {
            family: Some(family.clone()),
            ..token(kind, ada.id, 1)
        })
        .await
        .unwrap();
    let replacement = NewToken {
        family: Some(family.clone()),
        created_at: at(10),
        ..token(kind, ada.id, 2)
    };
    let Rotation::Rotated {
        previous,
        replacement: stored,
    } = tokens
        .rotate_token(kind, &digest(1), replacement.clone(), at(10))
        .await
        .unwrap()
    else {
        panic!("an active token rotates");
    };
    assert_eq!(previous.id, original.id);
    assert_eq!(previous.revoked_at, Some(at(10)));
    assert_eq!(previous.revoke_reason, Some(RevokeReason::Rotated));
    assert_eq!(stored.digest, digest(2));
    assert_eq!(stored.family, Some(family));
    // Presenting the rotated token again changes nothing and shows why.
    let again = NewToken {
        ..token(kind, ada.id, 3)
    };
    match tokens
        .rotate_token(kind, &digest(1), again.clone(), at(11))
        .await
        .unwrap()
    {
        Rotation::Rejected(Some(record)) => {
            assert_eq!(record.revoke_reason, Some(RevokeReason::Rotated))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tokens.token_by_digest(kind, &digest(3)).await.unwrap(),
        None
    );
    // Unknown, expired, and wrong-kind tokens do not rotate.
    assert_eq!(
        tokens
            .rotate_token(kind, &digest(99), again.clone(), at(11))
            .await
            .unwrap(),
        Rotation::Rejected(None)
    );
    assert!(matches!(
        tokens
            .rotate_token(kind, &digest(2), again.clone(), at(3600))
            .await
            .unwrap(),
        Rotation::Rejected(Some(_))
    ));
    assert_eq!(
        tokens
            .rotate_token(other(kind), &digest(2), again, at(11))
            .await
            .unwrap(),
        Rotation::Rejected(None)
    );
}

/// Fifty concurrent rotations of one token succeed exactly once.
pub async fn fifty_concurrent_rotations_of_one_token_succeed_exactly_once(
    stores: Stores,
    kind: TokenKind,
) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    tokens.insert_token(token(kind, ada.id, 0)).await.unwrap();
    let tasks: Vec<_> = (1..=50)
        .map(|n| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move {
                tokens
                    .rotate_token(kind, &digest(0), token(kind, ada.id, n), at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        rotated += usize::from(matches!(task.await.unwrap(), Rotation::Rotated { .. }));
    }
    assert_eq!(rotated, 1);
    let active = tokens.tokens_of_user(ada.id, kind).await.unwrap();
    assert_eq!(active.iter().filter(|t| t.is_active(at(1))).count(), 1);
}

/// Hardening item 10: under READ COMMITTED, a family revoke's snapshot did not contain the
/// replacement a concurrent rotation was inserting, so "log out", reuse detection or a
/// password change could leave the new token (and the family's access tokens) alive.
pub async fn a_rotation_racing_a_family_revoke_never_leaves_the_family_active(
    stores: Stores,
    kind: TokenKind,
) {
    race_rotations_against_revokes(stores, kind, |_, family| TokenSelector::Family(family)).await;
}

/// Hardening item 10, for "log out everywhere" (a revoke of every token of a user).
pub async fn a_rotation_racing_a_user_revoke_never_leaves_a_token_active(
    stores: Stores,
    kind: TokenKind,
) {
    race_rotations_against_revokes(stores, kind, |user, _| TokenSelector::User {
        user,
        kind: Some(kind),
    })
    .await;
}

/// 200 rounds of one rotation started at the same time as one revoke of `selector`.
async fn race_rotations_against_revokes(
    stores: Stores,
    kind: TokenKind,
    selector: impl Fn(UserId, FamilyId) -> TokenSelector,
) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let mut lost = Vec::new();
    for round in 0..200u32 {
        let family = FamilyId::new(format!("family-{round}"));
        let in_family = |n: u32| NewToken {
            family: Some(family.clone()),
            ..token(kind, ada.id, n)
        };
        tokens.insert_token(in_family(round * 2)).await.unwrap();
        let rotation = {
            let (tokens, replacement) = (Arc::clone(&tokens), in_family(round * 2 + 1));
            tokio::spawn(async move {
                tokens
                    .rotate_token(kind, &digest(round * 2), replacement, at(1))
                    .await
                    .unwrap()
            })
        };
        let revoke = {
            let (tokens, selector) = (Arc::clone(&tokens), selector(ada.id, family.clone()));
            tokio::spawn(async move {
                tokens
                    .revoke_tokens(selector, RevokeReason::Logout, at(1))
                    .await
                    .unwrap()
            })
        };
        let (rotated, _) = (rotation.await.unwrap(), revoke.await.unwrap());
        if tokens.family_is_active(&family, at(2)).await.unwrap() {
            lost.push((round, matches!(rotated, Rotation::Rotated { .. })));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of 200 rounds left the family active after its revoke (round, rotated): {lost:?}",
        lost.len()
    );
    let active = tokens.tokens_of_user(ada.id, kind).await.unwrap();
    assert!(active.iter().all(|token| !token.is_active(at(2))));
}

/// Revocation selectors revoke only what they select.
pub async fn revocation_selectors_revoke_only_what_they_select(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let bob = user(&*users, "bob").await;
    let key = tokens.insert_token(token(kind, ada.id, 1)).await.unwrap();
    let revoke = |selector| {
        let tokens = Arc::clone(&tokens);
        async move {
            tokens
                .revoke_tokens(selector, RevokeReason::Logout, at(5))
                .await
                .unwrap()
        }
    };
    // Owned: the wrong owner revokes nothing.
    assert!(
        revoke(TokenSelector::Owned {
            id: key.id,
            owner: bob.id
        })
        .await
        .is_empty()
    );
    let revoked = revoke(TokenSelector::Owned {
        id: key.id,
        owner: ada.id,
    })
    .await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].revoked_at, Some(at(5)));
    assert_eq!(revoked[0].revoke_reason, Some(RevokeReason::Logout));
    assert!(
        revoke(TokenSelector::Owned {
            id: key.id,
            owner: ada.id
        })
        .await
        .is_empty(),
        "only once"
    );

    tokens
        .insert_token(token(other(kind), ada.id, 2))
        .await
        .unwrap();
    let by_digest = revoke(TokenSelector::Digest {
        kind: other(kind),
        digest: digest(2),
    })
    .await;
    assert_eq!(by_digest.len(), 1);

    let fam = |n, family: &str, user: UserId| NewToken {
        family: Some(FamilyId::new(family)),
        ..token(kind, user, n)
    };
    tokens.insert_token(fam(3, "a", ada.id)).await.unwrap();
    tokens.insert_token(fam(4, "a", ada.id)).await.unwrap();
    tokens.insert_token(fam(5, "b", ada.id)).await.unwrap();
    tokens.insert_token(fam(6, "c", bob.id)).await.unwrap();
    assert_eq!(
        revoke(TokenSelector::Family(FamilyId::new("a")))
            .await
            .len(),
        2
    );
    tokens
        .insert_token(token(other(kind), ada.id, 7))
        .await
        .unwrap();
    let refresh_only = revoke(TokenSelector::User {
        user: ada.id,
        kind: Some(kind),
    })
    .await;
    assert_eq!(
        refresh_only.iter().map(|t| t.digest).collect::<Vec<_>>(),
        vec![digest(5)]
    );
    let everything = revoke(TokenSelector::User {
        user: ada.id,
        kind: None,
    })
    .await;
    assert_eq!(
        everything.iter().map(|t| t.digest).collect::<Vec<_>>(),
        vec![digest(7)]
    );
    let bobs = tokens.tokens_of_user(bob.id, kind).await.unwrap();
    assert_eq!(bobs[0].revoked_at, None, "other users untouched");
}

/// Families live while a token is active.
pub async fn families_live_while_a_token_is_active(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let family = FamilyId::new("session");
    assert!(!tokens.family_is_active(&family, at(0)).await.unwrap());
    tokens
        .insert_token(NewToken {
            family: Some(family.clone()),
            ..token(kind, ada.id, 1)
        })
        .await
        .unwrap();
    assert!(tokens.family_is_active(&family, at(0)).await.unwrap());
    assert!(
        !tokens.family_is_active(&family, at(3600)).await.unwrap(),
        "expired"
    );
    tokens
        .revoke_tokens(
            TokenSelector::Family(family.clone()),
            RevokeReason::Logout,
            at(1),
        )
        .await
        .unwrap();
    assert!(
        !tokens.family_is_active(&family, at(1)).await.unwrap(),
        "revoked"
    );
}

/// Purge deletes what expired or was revoked before the cutoff.
pub async fn purge_deletes_what_expired_or_was_revoked_before_the_cutoff(
    stores: Stores,
    kind: TokenKind,
) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let expiring = |n, at_seconds| NewToken {
        expires_at: Some(at(at_seconds)),
        ..token(kind, ada.id, n)
    };
    tokens.insert_token(expiring(1, 100)).await.unwrap();
    tokens.insert_token(token(kind, ada.id, 2)).await.unwrap();
    for (n, revoked_at) in [(3, 150), (4, 250)] {
        tokens.insert_token(token(kind, ada.id, n)).await.unwrap();
        tokens
            .revoke_tokens(
                TokenSelector::Digest {
                    kind,
                    digest: digest(n),
                },
                RevokeReason::Logout,
                at(revoked_at),
            )
            .await
            .unwrap();
    }
    tokens
        .insert_token(NewToken {
            expires_at: None,
            ..token(kind, ada.id, 5)
        })
        .await
        .unwrap();
    tokens.insert_token(expiring(6, 200)).await.unwrap();
    tokens
        .insert_token(NewToken {
            kind: other(kind),
            ..expiring(7, 100)
        })
        .await
        .unwrap();

    assert_eq!(tokens.purge_tokens(at(200)).await.unwrap(), 3);
    for (n, kept) in [
        (1, false),
        (2, true),
        (3, false),
        (4, true),
        (5, true),
        (6, true),
    ] {
        let found = tokens.token_by_digest(kind, &digest(n)).await.unwrap();
        assert_eq!(found.is_some(), kept, "token {n}");
    }
    assert!(
        tokens
            .token_by_digest(other(kind), &digest(7))
            .await
            .unwrap()
            .is_none()
    );
    let listed = tokens.tokens_of_user(ada.id, kind).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(tokens.purge_tokens(at(200)).await.unwrap(), 0);
    // A purged digest is free again.
    tokens.insert_token(expiring(1, 3600)).await.unwrap();
}

/// Last use only moves forward.
pub async fn last_use_only_moves_forward(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let key = tokens.insert_token(token(kind, ada.id, 1)).await.unwrap();
    tokens
        .record_token_use(&[TokenUse {
            id: key.id,
            at: at(20),
        }])
        .await
        .unwrap();
    tokens
        .record_token_use(&[TokenUse {
            id: key.id,
            at: at(10),
        }])
        .await
        .unwrap();
    tokens.record_token_use(&[]).await.unwrap();
    let found = tokens
        .token_by_digest(kind, &digest(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_used_at, Some(at(20)));
    // Unknown ids are ignored.
    tokens
        .record_token_use(&[TokenUse {
            id: crate::store::TokenId(if kind == TokenKind::Session {
                -999_999
            } else {
                999_999
            }),
            at: at(30),
        }])
        .await
        .unwrap();
}

/// Timestamps round trip at microsecond precision.
pub async fn timestamps_round_trip_at_microsecond_precision(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let precise = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000).unwrap();
    let ada = users
        .create_user(NewUser::new("ada"), precise)
        .await
        .unwrap();
    assert_eq!(
        users.user_by_id(ada.id).await.unwrap().unwrap().created_at,
        precise
    );
    let key = tokens
        .insert_token(NewToken {
            created_at: precise,
            expires_at: Some(precise + Duration::from_micros(1)),
            auth_time: Some(precise - Duration::from_micros(7)),
            ..token(kind, ada.id, 1)
        })
        .await
        .unwrap();
    let found = tokens
        .token_by_digest(kind, &key.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.created_at, precise);
    assert_eq!(found.auth_time, Some(precise - Duration::from_micros(7)));
    assert_eq!(key.auth_time, found.auth_time, "as inserted");
    assert!(found.is_active(precise));
    assert!(!found.is_active(precise + Duration::from_micros(1)));
}

/// The factors of a sign-in come back as stored, on the token and on its rotated successor
/// (the refresh or session code copies them over), and a token stored without any reads
/// back with none.
pub async fn sign_in_factors_round_trip_and_survive_rotation(stores: Stores, kind: TokenKind) {
    let Stores { users, tokens, .. } = stores;
    let ada = user(&*users, "ada").await;
    let factors: Factors = [Factor::Password, Factor::Otp, Factor::Passkey]
        .into_iter()
        .collect();
    let family = FamilyId::new("fam");
    let first = tokens
        .insert_token(
            token(kind, ada.id, 1)
                .family(family.clone())
                .auth_time(at(0))
                .factors(factors),
        )
        .await
        .unwrap();
    assert_eq!(first.factors, factors, "as inserted");
    let found = tokens.token_by_digest(kind, &digest(1)).await.unwrap();
    assert_eq!(found.map(|t| t.factors), Some(factors));
    let successor = token(kind, ada.id, 2)
        .family(family)
        .auth_time(at(0))
        .factors(first.factors);
    let Rotation::Rotated { replacement, .. } = tokens
        .rotate_token(kind, &digest(1), successor, at(1))
        .await
        .unwrap()
    else {
        panic!("an active token rotates");
    };
    assert_eq!(replacement.factors, factors);
    let found = tokens.token_by_digest(kind, &digest(2)).await.unwrap();
    assert_eq!(found.map(|t| t.factors), Some(factors));
    let plain = tokens.insert_token(token(kind, ada.id, 3)).await.unwrap();
    assert_eq!(plain.factors, Factors::NONE);
    let found = tokens.token_by_digest(kind, &digest(3)).await.unwrap();
    assert_eq!(found.map(|t| t.factors), Some(Factors::NONE));
}
