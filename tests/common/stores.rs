//! Fresh stores on the real services, one set-up per store portcullis ships: the in-memory
//! store, SQLite on a file, a PostgreSQL server, and sessions and one-time secrets in a Redis
//! server (over the in-memory store and over PostgreSQL, the production pairing).

use std::sync::Arc;

use portcullis::store::{MemoryStore, PostgresStore, RedisSessions, SqliteStore, Stores};

/// Fresh stores, and what to clean up after the test.
pub struct Fixture {
    pub stores: Stores,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<super::PgSchema>,
    /// The Redis server and key prefix the test wrote under.
    redis: Option<(String, String)>,
}

impl Fixture {
    fn new(stores: Stores) -> Self {
        Self {
            stores,
            _dir: None,
            _schema: None,
            redis: None,
        }
    }
}

impl portcullis::conformance::Fixture for Fixture {
    fn stores(&self) -> Stores {
        self.stores.clone()
    }

    async fn finish(self) {
        if let Some((url, prefix)) = &self.redis {
            super::redis_delete_prefix(url, prefix).await;
        }
    }
}

pub async fn memory() -> Option<Fixture> {
    Some(Fixture::new(Stores::new(MemoryStore::new())))
}

pub async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Some(Fixture {
        _dir: Some(dir),
        ..Fixture::new(Stores::new(SqliteStore::connect(&url).await.unwrap()))
    })
}

pub async fn postgres() -> Option<Fixture> {
    let schema = super::PgSchema::create(&super::postgres_url()?).await;
    let store = PostgresStore::connect(&schema.url).await.unwrap();
    Some(Fixture {
        _schema: Some(schema),
        ..Fixture::new(Stores::new(store))
    })
}

/// Tokens and secrets in Redis over `main`, which keeps users and the other token kinds.
fn in_redis<S: portcullis::store::Store + Clone>(main: S, url: &str, prefix: &str) -> Stores {
    let redis = Arc::new(
        RedisSessions::new(main.clone(), url)
            .unwrap()
            .prefix(prefix),
    );
    let mut stores = Stores::new(main);
    stores.tokens = redis.clone();
    stores.secrets = redis;
    stores
}

pub async fn redis_sessions() -> Option<Fixture> {
    let (url, prefix) = (super::redis_url()?, super::redis_prefix());
    Some(Fixture {
        redis: Some((url.clone(), prefix.clone())),
        ..Fixture::new(in_redis(MemoryStore::new(), &url, &prefix))
    })
}

/// The production pairing: sessions and secrets in Redis, everything else in PostgreSQL.
pub async fn redis_sessions_on_postgres() -> Option<Fixture> {
    let (url, prefix) = (super::redis_url()?, super::redis_prefix());
    let schema = super::PgSchema::create(&super::postgres_url()?).await;
    let postgres = PostgresStore::connect(&schema.url).await.unwrap();
    Some(Fixture {
        _schema: Some(schema),
        redis: Some((url.clone(), prefix.clone())),
        ..Fixture::new(in_redis(postgres, &url, &prefix))
    })
}

/// For each case `fn(Setup)`, a module of four tests, one per store set-up, each calling the
/// test file's `run(fixture, case)`.
#[allow(unused_macros)]
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::common::stores;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::run(stores::memory().await, super::$case).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(stores::sqlite().await, super::$case).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run(stores::postgres().await, super::$case).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::run(stores::redis_sessions().await, super::$case).await;
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_every_store;
