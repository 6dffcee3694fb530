//! One conformance suite, run against every `UserStore`: the in-memory store, SQLite on a real
//! file, and a real PostgreSQL server. A third-party store passes the same functions in `suite`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use portcullis::store::{
    FamilyId, MemoryStore, NewToken, NewUser, PostgresStore, RedisSessions, RevokeReason, Rotation,
    SqliteStore, StoreError, TokenKind, TokenSelector, TokenUse, User, UserId, UserStore,
    UserUpdate,
};
use portcullis::token::TokenDigest;
use time::OffsetDateTime;

struct Fixture {
    store: Arc<dyn UserStore>,
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

async fn redis_sessions() -> Option<Fixture> {
    let (url, prefix) = (common::redis_url()?, common::redis_prefix());
    Some(Fixture {
        store: Arc::new(
            RedisSessions::new(MemoryStore::new(), &url)
                .unwrap()
                .prefix(&prefix),
        ),
        _dir: None,
        _schema: None,
        redis: Some((url, prefix)),
    })
}

/// The production pairing: sessions in Redis, everything else in PostgreSQL.
async fn redis_sessions_on_postgres() -> Option<Fixture> {
    let (url, prefix) = (common::redis_url()?, common::redis_prefix());
    let schema = common::PgSchema::create(&common::postgres_url()?).await;
    let postgres = PostgresStore::connect(&schema.url).await.unwrap();
    Some(Fixture {
        store: Arc::new(RedisSessions::new(postgres, &url).unwrap().prefix(&prefix)),
        _dir: None,
        _schema: Some(schema),
        redis: Some((url, prefix)),
    })
}

/// Tests that run once per store.
macro_rules! once {
    ($store:ident: $($test:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let Some(fixture) = crate::$store().await else { return };
            crate::suite::$test(fixture.store.clone()).await;
            fixture.finish().await;
        }
    )*};
}

/// Token tests that run once per store and token kind.
macro_rules! per_kind {
    ($store:ident, $kind:expr) => {
        per_kind!(@tests $store, $kind;
            tokens_of_user_are_listed_oldest_first_by_kind,
            active_token_limit_counts_only_active_tokens,
            concurrent_inserts_never_exceed_the_active_limit,
            rotation_replaces_an_active_token_once,
            fifty_concurrent_rotations_of_one_token_succeed_exactly_once,
            a_rotation_racing_a_family_revoke_never_leaves_the_family_active,
            a_rotation_racing_a_user_revoke_never_leaves_a_token_active,
            revocation_selectors_revoke_only_what_they_select,
            families_live_while_a_token_is_active,
            purge_deletes_what_expired_or_was_revoked_before_the_cutoff,
            last_use_only_moves_forward,
            timestamps_round_trip_at_microsecond_precision,
        );
    };
    (@tests $store:ident, $kind:expr; $($test:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let Some(fixture) = crate::$store().await else { return };
            crate::suite::$test(fixture.store.clone(), $kind).await;
            fixture.finish().await;
        }
    )*};
}

macro_rules! conformance {
    ($store:ident) => {
        mod $store {
            once!($store:
                users_are_found_by_id_username_and_email_ignoring_ascii_case,
                duplicate_usernames_and_emails_conflict_ignoring_case,
                first_user_roles_are_granted_once,
                users_are_counted_deactivated_ones_included,
                concurrent_registrations_make_exactly_one_first_user,
                updates_change_only_the_given_fields,
                tokens_are_found_by_kind_and_digest,
                duplicate_digests_conflict_within_a_kind,
                unicode_sql_metacharacters_and_large_values_round_trip,
                nul_bytes_are_refused_by_every_store,
                lookups_by_text_no_store_can_keep_find_nothing,
                tokens_of_unknown_users_are_refused,
                audit_events_are_kept_newest_first_and_filtered_by_user,
                counters_consume_within_a_limit_per_window,
                concurrent_consumption_never_passes_the_limit,
            );

            mod refresh_tokens {
                per_kind!($store, portcullis::store::TokenKind::Refresh);
            }

            mod sessions {
                per_kind!($store, portcullis::store::TokenKind::Session);
            }
        }
    };
}

