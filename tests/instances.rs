//! Several instances sharing one database: revocation reaches every instance through the
//! invalidation bus (PostgreSQL NOTIFY or Redis pub/sub), and the cache TTL bounds staleness
//! when the bus is gone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::bus::{InvalidationBus, PostgresBus, RedisBus, WhenBusDown};
use portcullis::flows::{PasswordLogin, Registration};
use portcullis::session::Sessions;
use portcullis::source::TokenResolver;
use portcullis::store::{PostgresStore, User, UserUpdate};
use portcullis::token::TokenFormat;
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::{
    AccessTokens, ApiKeys, Auth, CacheConfig, NewApiKey, PasswordPolicy, Passwords, RefreshTokens,
};

#[derive(Clone, Copy, Debug)]
enum Bus {
    Postgres,
    Redis,
}

struct Instance {
    auth: Auth,
    api_keys: ApiKeys,
    access: AccessTokens,
    refresh: RefreshTokens,
    sessions: Sessions,
    login: PasswordLogin,
}

struct Setup {
    schema: common::PgSchema,
    redis: String,
}

impl Setup {
    async fn new() -> Option<Setup> {
        let postgres = common::postgres_url()?;
        let redis = common::redis_url()?;
        Some(Setup {
            schema: common::PgSchema::create(&postgres).await,
            redis,
        })
    }

    async fn bus(&self, kind: Bus, store: &PostgresStore) -> Box<dyn InvalidationBus> {
        // One channel per test, so tests running at once do not hear each other.
        match kind {
            Bus::Postgres => {
                Box::new(PostgresBus::new(store.pool().clone()).channel(&self.schema.name))
            }
            Bus::Redis => Box::new(
                RedisBus::open(&self.redis)
                    .unwrap()
                    .channel(&self.schema.name),
            ),
        }
    }

    async fn instance(
        &self,
        bus: Option<Box<dyn InvalidationBus>>,
        cache: CacheConfig,
        policy: WhenBusDown,
    ) -> Instance {
        let store = PostgresStore::connect(&self.schema.url).await.unwrap();
        self.instance_on(store, bus, cache, policy).await
    }

    async fn instance_on(
        &self,
        store: PostgresStore,
        bus: Option<Box<dyn InvalidationBus>>,
        cache: CacheConfig,
        policy: WhenBusDown,
    ) -> Instance {
        let mut builder = Auth::builder(store).cache(cache).when_bus_down(policy);
        if let Some(bus) = bus {
            builder = builder.invalidation_bus(bus);
        }
        let auth = builder.build();
        let keys = JwtKeys::new(JwtKey::hs256(&[3; 32]).unwrap()).unwrap();
        let passwords = Passwords::with_params(
            PasswordPolicy::default(),
            argon2::Params::new(1024, 1, 1, None).unwrap(),
            2,
        );
        Instance {
            api_keys: ApiKeys::new(&auth, TokenFormat::new("pc_").unwrap()),
            access: AccessTokens::new(&auth, keys, portcullis::JwtConfig::new("test", "test")),
            refresh: RefreshTokens::new(
                &auth,
                TokenFormat::new("rt_").unwrap(),
                Duration::from_secs(3600),
            ),
            sessions: Sessions::new(&auth, TokenFormat::new("pcs_").unwrap()),
            login: PasswordLogin::new(&auth, &passwords),
            auth,
        }
    }

    async fn pair(&self, kind: Bus) -> (Instance, Instance) {
        let mut instances = Vec::new();
        for _ in 0..2 {
            let store = PostgresStore::connect(&self.schema.url).await.unwrap();
            let bus = self.bus(kind, &store).await;
            instances.push(
                self.instance_on(
                    store,
                    Some(bus),
                    CacheConfig::default(),
                    WhenBusDown::BypassCache,
                )
                .await,
            );
        }
        let b = instances.pop().unwrap();
        let a = instances.pop().unwrap();
        for instance in [&a, &b] {
            wait_until(Duration::from_secs(5), || async {
                instance.auth.bus_connected() == Some(true)
            })
            .await;
        }
        (a, b)
    }
}

