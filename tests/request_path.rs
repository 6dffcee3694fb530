//! The request path end to end: AuthLayer, sources, cache, guards and extractors, driven
//! through an axum router against real stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::clock::ManualClock;
use portcullis::guard::RequireLayer;
use portcullis::source::{Bearer, InternalKey, QueryToken, SubprotocolToken, TokenResolver};
use portcullis::store::{
    FamilyId, MemoryStore, NewToken, NewUser, RevokeReason, Rotation, SqliteStore, StoreError,
    Stores, TokenKind, TokenRecord, TokenSelector, TokenStore, TokenUse, User, UserId, UserUpdate,
};
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::token::{TokenDigest, TokenFormat};
use portcullis::{
    AccessTokens, ApiKeys, Auth, AuthLayer, CurrentUser, Identity, JwtConfig, NewApiKey,
    RefreshTokens,
};
use time::OffsetDateTime;
use tower::ServiceExt;

/// Delegates to a real store and counts token lookups, to observe the cache.
struct Counting<S> {
    inner: S,
    lookups: AtomicUsize,
}

#[async_trait]
impl<S: TokenStore> TokenStore for Counting<S> {
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.inner.insert_token(token).await
    }
    async fn token_by_digest(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        // Long enough that concurrent misses overlap.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.inner.token_by_digest(kind, digest).await
    }
    async fn tokens_of_user(
        &self,
        user: UserId,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.tokens_of_user(user, kind).await
    }
    async fn rotate_token(
        &self,
        kind: TokenKind,
        presented: &TokenDigest,
        replacement: NewToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        self.inner
            .rotate_token(kind, presented, replacement, now)
            .await
    }
    async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.revoke_tokens(selector, reason, now).await
    }
    async fn family_is_active(
        &self,
        family: &FamilyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.family_is_active(family, now).await
    }
    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.purge_tokens(before).await
    }
    async fn record_token_use(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        self.inner.record_token_use(uses).await
    }
}

const INTERNAL_KEY: &str = "internal-key-of-at-least-thirty-two-bytes";

struct App {
    auth: Auth,
    store: Arc<Counting<SqliteStore>>,
    clock: Arc<ManualClock>,
    api_keys: ApiKeys,
    access: AccessTokens,
    refresh: RefreshTokens,
    router: Router,
    user: User,
    _dir: tempfile::TempDir,
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::connect(&format!(
            "sqlite://{}",
            dir.path().join("auth.db").display()
        ))
        .await
        .unwrap();
        let mut stores = Stores::new(sqlite.clone());
        let store = Arc::new(Counting {
            inner: sqlite,
            lookups: AtomicUsize::new(0),
        });
        stores.tokens = store.clone();
        let clock = Arc::new(ManualClock::starting_now());
        let auth = Auth::builder(stores)
            .shared_clock(clock.clone())
            .last_used(Duration::from_secs(3600), Duration::from_secs(60))
            .build();
        let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_").unwrap());
        let keys = JwtKeys::new(JwtKey::hs256(&[7; 32]).unwrap()).unwrap();
        let access = AccessTokens::new(&auth, keys, JwtConfig::new("test", "test-api"));
        let refresh = RefreshTokens::new(
            &auth,
            TokenFormat::new("smtr_").unwrap(),
            Duration::from_secs(86_400),
        );
        let layer = AuthLayer::builder()
            .source(Bearer::new(api_keys.clone()))
            .source(Bearer::new(access.clone()))
            .source(QueryToken::new(access.clone(), "/ws/"))
            .source(SubprotocolToken::new(access.clone(), "access_token."))
            .source(InternalKey::new("worker", INTERNAL_KEY).unwrap())
            .build();
        let router = Router::new()
            .route(
                "/me",
                get(|user: CurrentUser| async move { user.username.clone() }),
            )
            .route(
                "/whoami",
                get(|identity: Option<Identity>| async move {
                    identity.map_or_else(|| "anonymous".to_owned(), |id| id.name().to_owned())
                }),
            )
            .route(
                "/ws/ops",
                get(|identity: Identity| async move { identity.name().to_owned() }),
            )
            .route(
                "/write",
                get(|| async { "written" }).layer(RequireLayer::scope("collections:write")),
            )
            .route(
                "/admin",
                get(|| async { "admin" }).layer(RequireLayer::any_role(["superuser"])),
            )
            .layer(layer);
        let user = auth
            .users()
            .create_user(
                NewUser::new("ada").first_user_roles(["superuser"]),
                auth.now(),
            )
            .await
            .unwrap();
        App {
            auth,
            store,
            clock,
            api_keys,
            access,
            refresh,
            router,
            user,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String, Option<String>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let (status, body, _) = self.send(request.body(Body::empty()).unwrap()).await;
        (status, body)
    }