conformance!(memory);
conformance!(sqlite);
conformance!(postgres);
conformance!(redis_sessions);
conformance!(redis_sessions_on_postgres);

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

/// A kind other than `kind`, for checks that kinds are kept apart.
fn other(kind: TokenKind) -> TokenKind {
    if kind == TokenKind::ApiKey {
        TokenKind::Refresh
    } else {
        TokenKind::ApiKey
    }
}

fn digest(n: u32) -> TokenDigest {
    TokenDigest::of(&format!("token-{n}"))
}

fn token(kind: TokenKind, user: UserId, n: u32) -> NewToken {
    NewToken {
        kind,
        digest: digest(n),
        user_id: user,
        name: Some(format!("token {n}")),
        hint: format!("pc_…{n:04}"),
        family: None,
        scopes: None,
        created_at: at(0),
        expires_at: Some(at(3600)),
        auth_time: None,
        max_active: None,
    }
}

async fn user(store: &dyn UserStore, name: &str) -> User {
    store
        .create_user(
            NewUser::new(name).email(format!("{name}@example.com")),
            at(0),
        )
        .await
        .unwrap()
}

mod suite {
    use super::*;

    pub(super) async fn counters_consume_within_a_limit_per_window(store: Arc<dyn UserStore>) {
        use portcullis::store::Consumption::{Allowed, Exceeded};
        let day = |n: i64| at(n * 86_400);
        let key = "quota:user:1:messages";
        assert_eq!(store.counter(key, day(0)).await.unwrap(), 0);
        assert_eq!(
            store.consume(key, day(0), 3, 5).await.unwrap(),
            Allowed { total: 3 }
        );
        assert_eq!(
            store.consume(key, day(0), 2, 5).await.unwrap(),
            Allowed { total: 5 }
        );
        assert_eq!(
            store.consume(key, day(0), 1, 5).await.unwrap(),
            Exceeded { total: 5 }
        );
        assert_eq!(
            store.counter(key, day(0)).await.unwrap(),
            5,
            "a refusal adds nothing"
        );
        // Other keys count on their own.
        assert_eq!(
            store
                .consume("quota:user:2:messages", day(0), 1, 5)
                .await
                .unwrap(),
            Allowed { total: 1 }
        );
        // A new window starts from zero; the old one is gone.
        assert_eq!(
            store.consume(key, day(1), 1, 5).await.unwrap(),
            Allowed { total: 1 }
        );
        assert_eq!(store.counter(key, day(1)).await.unwrap(), 1);
        // A late caller still in the previous window counts in the newest one.
        assert_eq!(
            store.consume(key, day(0), 1, 5).await.unwrap(),
            Allowed { total: 2 }
        );
        assert_eq!(
            store.counter(key, day(2)).await.unwrap(),
            0,
            "nothing counted yet on day 2"
        );
        // Limits and amounts at the edges.
        assert_eq!(
            store.consume("edge", day(0), 0, 0).await.unwrap(),
            Allowed { total: 0 }
        );
        // Counters saturate at i64::MAX, the largest value every store can hold.
        let max = i64::MAX as u64;
        assert_eq!(
            store
                .consume("edge", day(0), u64::MAX, u64::MAX)
                .await
                .unwrap(),
            Allowed { total: max }
        );
        assert_eq!(
            store.consume("edge", day(0), 1, u64::MAX).await.unwrap(),
            Exceeded { total: max }
        );
        for bad in ["", "nul\0key"] {
            assert!(matches!(
                store.consume(bad, day(0), 1, 5).await,
                Err(StoreError::InvalidInput(_))
            ));
        }
        assert!(matches!(
            store.consume(&"k".repeat(257), day(0), 1, 5).await,
            Err(StoreError::InvalidInput(_))
        ));
    }