async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

async fn user(instance: &Instance, name: &str) -> User {
    instance
        .login
        .register(Registration::new(name, "correct horse"))
        .await
        .unwrap()
}

/// How long until `credential` stops resolving on `b`, which must happen within one second.
async fn propagation(b: &Instance, resolver: &dyn TokenResolver, credential: &str) -> Duration {
    let _ = b;
    wait_until(Duration::from_secs(1), || async {
        resolver.resolve(credential).await.is_err()
    })
    .await
}

/// How long until session `id` stops resolving on `sessions`, within one second.
async fn session_propagation(sessions: &Sessions, id: &str) -> Duration {
    wait_until(Duration::from_secs(1), || async {
        sessions.resolve(id).await.is_err()
    })
    .await
}

async fn revocations_reach_the_other_instance(kind: Bus) {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let (a, b) = setup.pair(kind).await;
    let mut delays = Vec::new();

    // An API key revoked on A.
    let ada = user(&a, "ada").await;
    let key = a
        .api_keys
        .create(&ada, NewApiKey::named("k"))
        .await
        .unwrap();
    assert!(
        b.api_keys.resolve(key.secret.expose()).await.is_ok(),
        "B caches the key"
    );
    a.api_keys.revoke(ada.id, key.record.id).await.unwrap();
    delays.push((
        "revoke api key",
        propagation(&b, &b.api_keys, key.secret.expose()).await,
    ));

    // A session logged out on A.
    let session = a
        .refresh
        .issue(&common::password_sign_in(&a.auth, &ada))
        .await
        .unwrap();
    let jwt = a
        .access
        .issue(&ada, Some(&session.family))
        .unwrap()
        .token
        .into_exposed();
    assert!(b.access.resolve(&jwt).await.is_ok());
    a.refresh
        .revoke(session.secret.expose(), ada.id)
        .await
        .unwrap();
    delays.push(("logout", propagation(&b, &b.access, &jwt).await));

    // A browser session rotated, then logged out, on A.
    let started = a
        .sessions
        .start(
            &common::password_sign_in(&a.auth, &ada),
            &http::HeaderMap::new(),
        )
        .await
        .unwrap();
    let cookie = |id: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", format!("__Host-session={id}").parse().unwrap());
        headers
    };
    let first = started.secret.expose().to_owned();
    assert!(
        b.sessions.resolve(&first).await.is_ok(),
        "B caches the session"
    );
    let rotated = a.sessions.rotate(&cookie(&first)).await.unwrap();
    delays.push((
        "rotate session",
        session_propagation(&b.sessions, &first).await,
    ));
    let second = rotated.secret.expose().to_owned();
    assert!(b.sessions.resolve(&second).await.is_ok());
    a.sessions.end(&cookie(&second)).await.unwrap();
    delays.push((
        "log out session",
        session_propagation(&b.sessions, &second).await,
    ));

    // A user deactivated on A.
    let key = a
        .api_keys
        .create(&ada, NewApiKey::named("k2"))
        .await
        .unwrap();
    let jwt = a.access.issue(&ada, None).unwrap().token.into_exposed();
    assert!(b.api_keys.resolve(key.secret.expose()).await.is_ok());
    assert!(b.access.resolve(&jwt).await.is_ok());
    a.auth
        .update_user(ada.id, UserUpdate::default().active(false))
        .await
        .unwrap();
    delays.push((
        "deactivate (api key)",
        propagation(&b, &b.api_keys, key.secret.expose()).await,
    ));
    assert!(b.access.resolve(&jwt).await.is_err(), "and the JWT");
    a.auth
        .update_user(ada.id, UserUpdate::default().active(true))
        .await
        .unwrap();

    // A password changed on A: the sessions' access tokens stop working on B.
    let session = a
        .refresh
        .issue(&common::password_sign_in(&a.auth, &ada))
        .await
        .unwrap();
    let jwt = a
        .access
        .issue(&ada, Some(&session.family))
        .unwrap()
        .token
        .into_exposed();
    wait_until(Duration::from_secs(1), || async {
        b.access.resolve(&jwt).await.is_ok()
    })
    .await;
    a.login
        .change_password(ada.id, "correct horse", "battery staple")
        .await
        .unwrap();
    delays.push(("change password", propagation(&b, &b.access, &jwt).await));
    assert!(b.refresh.rotate(session.secret.expose()).await.is_err());

    println!("{kind:?} bus propagation delays: {delays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_carries_revocations_to_the_other_instance_within_a_second() {
    revocations_reach_the_other_instance(Bus::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_carries_revocations_to_the_other_instance_within_a_second() {
    revocations_reach_the_other_instance(Bus::Redis).await;
}

/// `Auth::suspend` on A: the next request on B is refused for every credential, without
/// waiting for a cache TTL; `unsuspend` brings the API key back but not the ended sign-ins.
/// Then `end_credentials(Everything)` ends the key too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_on_one_instance_refuses_the_next_request_on_the_other() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let (a, b) = setup.pair(Bus::Redis).await;
    let ada = user(&a, "ada").await;
    let key = a
        .api_keys
        .create(&ada, NewApiKey::named("k"))
        .await
        .unwrap();
    let family = a
        .refresh
        .issue(&common::password_sign_in(&a.auth, &ada))
        .await
        .unwrap();
    let jwt = a
        .access
        .issue_for_session(&ada, &family)
        .unwrap()
        .token
        .into_exposed();
    let session = a
        .sessions
        .start(
            &common::password_sign_in(&a.auth, &ada),
            &http::HeaderMap::new(),
        )
        .await
        .unwrap()
        .secret
        .into_exposed();
    assert!(b.api_keys.resolve(key.secret.expose()).await.is_ok());
    assert!(b.access.resolve(&jwt).await.is_ok());
    assert!(
        b.sessions.resolve(&session).await.is_ok(),
        "B caches all three"
    );

    let suspended = a.auth.suspend(ada.id).await.unwrap().unwrap();
    assert!(!suspended.is_active);
    let delays = [
        propagation(&b, &b.api_keys, key.secret.expose()).await,
        propagation(&b, &b.access, &jwt).await,
        session_propagation(&b.sessions, &session).await,
    ];
    assert!(b.refresh.rotate(family.secret.expose()).await.is_err());
    println!("suspension reached the other instance after {delays:?}");

    a.auth.unsuspend(ada.id).await.unwrap().unwrap();
    wait_until(Duration::from_secs(1), || async {
        b.api_keys.resolve(key.secret.expose()).await.is_ok()
    })
    .await;
    assert!(b.access.resolve(&jwt).await.is_err(), "sign-ins stay ended");
    assert!(b.sessions.resolve(&session).await.is_err());
    assert!(b.refresh.rotate(family.secret.expose()).await.is_err());

    let revoked = a
        .auth
        .end_credentials(
            ada.id,
            portcullis::Credentials::Everything,
            portcullis::store::RevokeReason::Admin,
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1, "only the key was still live");
    propagation(&b, &b.api_keys, key.secret.expose()).await;
}

/// B cannot hear the bus (its Redis is unreachable). Failing open, it serves its cached key
/// until the TTL passes; failing closed, it asks the store and rejects at once.
async fn bus_down(policy: WhenBusDown) -> (Duration, bool) {
    let Some(setup) = Setup::new().await else {
        return (Duration::ZERO, false);
    };
    let a = setup.instance(None, CacheConfig::default(), policy).await;
    let dead = RedisBus::open("redis://127.0.0.1:1").unwrap();
    let ttl = Duration::from_millis(800);
    let b = setup
        .instance(
            Some(Box::new(dead)),
            CacheConfig::default().positive_ttl(ttl),
            policy,
        )
        .await;
    let ada = user(&a, "ada").await;
    let key = a
        .api_keys
        .create(&ada, NewApiKey::named("k"))
        .await
        .unwrap();
    assert!(b.api_keys.resolve(key.secret.expose()).await.is_ok());
    assert_eq!(b.auth.bus_connected(), Some(false));
    a.api_keys.revoke(ada.id, key.record.id).await.unwrap();
    let served_stale = b.api_keys.resolve(key.secret.expose()).await.is_ok();
    let delay = wait_until(Duration::from_secs(3), || async {
        b.api_keys.resolve(key.secret.expose()).await.is_err()
    })
    .await;
    (delay, served_stale)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_bus_down_failing_open_rejects_once_the_cache_ttl_passes() {
    let (delay, served_stale) = bus_down(WhenBusDown::ServeFromCache).await;
    if common::postgres_url().is_none() {
        return;
    }
    assert!(served_stale, "fail-open keeps serving the cached key");
    assert!(
        delay <= Duration::from_millis(1500),
        "bounded by the 800 ms TTL: {delay:?}"
    );
    println!("fail-open staleness: {delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_bus_down_failing_closed_rejects_at_once() {
    let (delay, served_stale) = bus_down(WhenBusDown::BypassCache).await;
    if common::postgres_url().is_none() {
        return;
    }
    assert!(!served_stale, "fail-closed asks the store on every request");
    assert!(delay < Duration::from_millis(50), "{delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_that_comes_back_empties_the_cache_of_what_it_missed() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let proxy = common::Proxy::start(common::host_port(&setup.redis)).await;
    let via_proxy = RedisBus::open(&proxy.url(&setup.redis))
        .unwrap()
        .channel(&setup.schema.name);
    let a = setup
        .instance(None, CacheConfig::default(), WhenBusDown::ServeFromCache)
        .await;
    let b = setup
        .instance(
            Some(Box::new(via_proxy)),
            CacheConfig::default(),
            WhenBusDown::ServeFromCache,
        )
        .await;
    wait_until(Duration::from_secs(5), || async {
        b.auth.bus_connected() == Some(true)
    })
    .await;
    let ada = user(&a, "ada").await;
    let key = a
        .api_keys
        .create(&ada, NewApiKey::named("k"))
        .await
        .unwrap();
    assert!(b.api_keys.resolve(key.secret.expose()).await.is_ok());

    proxy.cut();
    wait_until(Duration::from_secs(5), || async {
        b.auth.bus_connected() == Some(false)
    })
    .await;
    // Revoked while B is deaf (A has no bus at all): B still serves its cached copy.
    a.api_keys.revoke(ada.id, key.record.id).await.unwrap();
    assert!(
        b.api_keys.resolve(key.secret.expose()).await.is_ok(),
        "fail-open during the outage"
    );

    proxy.restore();
    wait_until(Duration::from_secs(10), || async {
        b.auth.bus_connected() == Some(true)
    })
    .await;
    assert!(
        b.api_keys.resolve(key.secret.expose()).await.is_err(),
        "reconnection emptied the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_across_two_instances_succeed_exactly_once() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let (a, b) = setup.pair(Bus::Postgres).await;
    let ada = user(&a, "ada").await;
    let token = Arc::new(
        a.refresh
            .issue(&common::password_sign_in(&a.auth, &ada))
            .await
            .unwrap()
            .secret
            .into_exposed(),
    );
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let instance = if n % 2 == 0 { a.clone() } else { b.clone() };
            let token = token.clone();
            tokio::spawn(async move { instance.refresh.rotate(&token).await })
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => successes += 1,
            Err(portcullis::AuthError::InvalidToken(_)) => {}
            Err(other) => panic!("a loser must get 401, not {other:?}"),
        }
    }
    assert_eq!(successes, 1);
}
