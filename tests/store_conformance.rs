//! The store conformance kit (`portcullis::conformance`, feature `conformance`) run against
//! every store portcullis ships, on the real thing: the in-memory store, SQLite on a file, a
//! PostgreSQL server, and sessions and one-time secrets in a Redis server (over the in-memory
//! store and over PostgreSQL, the production pairing). A third-party store runs the same
//! `store_conformance!` call with its own fixture.

mod common;

use std::sync::Arc;

use portcullis::store::{MemoryStore, PostgresStore, RedisSessions, SqliteStore, Stores};

/// Fresh stores, and what to clean up after the test.
struct Fixture {
    stores: Stores,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<common::PgSchema>,
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
            common::redis_delete_prefix(url, prefix).await;
        }
    }
}

async fn memory() -> Option<Fixture> {
    Some(Fixture::new(Stores::new(MemoryStore::new())))
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Some(Fixture {
        _dir: Some(dir),
        ..Fixture::new(Stores::new(SqliteStore::connect(&url).await.unwrap()))
    })
}

async fn postgres() -> Option<Fixture> {
    let schema = common::PgSchema::create(&common::postgres_url()?).await;
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

async fn redis_sessions() -> Option<Fixture> {
    let (url, prefix) = (common::redis_url()?, common::redis_prefix());
    Some(Fixture {
        redis: Some((url.clone(), prefix.clone())),
        ..Fixture::new(in_redis(MemoryStore::new(), &url, &prefix))
    })
}

/// The production pairing: sessions and secrets in Redis, everything else in PostgreSQL.
async fn redis_sessions_on_postgres() -> Option<Fixture> {
    let (url, prefix) = (common::redis_url()?, common::redis_prefix());
    let schema = common::PgSchema::create(&common::postgres_url()?).await;
    let postgres = PostgresStore::connect(&schema.url).await.unwrap();
    Some(Fixture {
        _schema: Some(schema),
        redis: Some((url.clone(), prefix.clone())),
        ..Fixture::new(in_redis(postgres, &url, &prefix))
    })
}

mod memory {
    use super::memory;
    portcullis::store_conformance!(memory);
}

mod sqlite {
    use super::sqlite;
    portcullis::store_conformance!(sqlite);
}

mod postgres {
    use super::postgres;
    portcullis::store_conformance!(postgres);
}

/// Users, counters and events stay in the main store, tested above.
mod redis_sessions {
    use super::redis_sessions;
    portcullis::store_conformance!(redis_sessions; tokens, secrets);
}

mod redis_sessions_on_postgres {
    use super::redis_sessions_on_postgres;
    portcullis::store_conformance!(redis_sessions_on_postgres; tokens, secrets);
}