    pub(super) async fn concurrent_consumption_never_passes_the_limit(store: Arc<dyn UserStore>) {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.consume("daily", at(0), 1, 20).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(matches!(
                task.await.unwrap(),
                portcullis::store::Consumption::Allowed { .. }
            ));
        }
        assert_eq!(allowed, 20);
        assert_eq!(store.counter("daily", at(0)).await.unwrap(), 20);
    }

    pub(super) async fn audit_events_are_kept_newest_first_and_filtered_by_user(
        store: Arc<dyn UserStore>,
    ) {
        use portcullis::audit::{AuditEvent, AuditKind};
        let ada = user(&*store, "ada").await;
        let bob = user(&*store, "bob").await;
        let kinds = [
            (AuditKind::UserRegistered, Some(ada.id)),
            (AuditKind::LoginFailed, None),
            (AuditKind::UserUpdated { deactivated: true }, Some(bob.id)),
            (
                AuditKind::TokenRefreshed {
                    family: FamilyId::new("f'; --"),
                },
                Some(ada.id),
            ),
            (
                AuditKind::RefreshTokenReused {
                    family: FamilyId::new("名前"),
                },
                Some(ada.id),
            ),
            (AuditKind::LoggedOut { revoked: 3 }, Some(bob.id)),
            (
                AuditKind::ApiKeyCreated {
                    key_id: portcullis::store::TokenId(7),
                },
                Some(ada.id),
            ),
            (
                AuditKind::ApiKeyRevoked {
                    key_id: portcullis::store::TokenId(-7),
                },
                Some(ada.id),
            ),
            (AuditKind::PasswordRehashed, Some(ada.id)),
            (AuditKind::LoginSucceeded, Some(bob.id)),
        ];
        let events: Vec<AuditEvent> = kinds
            .iter()
            .enumerate()
            .map(|(n, (kind, user_id))| AuditEvent {
                at: at(n as i64) + Duration::from_micros(n as u64),
                kind: kind.clone(),
                user_id: *user_id,
            })
            .collect();
        for event in &events {
            store.record_event(event).await.unwrap();
        }
        let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();
        assert_eq!(store.events(None, 100).await.unwrap(), newest_first);
        assert_eq!(
            store.events(None, 3).await.unwrap(),
            newest_first[..3].to_vec()
        );
        let bobs: Vec<AuditEvent> = newest_first
            .iter()
            .filter(|e| e.user_id == Some(bob.id))
            .cloned()
            .collect();
        assert_eq!(store.events(Some(bob.id), 100).await.unwrap(), bobs);
        assert_eq!(
            store.events(Some(UserId(424_242)), 100).await.unwrap(),
            vec![]
        );
        assert_eq!(store.events(None, 0).await.unwrap(), vec![]);
    }

    pub(super) async fn nul_bytes_are_refused_by_every_store(store: Arc<dyn UserStore>) {
        let refused = store.create_user(NewUser::new("a\0b"), at(0)).await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput("username"))),
            "{refused:?}"
        );
        let ada = user(&*store, "ada").await;
        let mut named = token(TokenKind::ApiKey, ada.id, 1);
        named.name = Some("x\0".into());
        assert!(matches!(
            store.insert_token(named).await,
            Err(StoreError::InvalidInput("name"))
        ));
        let update = UserUpdate::default().full_name(Some("\0".into()));
        assert!(matches!(
            store.update_user(ada.id, update, at(1)).await,
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(
            store.user_by_id(ada.id).await.unwrap().unwrap().full_name,
            None,
            "nothing written"
        );
    }

    /// Hardening item 8: such text comes from clients (a login form, say); PostgreSQL refused
    /// the query, which surfaced as a 503.
    pub(super) async fn lookups_by_text_no_store_can_keep_find_nothing(store: Arc<dyn UserStore>) {
        user(&*store, "ada").await;
        assert_eq!(store.user_by_username("ada\0").await.unwrap(), None);
        assert_eq!(store.user_by_username("\0").await.unwrap(), None);
        assert_eq!(
            store.user_by_email("ada@example.com\0").await.unwrap(),
            None
        );
        assert_eq!(store.counter("quota\0", at(0)).await.unwrap(), 0);
    }

    pub(super) async fn tokens_of_unknown_users_are_refused(store: Arc<dyn UserStore>) {
        let orphan = store
            .insert_token(token(TokenKind::ApiKey, UserId(424_242), 1))
            .await;
        assert!(matches!(orphan, Err(StoreError::Corrupt(_))), "{orphan:?}");
        assert_eq!(
            store
                .token_by_digest(TokenKind::ApiKey, &digest(1))
                .await
                .unwrap(),
            None
        );
    }

    pub(super) async fn users_are_found_by_id_username_and_email_ignoring_ascii_case(
        store: Arc<dyn UserStore>,
    ) {
        let created = store
            .create_user(
                NewUser::new("Ada")
                    .email("Ada@Example.com")
                    .full_name("Ada Lovelace")
                    .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
                    .roles(["member"]),
                at(0),
            )
            .await
            .unwrap();
        assert_eq!(created.username, "Ada");
        assert_eq!(created.roles, ["member"]);
        assert!(created.is_active);
        assert_eq!(created.created_at, at(0));
        assert_eq!(created.last_login, None);
        assert_eq!(
            store.user_by_id(created.id).await.unwrap(),
            Some(created.clone())
        );
        assert_eq!(
            store.user_by_username("ADA").await.unwrap(),
            Some(created.clone())
        );
        assert_eq!(
            store.user_by_email("ada@example.COM").await.unwrap(),
            Some(created.clone())
        );
        assert_eq!(store.user_by_username("bob").await.unwrap(), None);
        assert_eq!(
            store.user_by_id(UserId(created.id.0 + 1000)).await.unwrap(),
            None
        );
    }

    pub(super) async fn duplicate_usernames_and_emails_conflict_ignoring_case(
        store: Arc<dyn UserStore>,
    ) {
        user(&*store, "ada").await;
        let taken_name = store.create_user(NewUser::new("ADA"), at(1)).await;
        assert!(
            matches!(taken_name, Err(StoreError::Conflict("username"))),
            "{taken_name:?}"
        );
        let taken_email = store
            .create_user(NewUser::new("bob").email("ADA@example.com"), at(1))
            .await;
        assert!(
            matches!(taken_email, Err(StoreError::Conflict("email"))),
            "{taken_email:?}"
        );
        // Users without email never conflict on email.
        store
            .create_user(NewUser::new("carol"), at(1))
            .await
            .unwrap();
        store
            .create_user(NewUser::new("dave"), at(1))
            .await
            .unwrap();
    }

    pub(super) async fn first_user_roles_are_granted_once(store: Arc<dyn UserStore>) {
        let new = |name: &str| {
            NewUser::new(name)
                .roles(["member"])
                .first_user_roles(["superuser", "member"])
        };
        let first = store.create_user(new("first"), at(0)).await.unwrap();
        let second = store.create_user(new("second"), at(0)).await.unwrap();
        assert_eq!(first.roles, ["member", "superuser"]);
        assert!(first.is_superuser());
        assert_eq!(second.roles, ["member"]);
    }

    pub(super) async fn users_are_counted_deactivated_ones_included(store: Arc<dyn UserStore>) {
        assert_eq!(store.count_users().await.unwrap(), 0);
        let ada = user(&*store, "ada").await;
        user(&*store, "bob").await;
        assert_eq!(store.count_users().await.unwrap(), 2);
        let deactivate = UserUpdate {
            is_active: Some(false),
            ..UserUpdate::default()
        };
        store.update_user(ada.id, deactivate, at(1)).await.unwrap();
        assert_eq!(store.count_users().await.unwrap(), 2);
    }

    pub(super) async fn concurrent_registrations_make_exactly_one_first_user(
        store: Arc<dyn UserStore>,
    ) {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
                        .create_user(
                            NewUser::new(format!("user{i}")).first_user_roles(["superuser"]),
                            at(0),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut superusers = 0;
        for task in tasks {
            superusers += usize::from(task.await.unwrap().is_superuser());
        }
        assert_eq!(superusers, 1);
    }

    pub(super) async fn updates_change_only_the_given_fields(store: Arc<dyn UserStore>) {
        let ada = user(&*store, "ada").await;
        user(&*store, "bob").await;
        let updated = store
            .update_user(
                ada.id,
                UserUpdate::default()
                    .password_hash("h2")
                    .roles(["admin"])
                    .active(false)
                    .last_login(at(5)),
                at(10),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.password_hash.as_deref(), Some("h2"));
        assert_eq!(updated.roles, ["admin"]);
        assert!(!updated.is_active);
        assert_eq!(updated.last_login, Some(at(5)));
        assert_eq!(updated.updated_at, at(10));
        assert_eq!(updated.email, ada.email, "untouched");
        assert_eq!(updated.created_at, ada.created_at, "untouched");

        let cleared = store
            .update_user(
                ada.id,
                UserUpdate::default()
                    .email(None)
                    .full_name(Some("A".into())),
                at(11),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cleared.email, None);
        assert_eq!(cleared.full_name.as_deref(), Some("A"));
        assert_eq!(cleared.password_hash.as_deref(), Some("h2"), "untouched");

        let conflict = store
            .update_user(
                ada.id,
                UserUpdate::default().email(Some("BOB@example.com".into())),
                at(12),
            )
            .await;
        assert!(
            matches!(conflict, Err(StoreError::Conflict("email"))),
            "{conflict:?}"
        );
        assert_eq!(
            store
                .update_user(UserId(999_999), UserUpdate::default(), at(0))
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.user_by_id(ada.id).await.unwrap().unwrap(), cleared);
    }

    pub(super) async fn tokens_are_found_by_kind_and_digest(store: Arc<dyn UserStore>) {
        let ada = user(&*store, "ada").await;
        let mut new = token(TokenKind::ApiKey, ada.id, 1);
        new.scopes = Some(vec!["read".into(), "write".into()]);
        new.family = Some(FamilyId::new("f1"));
        let stored = store.insert_token(new.clone()).await.unwrap();
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
            store
                .token_by_digest(TokenKind::ApiKey, &digest(1))
                .await
                .unwrap(),
            Some(stored)
        );
        assert_eq!(
            store
                .token_by_digest(TokenKind::Refresh, &digest(1))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .token_by_digest(TokenKind::ApiKey, &digest(2))
                .await
                .unwrap(),
            None
        );
        // Every kind is storable.
        for (n, kind) in TokenKind::ALL.into_iter().enumerate() {
            let record = store
                .insert_token(token(kind, ada.id, 100 + n as u32))
                .await
                .unwrap();
            assert_eq!(record.kind, kind);
        }
    }

    pub(super) async fn duplicate_digests_conflict_within_a_kind(store: Arc<dyn UserStore>) {
        let ada = user(&*store, "ada").await;
        store
            .insert_token(token(TokenKind::ApiKey, ada.id, 1))
            .await
            .unwrap();
        let again = store
            .insert_token(token(TokenKind::ApiKey, ada.id, 1))
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict("digest"))),
            "{again:?}"
        );
        store
            .insert_token(token(TokenKind::Session, ada.id, 1))
            .await
            .unwrap();
    }

    pub(super) async fn tokens_of_user_are_listed_oldest_first_by_kind(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let bob = user(&*store, "bob").await;
        for n in 0..5 {
            store.insert_token(token(kind, ada.id, n)).await.unwrap();
        }
        store
            .insert_token(token(other(kind), ada.id, 10))
            .await
            .unwrap();
        store.insert_token(token(kind, bob.id, 11)).await.unwrap();
        let listed = store.tokens_of_user(ada.id, kind).await.unwrap();
        let digests: Vec<_> = listed.iter().map(|t| t.digest).collect();
        assert_eq!(digests, (0..5).map(digest).collect::<Vec<_>>());
        assert_eq!(
            store.tokens_of_user(bob.id, other(kind)).await.unwrap(),
            vec![]
        );
    }

    pub(super) async fn active_token_limit_counts_only_active_tokens(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let limited = |n: u32, created: i64| NewToken {
            max_active: Some(2),
            created_at: at(created),
            ..token(kind, ada.id, n)
        };
        let first = store.insert_token(limited(1, 0)).await.unwrap();
        store.insert_token(limited(2, 0)).await.unwrap();
        let third = store.insert_token(limited(3, 0)).await;
        assert!(
            matches!(third, Err(StoreError::LimitReached { limit: 2 })),
            "{third:?}"
        );
        // Revoked and expired tokens free their slot.
        store
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
        store.insert_token(limited(3, 1)).await.unwrap();
        assert!(store.insert_token(limited(4, 1)).await.is_err());
        store.insert_token(limited(4, 3600)).await.unwrap();
        // Other kinds and users have their own counts.
        store
            .insert_token(NewToken {
                max_active: Some(2),
                ..token(other(kind), ada.id, 5)
            })
            .await
            .unwrap();
    }

    pub(super) async fn concurrent_inserts_never_exceed_the_active_limit(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let tasks: Vec<_> = (0..30)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
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

    pub(super) async fn rotation_replaces_an_active_token_once(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let family = FamilyId::new("fam");
        let original = store
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
        } = store
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
        match store
            .rotate_token(kind, &digest(1), again.clone(), at(11))
            .await
            .unwrap()
        {
            Rotation::Rejected(Some(record)) => {
                assert_eq!(record.revoke_reason, Some(RevokeReason::Rotated))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.token_by_digest(kind, &digest(3)).await.unwrap(), None);
        // Unknown, expired, and wrong-kind tokens do not rotate.
        assert_eq!(
            store
                .rotate_token(kind, &digest(99), again.clone(), at(11))
                .await
                .unwrap(),
            Rotation::Rejected(None)
        );
        assert!(matches!(
            store
                .rotate_token(kind, &digest(2), again.clone(), at(3600))
                .await
                .unwrap(),
            Rotation::Rejected(Some(_))
        ));
        assert_eq!(
            store
                .rotate_token(other(kind), &digest(2), again, at(11))
                .await
                .unwrap(),
            Rotation::Rejected(None)
        );
    }

    pub(super) async fn fifty_concurrent_rotations_of_one_token_succeed_exactly_once(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        store.insert_token(token(kind, ada.id, 0)).await.unwrap();
        let tasks: Vec<_> = (1..=50)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
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
        let active = store.tokens_of_user(ada.id, kind).await.unwrap();
        assert_eq!(active.iter().filter(|t| t.is_active(at(1))).count(), 1);
    }

    /// Hardening item 10: under READ COMMITTED, a family revoke's snapshot did not contain the
    /// replacement a concurrent rotation was inserting, so "log out", reuse detection or a
    /// password change could leave the new token (and the family's access tokens) alive.
    pub(super) async fn a_rotation_racing_a_family_revoke_never_leaves_the_family_active(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        race_rotations_against_revokes(store, kind, |_, family| TokenSelector::Family(family))
            .await;
    }

    /// Hardening item 10, for "log out everywhere" (a revoke of every token of a user).
    pub(super) async fn a_rotation_racing_a_user_revoke_never_leaves_a_token_active(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        race_rotations_against_revokes(store, kind, |user, _| TokenSelector::User {
            user,
            kind: Some(kind),
        })
        .await;
    }

    /// 200 rounds of one rotation started at the same time as one revoke of `selector`.
    async fn race_rotations_against_revokes(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
        selector: impl Fn(UserId, FamilyId) -> TokenSelector,
    ) {
        let ada = user(&*store, "ada").await;
        let mut lost = Vec::new();
        for round in 0..200u32 {
            let family = FamilyId::new(format!("family-{round}"));
            let in_family = |n: u32| NewToken {
                family: Some(family.clone()),
                ..token(kind, ada.id, n)
            };
            store.insert_token(in_family(round * 2)).await.unwrap();
            let rotation = {
                let (store, replacement) = (Arc::clone(&store), in_family(round * 2 + 1));
                tokio::spawn(async move {
                    store
                        .rotate_token(kind, &digest(round * 2), replacement, at(1))
                        .await
                        .unwrap()
                })
            };
            let revoke = {
                let (store, selector) = (Arc::clone(&store), selector(ada.id, family.clone()));
                tokio::spawn(async move {
                    store
                        .revoke_tokens(selector, RevokeReason::Logout, at(1))
                        .await
                        .unwrap()
                })
            };
            let (rotated, _) = (rotation.await.unwrap(), revoke.await.unwrap());
            if store.family_is_active(&family, at(2)).await.unwrap() {
                lost.push((round, matches!(rotated, Rotation::Rotated { .. })));
            }
        }
        assert!(
            lost.is_empty(),
            "{} of 200 rounds left the family active after its revoke (round, rotated): {lost:?}",
            lost.len()
        );
        let active = store.tokens_of_user(ada.id, kind).await.unwrap();
        assert!(active.iter().all(|token| !token.is_active(at(2))));
    }

    pub(super) async fn revocation_selectors_revoke_only_what_they_select(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let bob = user(&*store, "bob").await;
        let key = store.insert_token(token(kind, ada.id, 1)).await.unwrap();
        let revoke = |selector| {
            let store = Arc::clone(&store);
            async move {
                store
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

        store
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
        store.insert_token(fam(3, "a", ada.id)).await.unwrap();
        store.insert_token(fam(4, "a", ada.id)).await.unwrap();
        store.insert_token(fam(5, "b", ada.id)).await.unwrap();
        store.insert_token(fam(6, "c", bob.id)).await.unwrap();
        assert_eq!(
            revoke(TokenSelector::Family(FamilyId::new("a")))
                .await
                .len(),
            2
        );
        store
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
        let bobs = store.tokens_of_user(bob.id, kind).await.unwrap();
        assert_eq!(bobs[0].revoked_at, None, "other users untouched");
    }

    pub(super) async fn families_live_while_a_token_is_active(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let family = FamilyId::new("session");
        assert!(!store.family_is_active(&family, at(0)).await.unwrap());
        store
            .insert_token(NewToken {
                family: Some(family.clone()),
                ..token(kind, ada.id, 1)
            })
            .await
            .unwrap();
        assert!(store.family_is_active(&family, at(0)).await.unwrap());
        assert!(
            !store.family_is_active(&family, at(3600)).await.unwrap(),
            "expired"
        );
        store
            .revoke_tokens(
                TokenSelector::Family(family.clone()),
                RevokeReason::Logout,
                at(1),
            )
            .await
            .unwrap();
        assert!(
            !store.family_is_active(&family, at(1)).await.unwrap(),
            "revoked"
        );
    }

    pub(super) async fn purge_deletes_what_expired_or_was_revoked_before_the_cutoff(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let ada = user(&*store, "ada").await;
        let expiring = |n, at_seconds| NewToken {
            expires_at: Some(at(at_seconds)),
            ..token(kind, ada.id, n)
        };
        store.insert_token(expiring(1, 100)).await.unwrap();
        store.insert_token(token(kind, ada.id, 2)).await.unwrap();
        for (n, revoked_at) in [(3, 150), (4, 250)] {
            store.insert_token(token(kind, ada.id, n)).await.unwrap();
            store
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
        store
            .insert_token(NewToken {
                expires_at: None,
                ..token(kind, ada.id, 5)
            })
            .await
            .unwrap();
        store.insert_token(expiring(6, 200)).await.unwrap();
        store
            .insert_token(NewToken {
                kind: other(kind),
                ..expiring(7, 100)
            })
            .await
            .unwrap();

        assert_eq!(store.purge_tokens(at(200)).await.unwrap(), 3);
        for (n, kept) in [
            (1, false),
            (2, true),
            (3, false),
            (4, true),
            (5, true),
            (6, true),
        ] {
            let found = store.token_by_digest(kind, &digest(n)).await.unwrap();
            assert_eq!(found.is_some(), kept, "token {n}");
        }
        assert!(
            store
                .token_by_digest(other(kind), &digest(7))
                .await
                .unwrap()
                .is_none()
        );
        let listed = store.tokens_of_user(ada.id, kind).await.unwrap();
        assert_eq!(listed.len(), 4);
        assert_eq!(store.purge_tokens(at(200)).await.unwrap(), 0);
        // A purged digest is free again.
        store.insert_token(expiring(1, 3600)).await.unwrap();
    }

    pub(super) async fn last_use_only_moves_forward(store: Arc<dyn UserStore>, kind: TokenKind) {
        let ada = user(&*store, "ada").await;
        let key = store.insert_token(token(kind, ada.id, 1)).await.unwrap();
        store
            .record_token_use(&[TokenUse {
                id: key.id,
                at: at(20),
            }])
            .await
            .unwrap();
        store
            .record_token_use(&[TokenUse {
                id: key.id,
                at: at(10),
            }])
            .await
            .unwrap();
        store.record_token_use(&[]).await.unwrap();
        let found = store
            .token_by_digest(kind, &digest(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.last_used_at, Some(at(20)));
        // Unknown ids are ignored.
        store
            .record_token_use(&[TokenUse {
                id: portcullis::store::TokenId(if kind == TokenKind::Session {
                    -999_999
                } else {
                    999_999
                }),
                at: at(30),
            }])
            .await
            .unwrap();
    }

    pub(super) async fn timestamps_round_trip_at_microsecond_precision(
        store: Arc<dyn UserStore>,
        kind: TokenKind,
    ) {
        let precise = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000).unwrap();
        let ada = store
            .create_user(NewUser::new("ada"), precise)
            .await
            .unwrap();
        assert_eq!(
            store.user_by_id(ada.id).await.unwrap().unwrap().created_at,
            precise
        );
        let key = store
            .insert_token(NewToken {
                created_at: precise,
                expires_at: Some(precise + Duration::from_micros(1)),
                auth_time: Some(precise - Duration::from_micros(7)),
                ..token(kind, ada.id, 1)
            })
            .await
            .unwrap();
        let found = store
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

    pub(super) async fn unicode_sql_metacharacters_and_large_values_round_trip(
        store: Arc<dyn UserStore>,
    ) {
        let hostile = [
            "Robert'); DROP TABLE portcullis_users;--",
            "\" OR \"1\"=\"1",
            "名前-ユーザー-🦀",
            "%_\\[]^$.*",
            "tab\tnewline\ncr\r",
            "ａｄｍｉｎ",
        ];
        for (n, text) in hostile.iter().enumerate() {
            let created = store
                .create_user(
                    NewUser::new(*text)
                        .email(format!("{text}{n}@example.com"))
                        .full_name(*text)
                        .password_hash(*text)
                        .roles([*text]),
                    at(0),
                )
                .await
                .unwrap();
            let found = store.user_by_username(text).await.unwrap().unwrap();
            assert_eq!(found, created);
            assert_eq!(found.username, *text);
            assert_eq!(found.roles, [*text]);
            let mut new = token(TokenKind::ApiKey, created.id, n as u32);
            new.name = Some((*text).to_owned());
            new.hint = (*text).to_owned();
            new.family = Some(FamilyId::new(*text));
            new.scopes = Some(vec![(*text).to_owned()]);
            let stored = store.insert_token(new).await.unwrap();
            let found = store
                .token_by_digest(TokenKind::ApiKey, &stored.digest)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found, stored);
            assert!(
                store
                    .family_is_active(&FamilyId::new(*text), at(0))
                    .await
                    .unwrap()
            );
        }
        // A wildcard-looking name matches only itself.
        assert!(store.user_by_username("%").await.unwrap().is_none());
        // 1 MB values.
        let large = "x".repeat(1 << 20);
        let big = store
            .create_user(
                NewUser::new("big")
                    .full_name(large.clone())
                    .password_hash(large.clone()),
                at(0),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .user_by_id(big.id)
                .await
                .unwrap()
                .unwrap()
                .full_name
                .unwrap()
                .len(),
            1 << 20
        );
        let mut new = token(TokenKind::ApiKey, big.id, 500);
        new.name = Some(large.clone());
        let stored = store.insert_token(new).await.unwrap();
        assert_eq!(stored.name.unwrap().len(), 1 << 20);
    }
}
