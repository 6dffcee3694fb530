//! The database behind the service: SQLite (default) or PostgreSQL, from `DATABASE_URL`; the
//! invalidation bus that keeps several instances' caches honest (`REDIS_URL`, else PostgreSQL
//! `NOTIFY` on PostgreSQL, else none: one SQLite file means one instance); and Khoj's
//! `client_applications` table, which holds each client's secret only as its SHA-256 digest
//! (Khoj stores it in plain text).

use std::sync::Arc;

use async_trait::async_trait;
use portcullis::bus::{InvalidationBus, PostgresBus, RedisBus};
use portcullis::source::{ClientRegistry, RegisteredClient};
use portcullis::store::{PostgresStore, SqliteStore, Store, StoreError};
use portcullis::token::TokenDigest;

use super::ConfigError;

/// The application's own table lives next to portcullis's, in the same database.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

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
    database.migrate().await.map_err(database_error)?;
    Ok(Connected {
        store,
        database,
        bus,
    })
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS khoj_client_applications (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL
)";

impl Database {
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlx::query(CREATE_TABLE).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(CREATE_TABLE).execute(pool).await.map(drop),
        }
    }

    /// Registers `client` (its secret's digest, never the secret).
    pub async fn insert_client(&self, client: &RegisteredClient) -> Result<(), sqlx::Error> {
        let digest = client.secret_digest.to_hex();
        match self {
            Self::Sqlite(pool) => sqlx::query(
                "INSERT INTO khoj_client_applications (client_id, name, secret_sha256) \
                 VALUES (?, ?, ?)",
            )
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(digest)
            .execute(pool)
            .await
            .map(drop),
            Self::Postgres(pool) => sqlx::query(
                "INSERT INTO khoj_client_applications (client_id, name, secret_sha256) \
                 VALUES ($1, $2, $3)",
            )
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(digest)
            .execute(pool)
            .await
            .map(drop),
        }
    }
}

/// Client applications, as [`ClientApplication`](portcullis::source::ClientApplication)
/// looks them up.
#[derive(Clone, Debug)]
pub struct ClientTable(pub Database);

#[async_trait]
impl ClientRegistry for ClientTable {
    async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let row: Option<(String, String)> = match &self.0 {
            Database::Sqlite(pool) => sqlx::query_as(
                "SELECT name, secret_sha256 FROM khoj_client_applications WHERE client_id = ?",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?,
            Database::Postgres(pool) => sqlx::query_as(
                "SELECT name, secret_sha256 FROM khoj_client_applications WHERE client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?,
        };
        let Some((name, digest)) = row else {
            return Ok(None);
        };
        let secret_digest = TokenDigest::from_hex(&digest)
            .ok_or_else(|| StoreError::Corrupt(format!("client application {client_id}")))?;
        Ok(Some(RegisteredClient {
            name,
            client_id: client_id.to_owned(),
            secret_digest,
        }))
    }
}