    fn lookups(&self) -> usize {
        self.store.lookups.load(Ordering::SeqCst)
    }

    async fn api_key(&self, key: NewApiKey) -> String {
        self.api_keys
            .create(&self.user, key)
            .await
            .unwrap()
            .secret
            .into_exposed()
    }

    /// A fresh access token of the user, tied to a refresh family or to none.
    fn access_token(&self, family: Option<&portcullis::store::FamilyId>) -> String {
        self.access
            .issue(&self.user, family)
            .unwrap()
            .token
            .into_exposed()
    }
}

#[tokio::test]
async fn a_cached_api_key_costs_one_store_lookup() {
    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    for _ in 0..20 {
        assert_eq!(
            app.get("/me", Some(&key)).await,
            (StatusCode::OK, "ada".into())
        );
    }
    assert_eq!(app.lookups(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_cause_one_store_query() {
    let app = Arc::new(App::new().await);
    let key = Arc::new(app.api_key(NewApiKey::named("laptop")).await);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (app, key) = (Arc::clone(&app), Arc::clone(&key));
            tokio::spawn(async move { app.get("/me", Some(&key)).await.0 })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.lookups(), 1);
}

#[tokio::test]
async fn malformed_and_mistyped_keys_never_reach_the_store() {
    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    let mut typo = key.clone();
    typo.replace_range(10..11, if &key[10..11] == "a" { "b" } else { "a" });
    for bad in [typo.as_str(), "smtk_short", &format!("{key}x")] {
        let (status, _, challenge) = app
            .send(
                Request::get("/me")
                    .header("authorization", format!("Bearer {bad}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(challenge.unwrap().contains("invalid_token"));
    }
    assert_eq!(app.lookups(), 0);
}

#[tokio::test]
async fn unknown_keys_are_cached_negatively() {
    let app = App::new().await;
    let format = TokenFormat::new("smtk_").unwrap();
    let unknown = format.generate().unwrap().into_secret().into_exposed();
    for _ in 0..10 {
        assert_eq!(
            app.get("/me", Some(&unknown)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.lookups(), 1);
    // A flood of distinct unknown keys does not evict a hot valid key.
    let key = app.api_key(NewApiKey::named("hot")).await;
    for _ in 0..5 {
        app.get("/me", Some(&key)).await;
    }
    for _ in 0..500 {
        let random = format.generate().unwrap().into_secret().into_exposed();
        assert_eq!(
            app.get("/me", Some(&random)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let before = app.lookups();
    assert_eq!(app.get("/me", Some(&key)).await.0, StatusCode::OK);
    assert_eq!(app.lookups(), before, "the hot key is still cached");
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = App::new().await;
    let created = app
        .api_keys
        .create(&app.user, NewApiKey::named("laptop"))
        .await
        .unwrap();
    let key = created.secret.expose();
    assert_eq!(app.get("/me", Some(key)).await.0, StatusCode::OK);
    assert!(
        app.api_keys
            .revoke(app.user.id, created.record.id)
            .await
            .unwrap()
    );
    assert_eq!(app.get("/me", Some(key)).await.0, StatusCode::UNAUTHORIZED);
    assert!(
        !app.api_keys
            .revoke(app.user.id, created.record.id)
            .await
            .unwrap(),
        "already revoked"
    );
    let listed = app.api_keys.list(app.user.id).await.unwrap();
    assert_eq!(
        listed[0].revoke_reason,
        Some(RevokeReason::Revoked),
        "soft: the row stays"
    );
}

#[tokio::test]
async fn an_expired_key_is_refused_even_while_cached() {
    let app = App::new().await;
    let key = app
        .api_key(NewApiKey {
            expires_in: Some(Duration::from_secs(60)),
            ..NewApiKey::named("short")
        })
        .await;
    assert_eq!(app.get("/me", Some(&key)).await.0, StatusCode::OK);
    app.clock.advance(Duration::from_secs(61));
    let (status, body) = app.get("/me", Some(&key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test]
async fn a_bad_credential_never_falls_through_to_a_later_source() {
    let app = App::new().await;
    let bad_key = format!("smtk_{}", "A".repeat(49));
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {bad_key}"))
        .header("x-internal-api-key", INTERNAL_KEY)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unrecognised_authorization_is_refused_not_ignored() {
    let app = App::new().await;
    for value in [
        "Bearer opaque-but-unknown-format",
        "Basic YWRhOnB3",
        "Token abc",
    ] {
        let request = Request::get("/whoami")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        let (status, _, challenge) = app.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
        assert!(challenge.unwrap().contains("invalid_token"));
    }
    let request = Request::get("/whoami")
        .header("authorization", "Bearer a b")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.send(request).await.0,
        StatusCode::BAD_REQUEST,
        "RFC 6750 §3.1 invalid_request"
    );
}

#[tokio::test]
async fn rfc6750_3_1_anonymous_requests_reach_public_routes_and_get_401_without_error_code() {
    let app = App::new().await;
    assert_eq!(
        app.get("/whoami", None).await,
        (StatusCode::OK, "anonymous".into())
    );
    let (status, body, challenge) = app
        .send(Request::get("/me").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"api\""));
}

#[tokio::test]
async fn the_internal_key_authenticates_a_service_not_a_user() {
    let app = App::new().await;
    let with_key = |key: &str| {
        Request::get("/whoami")
            .header("x-internal-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(app.send(with_key(INTERNAL_KEY)).await.1, "worker");
    assert_eq!(
        app.send(with_key("internal-key-of-more-than-sixteen-byteZ"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.send(with_key("")).await.0, StatusCode::UNAUTHORIZED);
    let service_as_user = Request::get("/me")
        .header("x-internal-api-key", INTERNAL_KEY)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(service_as_user).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn scoped_keys_are_limited_and_unscoped_keys_are_not() {
    let app = App::new().await;
    let read_only = app
        .api_key(NewApiKey {
            scopes: Some(vec!["collections:read".into()]),
            ..NewApiKey::named("ro")
        })
        .await;
    let full = app.api_key(NewApiKey::named("full")).await;
    let (status, _, challenge) = app
        .send(
            Request::get("/write")
                .header("authorization", format!("Bearer {read_only}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    assert_eq!(app.get("/write", Some(&full)).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/admin", Some(&full)).await.0,
        StatusCode::OK,
        "first user is superuser"
    );
}

#[tokio::test]
async fn deactivation_stops_every_credential_of_the_user_and_reactivation_restores_them() {
    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    let jwt = app.access_token(None);
    assert_eq!(app.get("/me", Some(&key)).await.0, StatusCode::OK);
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::OK);

    app.auth
        .update_user(app.user.id, UserUpdate::default().active(false))
        .await
        .unwrap();
    for credential in [&key, &jwt] {
        let (status, body) = app.get("/me", Some(credential)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::UNAUTHORIZED, r#"{"detail":"Inactive user"}"#)
        );
    }
    app.auth
        .update_user(app.user.id, UserUpdate::default().active(true))
        .await
        .unwrap();
    assert_eq!(app.get("/me", Some(&key)).await.0, StatusCode::OK);
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn role_changes_apply_to_cached_credentials_at_once() {
    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    assert_eq!(app.get("/admin", Some(&key)).await.0, StatusCode::OK);
    app.auth
        .update_user(
            app.user.id,
            UserUpdate::default().roles(Vec::<String>::new()),
        )
        .await
        .unwrap();
    assert_eq!(app.get("/admin", Some(&key)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_users_cached_credentials_share_one_record_and_a_known_owners_new_token_needs_no_store() {
    let app = App::new().await;
    // No credential of the user resolved yet: a new token's owner must come from the store.
    let before = app.access_token(None);
    assert!(app.access.resolve_now(&before).is_none());
    let key = app.api_key(NewApiKey::named("laptop")).await;
    let by_key = app.api_keys.resolve(&key).await.unwrap();
    // The key's owner is now cached, so a token seen for the first time resolves on sight.
    let fresh = app.access_token(None);
    let by_token = app.access.resolve_now(&fresh).unwrap().unwrap();
    assert!(std::ptr::eq(
        by_key.user_record().unwrap(),
        by_token.user_record().unwrap()
    ));
    assert_eq!(by_token.user_record().unwrap().password_hash, None);
    // A token naming a session still asks the store whether the session lives.
    let family = FamilyId::new("a-session");
    assert!(
        app.access
            .resolve_now(&app.access_token(Some(&family)))
            .is_none()
    );
    // A forged token is refused on sight.
    let forged = format!("{}x", &fresh[..fresh.len() - 1]);
    assert!(matches!(app.access.resolve_now(&forged), Some(Err(_))));
}

#[tokio::test]
async fn keys_loaded_with_their_owner_in_one_query_share_the_owners_record() {
    // One store for tokens and users: each miss reads the key and its owner together.
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("owners.db").display());
    for store in [
        Stores::new(MemoryStore::new()),
        Stores::new(SqliteStore::connect(&sqlite_url).await.unwrap()),
    ] {
        let auth = Auth::builder(store).build();
        let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_").unwrap());
        let user = auth
            .users()
            .create_user(NewUser::new("ada"), auth.now())
            .await
            .unwrap();
        let mut identities = Vec::new();
        for name in ["laptop", "phone", "ci"] {
            let key = api_keys
                .create(&user, NewApiKey::named(name))
                .await
                .unwrap()
                .secret
                .into_exposed();
            identities.push(api_keys.resolve(&key).await.unwrap());
        }
        let first = identities[0].user_record().unwrap();
        assert!(
            identities
                .iter()
                .all(|identity| std::ptr::eq(identity.user_record().unwrap(), first))
        );
    }
}

#[tokio::test]
async fn owner_changes_reach_tokens_seen_for_the_first_time_at_once() {
    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    assert_eq!(app.get("/admin", Some(&key)).await.0, StatusCode::OK);
    app.auth
        .update_user(
            app.user.id,
            UserUpdate::default().roles(Vec::<String>::new()),
        )
        .await
        .unwrap();
    let fresh = app.access_token(None);
    assert_eq!(
        app.get("/admin", Some(&fresh)).await.0,
        StatusCode::FORBIDDEN
    );
    app.auth
        .update_user(app.user.id, UserUpdate::default().active(false))
        .await
        .unwrap();
    let (status, body) = app.get("/me", Some(&app.access_token(None))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, r#"{"detail":"Inactive user"}"#)
    );
}

#[tokio::test]
async fn logout_ends_the_sessions_access_tokens_even_when_cached() {
    let app = App::new().await;
    let session = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    let other = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    let jwt = app.access_token(Some(&session.family));
    let other_jwt = app.access_token(Some(&other.family));
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::OK);
    assert_eq!(
        app.refresh
            .revoke(session.secret.expose(), app.user.id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/me", Some(&other_jwt)).await.0,
        StatusCode::OK,
        "other sessions live on"
    );
    assert_eq!(app.refresh.revoke_all(app.user.id).await.unwrap(), 1);
    assert_eq!(
        app.get("/me", Some(&other_jwt)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_refresh_token_of_another_user_cannot_be_logged_out() {
    let app = App::new().await;
    let bob = app
        .auth
        .users()
        .create_user(NewUser::new("bob"), app.auth.now())
        .await
        .unwrap();
    let bobs = app
        .refresh
        .issue(&password_sign_in(&app.auth, &bob))
        .await
        .unwrap();
    assert_eq!(
        app.refresh
            .revoke(bobs.secret.expose(), app.user.id)
            .await
            .unwrap(),
        0
    );
    assert!(app.refresh.rotate(bobs.secret.expose()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_of_one_token_succeed_exactly_once() {
    let app = Arc::new(App::new().await);
    let issued = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    let token = Arc::new(issued.secret.into_exposed());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, token) = (Arc::clone(&app), Arc::clone(&token));
            tokio::spawn(async move { app.refresh.rotate(&token).await.is_ok() })
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        successes += usize::from(task.await.unwrap());
    }
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn rfc9700_4_14_2_refresh_token_reuse_revokes_the_family_and_its_access_tokens() {
    let app = App::new().await;
    let first = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    let second = app.refresh.rotate(first.secret.expose()).await.unwrap();
    let jwt = app.access_token(Some(&second.issued.family));
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::OK);
    // The stolen first token is replayed.
    let replay = app.refresh.rotate(first.secret.expose()).await;
    assert!(matches!(
        replay,
        Err(portcullis::AuthError::InvalidToken(
            portcullis::InvalidToken::Reused
        ))
    ));
    assert!(
        app.refresh
            .rotate(second.issued.secret.expose())
            .await
            .is_err(),
        "family revoked"
    );
    assert_eq!(app.get("/me", Some(&jwt)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_reuse_grace_period_tolerates_a_racing_retry_without_revoking() {
    let app = App::new().await;
    let refresh = app.refresh.clone().reuse_grace(Duration::from_secs(10));
    let first = refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    let second = refresh.rotate(first.secret.expose()).await.unwrap();
    assert!(refresh.rotate(first.secret.expose()).await.is_err());
    assert!(
        refresh.rotate(second.issued.secret.expose()).await.is_ok(),
        "family intact"
    );
}

#[tokio::test]
async fn expired_and_inactive_refreshes_are_refused() {
    let app = App::new().await;
    let issued = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    app.clock.advance(Duration::from_secs(86_401));
    assert!(matches!(
        app.refresh.rotate(issued.secret.expose()).await,
        Err(portcullis::AuthError::InvalidToken(
            portcullis::InvalidToken::Expired
        ))
    ));
    let fresh = app
        .refresh
        .issue(&password_sign_in(&app.auth, &app.user))
        .await
        .unwrap();
    app.auth
        .update_user(app.user.id, UserUpdate::default().active(false))
        .await
        .unwrap();
    assert!(matches!(
        app.refresh.rotate(fresh.secret.expose()).await,
        Err(portcullis::AuthError::InactiveUser)
    ));
    assert!(app.refresh.rotate("smtr_garbage").await.is_err());
}

#[tokio::test]
async fn websocket_query_tokens_are_read_only_on_upgrades_under_the_prefix() {
    let app = App::new().await;
    let jwt = app.access_token(None);
    let upgrade = |uri: String| {
        Request::get(uri)
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.send(upgrade(format!("/ws/ops?token={jwt}"))).await.1,
        "ada"
    );
    assert_eq!(
        app.send(upgrade("/ws/ops?token=a.b.c".into())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(upgrade(format!("/ws/ops?token={jwt}&token={jwt}")))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.send(upgrade("/ws/ops".into())).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Outside the prefix, or without an upgrade, the query string is not a credential.
    let plain = Request::get(format!("/ws/ops?token={jwt}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(plain).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(upgrade(format!("/whoami?token={jwt}"))).await.1,
        "anonymous"
    );
}

#[tokio::test]
async fn websocket_subprotocol_tokens_are_read_only_on_upgrades() {
    let app = App::new().await;
    let jwt = app.access_token(None);
    let key = app
        .api_keys
        .create(&app.user, NewApiKey::named("program"))
        .await
        .unwrap()
        .secret
        .into_exposed();
    let upgrade = |protocols: String| {
        Request::get("/ws/ops")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-protocol", protocols)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.send(upgrade(format!("graphql-ws, access_token.{jwt}")))
            .await
            .1,
        "ada"
    );
    for refused in [
        "access_token.a.b.c".to_owned(),
        format!("access_token.{key}"),
    ] {
        assert_eq!(
            app.send(upgrade(refused.clone())).await.0,
            StatusCode::UNAUTHORIZED,
            "{refused}"
        );
    }
    assert_eq!(
        app.send(upgrade(format!("access_token.{jwt}, access_token.{jwt}")))
            .await
            .0,
        StatusCode::BAD_REQUEST,
        "two tokens are refused, not chosen between"
    );
    // Without an upgrade the header is not a credential.
    let plain = Request::get("/ws/ops")
        .header("sec-websocket-protocol", format!("access_token.{jwt}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(plain).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn last_used_is_written_behind_and_coalesced() {
    let app = App::new().await;
    let created = app
        .api_keys
        .create(&app.user, NewApiKey::named("laptop"))
        .await
        .unwrap();
    let key = created.secret.expose();
    for _ in 0..5 {
        app.get("/me", Some(key)).await;
    }
    let stored = |app: &App| {
        let api_keys = app.api_keys.clone();
        let id = app.user.id;
        async move { api_keys.list(id).await.unwrap()[0].last_used_at }
    };
    assert_eq!(
        stored(&app).await,
        None,
        "nothing written on the request path"
    );
    app.auth.flush_last_used().await.unwrap();
    let first = stored(&app).await.expect("written on flush");
    assert_eq!(first, app.auth.now());
    app.clock.advance(Duration::from_secs(30));
    app.get("/me", Some(key)).await;
    app.auth.flush_last_used().await.unwrap();
    assert_eq!(
        stored(&app).await,
        Some(first),
        "uses within a minute coalesce"
    );
    app.clock.advance(Duration::from_secs(31));
    app.get("/me", Some(key)).await;
    app.auth.flush_last_used().await.unwrap();
    assert_eq!(stored(&app).await, Some(app.auth.now()));
}

#[tokio::test]
async fn at_most_the_configured_number_of_active_keys_per_user() {
    let app = App::new().await;
    let api_keys = app.api_keys.clone().max_active_per_user(3);
    for n in 0..3 {
        api_keys
            .create(&app.user, NewApiKey::named(format!("k{n}")))
            .await
            .unwrap();
    }
    assert!(matches!(
        api_keys.create(&app.user, NewApiKey::named("k3")).await,
        Err(portcullis::ApiKeyError::LimitReached { limit: 3 })
    ));
    // Blank, or holding a control character (a NUL no store keeps): refused before the store.
    for name in ["  ", "a\0b", "tab\there", "del\u{7f}"] {
        assert!(
            matches!(
                api_keys.create(&app.user, NewApiKey::named(name)).await,
                Err(portcullis::ApiKeyError::InvalidName)
            ),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn memory_store_serves_the_same_request_path() {
    let auth = Auth::builder(MemoryStore::new()).build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("kk-").unwrap());
    let user = auth
        .users()
        .create_user(NewUser::new("khoj"), auth.now())
        .await
        .unwrap();
    let key = api_keys
        .create(&user, NewApiKey::named("desktop"))
        .await
        .unwrap()
        .secret;
    let router: Router = Router::new()
        .route(
            "/me",
            get(|user: CurrentUser| async move { user.username.clone() }),
        )
        .layer(AuthLayer::builder().source(Bearer::new(api_keys)).build());
    let request = Request::get("/me")
        .header("authorization", format!("Bearer {}", key.expose()))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
}

/// `/me` (the `CurrentUser` extractor) and `/admin` (a role guard) behind an `AuthLayer` that
/// reads `api_keys` and answers refusals with `renderer`.
fn refusing_routes(api_keys: ApiKeys, renderer: impl portcullis::ErrorRenderer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: CurrentUser| async move { user.username.clone() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireLayer::any_role(["admin"])),
        )
        .layer(
            AuthLayer::builder()
                .source(Bearer::new(api_keys))
                .renderer(renderer)
                .build(),
        )
}

/// A replacement renderer answers for the layer, the guards and the extractors alike.
#[tokio::test]
async fn a_custom_renderer_is_used_by_the_layer_guards_and_extractors() {
    use axum::response::IntoResponse;
    use portcullis::{AuthError, ErrorRenderer};

    struct RedirectToLogin;
    impl ErrorRenderer for RedirectToLogin {
        fn render(&self, error: &AuthError) -> axum::response::Response {
            match error {
                AuthError::MissingCredentials => {
                    (StatusCode::SEE_OTHER, [("location", "/login")]).into_response()
                }
                other => (other.status(), format!("custom: {}", other.detail())).into_response(),
            }
        }
    }

    let auth = Auth::builder(MemoryStore::new()).build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("kk-").unwrap());
    let router = refusing_routes(api_keys, RedirectToLogin);
    let send = |uri: &'static str, bearer: Option<&'static str>| {
        let router = router.clone();
        async move {
            let mut request = Request::get(uri);
            if let Some(token) = bearer {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = router
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            (status, location, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    // The extractor and the guard both redirect anonymous requests.
    assert_eq!(send("/me", None).await.1.as_deref(), Some("/login"));
    assert_eq!(send("/admin", None).await.1.as_deref(), Some("/login"));
    // The layer uses it for a bad credential.
    let (status, _, body) = send("/me", Some("kk-bad")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "custom: Could not validate credentials"
        )
    );
}

/// `LoginRedirect` through the real layer, guard and extractor: a browser opening a page it
/// may not see goes to the login page with the page as `next`; an API client keeps its 401,
/// JSON and `WWW-Authenticate` (RFC 6750 §3).
#[tokio::test]
async fn browsers_are_sent_to_the_login_page_and_api_clients_keep_their_401() {
    use portcullis::JsonErrors;
    use portcullis::redirect::LoginRedirect;

    let app = App::new().await;
    let key = app.api_key(NewApiKey::named("laptop")).await;
    let router = refusing_routes(
        app.api_keys.clone(),
        LoginRedirect::new("/login", JsonErrors::new("test")),
    );
    let send = |uri: &'static str, headers: Vec<(&'static str, String)>| {
        let router = router.clone();
        async move {
            let mut request = Request::get(uri);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = router
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            };
            (
                response.status(),
                header("location"),
                header("www-authenticate"),
            )
        }
    };
    let browser = || {
        vec![
            ("sec-fetch-mode", "navigate".to_owned()),
            ("accept", "text/html,application/xhtml+xml".to_owned()),
        ]
    };
    let (status, location, _) = send("/me?tab=keys", browser()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/login?next=%2Fme%3Ftab%3Dkeys"));
    assert_eq!(
        send("/admin", browser()).await.1.as_deref(),
        Some("/login?next=%2Fadmin"),
        "the guard redirects too"
    );
    let api = vec![("accept", "application/json".to_owned())];
    let (status, location, challenge) = send("/me", api).await;
    assert_eq!((status, location), (StatusCode::UNAUTHORIZED, None));
    assert!(challenge.unwrap().starts_with("Bearer"));
    // A bad credential from a script is the layer's 401, not a redirect.
    let mut bad = browser();
    bad.push(("authorization", "Bearer kk-bad".to_owned()));
    assert_eq!(send("/me", bad).await.0, StatusCode::UNAUTHORIZED);
    // Signed in but not allowed: a 403 for the browser as well.
    let mut signed_in = browser();
    signed_in.push(("authorization", format!("Bearer {key}")));
    assert_eq!(send("/admin", signed_in).await.0, StatusCode::FORBIDDEN);
}

/// `user` signed in with a password just now.
fn password_sign_in(auth: &Auth, user: &User) -> portcullis::sign_in::Authenticated {
    portcullis::sign_in::Authenticated::new(
        user.clone(),
        portcullis::assurance::Factor::Password,
        auth.now(),
    )
}
