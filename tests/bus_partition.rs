//! A half-open invalidation bus: the bus server (Redis) or this instance's `LISTEN` backend
//! (PostgreSQL) stops answering without closing the connection, as after a silent network
//! partition, simulated with `SIGSTOP` on real servers (hardening item 13). The subscription
//! then never ends by itself; the instance must notice within seconds and stop trusting its
//! cache, or a credential revoked elsewhere keeps working until its cache entry expires.
//!
//! In a binary of its own: the Redis test stops a server it started itself, and the
//! PostgreSQL test one backend of the shared server.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::bus::{InvalidationBus, PostgresBus, RedisBus};
use portcullis::source::TokenResolver;
use portcullis::store::{NewUser, PostgresStore, SqliteStore, Store};
use portcullis::token::TokenFormat;
use portcullis::{ApiKeys, Auth, CacheConfig, NewApiKey};

/// Sends `SIGCONT` when dropped, so a failing test never leaves a process stopped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal("STOP", pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("CONT", self.0);
    }
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// A cache that would keep a revoked key for ten minutes: only the bus can make it let go.
fn long_lived_cache() -> CacheConfig {
    CacheConfig::default().positive_ttl(Duration::from_secs(600))
}

async fn instance(store: Arc<dyn Store>, bus: impl InvalidationBus) -> (Auth, ApiKeys) {
    let auth = Auth::builder(store)
        .cache(long_lived_cache())
        .invalidation_bus(bus)
        .build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("pc_").unwrap());
    (auth, api_keys)
}

async fn until(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Instance A caches a key; A's bus goes half-open (`pause`); B revokes the key. A must refuse
/// it within a few seconds although it never hears B's message.
async fn a_half_open_bus_is_noticed(
    a: (Auth, ApiKeys),
    b: (Auth, ApiKeys),
    pause: impl FnOnce() -> Stopped,
    name: &str,
) {
    let ((a_auth, a_keys), (b_auth, b_keys)) = (a, b);
    for auth in [&a_auth, &b_auth] {
        until(Duration::from_secs(5), "subscribed", async || {
            auth.bus_connected() == Some(true)
        })
        .await;
    }
    let owner = a_auth
        .users()
        .create_user(NewUser::new("ada"), a_auth.now())
        .await
        .unwrap();
    let created = a_keys
        .create(&owner, NewApiKey::named("cached"))
        .await
        .unwrap();
    let key = created.secret.into_exposed();
    assert!(a_keys.resolve(&key).await.is_ok());
    assert!(
        matches!(a_keys.resolve_now(&key), Some(Ok(_))),
        "cached on A"
    );

    let paused = pause();
    let revoke = b_keys.revoke(owner.id, created.record.id);
    let revoked = tokio::time::timeout(Duration::from_secs(5), revoke).await;
    assert!(
        matches!(revoked, Ok(Ok(true))),
        "{name}: revoking on B must not hang on the stopped bus: {revoked:?}"
    );
    let noticed = until(
        Duration::from_secs(8),
        "A refusing the revoked key",
        async || a_keys.resolve(&key).await.is_err(),
    )
    .await;
    eprintln!("{name}: A refused the key revoked on B {noticed:?} after the bus stopped");
    drop(paused);
    until(Duration::from_secs(15), "resubscribed", async || {
        a_auth.bus_connected() == Some(true)
    })
    .await;
    drop(b_auth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_bus_is_noticed_and_the_cache_bypassed() {
    if common::redis_url().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis: Child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test.sh installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    until(Duration::from_secs(5), "redis-server up", async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    let a_store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await.unwrap());
    let b_store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await.unwrap());
    let a = instance(a_store, RedisBus::open(&url).unwrap()).await;
    let b = instance(b_store, RedisBus::open(&url).unwrap()).await;
    let pid = redis.id();
    let a_auth = a.0.clone();
    a_half_open_bus_is_noticed(a, b, || Stopped::stop(pid), "Redis").await;
    assert_eq!(a_auth.bus_connected(), Some(true));
    let _ = redis.kill();
    let _ = redis.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_listen_backend_is_noticed_and_the_cache_bypassed() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let schema = common::PgSchema::create(&server).await;
    let a_store = PostgresStore::connect(&schema.url).await.unwrap();
    let b_store = PostgresStore::connect(&schema.url).await.unwrap();
    let channel = schema.name.clone();
    let a_bus = PostgresBus::new(a_store.pool().clone()).channel(&channel);
    let b_bus = PostgresBus::new(b_store.pool().clone()).channel(&channel);
    let a_pool = a_store.pool().clone();
    let a = instance(Arc::new(a_store), a_bus).await;
    let b = instance(Arc::new(b_store), b_bus).await;
    // Both instances listen on the channel: A's listener is the older of the two backends.
    let mut listeners: Vec<i32> = Vec::new();
    until(Duration::from_secs(5), "both listening", async || {
        listeners = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE query = $1 ORDER BY backend_start",
        )
        .bind(format!("LISTEN \"{channel}\""))
        .fetch_all(&a_pool)
        .await
        .unwrap();
        listeners.len() == 2
    })
    .await;
    let pid = u32::try_from(listeners[0]).unwrap();
    a_half_open_bus_is_noticed(a, b, || Stopped::stop(pid), "PostgreSQL").await;
    drop(schema);
}
