//! The database behind the service: SQLite (default) or PostgreSQL, from `DATABASE_URL`; and
//! the invalidation bus that keeps several instances' caches honest (`REDIS_URL`, else
//! PostgreSQL `NOTIFY` when on PostgreSQL, else none: one SQLite file means one instance).

use std::sync::Arc;

use portcullis::bus::{InvalidationBus, PostgresBus, RedisBus};
use portcullis::store::{PostgresStore, SqliteStore, Store};

use super::ConfigError;

/// The application's own tables live next to portcullis's, in the same database.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$database` holds: sqlx's queries are
/// generic over the backend, so one body serves both.
macro_rules! with_pool {
    ($database:expr, $pool:ident => $body:expr) => {
        match $database {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// One statement per backend: the placeholders differ.
macro_rules! sql {
    ($database:expr, sqlite: $sqlite:literal, postgres: $postgres:literal) => {
        match $database {
            $crate::db::Database::Sqlite(_) => $sqlite,
            $crate::db::Database::Postgres(_) => $postgres,
        }
    };
}
pub(crate) use sql;

pub struct Connected {
    pub store: Arc<dyn Store>,
    pub database: Database,
    pub bus: Option<Box<dyn InvalidationBus>>,
}

fn database_error(error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Database(error.to_string())
}

pub async fn connect(
    database_url: &str,
    redis_url: Option<&str>,
    redis_prefix: &str,
) -> Result<Connected, ConfigError> {
    let (store, database, bus): (Arc<dyn Store>, _, Option<Box<dyn InvalidationBus>>) =
        if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            let store = PostgresStore::connect(database_url)
                .await
                .map_err(database_error)?;
            let pool = store.pool().clone();
            (
                Arc::new(store),
                Database::Postgres(pool.clone()),
                Some(Box::new(PostgresBus::new(pool))),
            )
        } else {
            let store = SqliteStore::connect(database_url)
                .await
                .map_err(database_error)?;
            let pool = store.pool().clone();
            (Arc::new(store), Database::Sqlite(pool), None)
        };
    let bus = match redis_url {
        Some(url) => Some(Box::new(
            RedisBus::open(url)
                .map_err(|e| ConfigError::Invalid("REDIS_URL", e.to_string()))?
                .channel(format!("{redis_prefix}invalidation")),
        ) as Box<dyn InvalidationBus>),
        None => bus,
    };
    super::collections::migrate(&database)
        .await
        .map_err(database_error)?;
    super::key_ids::migrate(&database)
        .await
        .map_err(database_error)?;
    Ok(Connected {
        store,
        database,
        bus,
    })
}
