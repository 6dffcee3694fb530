//! What Semantik's API says about a key that portcullis does not keep: its UUID (upstream's
//! public id; portcullis numbers its tokens) and its name folded to lower case, unique per
//! owner (upstream refuses a second key of the same name, whatever its case).
//!
//! A name is reserved before its key exists, so two concurrent requests for one name cannot
//! both create a key: the database's `UNIQUE` constraint decides, and the loser creates
//! nothing. A reservation whose key could not be created is released; one left behind by a
//! crash between the two steps only blocks its name, it never hides a usable key.

use std::collections::HashMap;

use portcullis::store::{TokenId, UserId};

use super::db::{Database, sql, with_pool};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS semantik_api_keys (
    id        TEXT   PRIMARY KEY,
    owner_id  BIGINT NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    name_key  TEXT   NOT NULL,
    token_id  BIGINT UNIQUE REFERENCES portcullis_tokens (id) ON DELETE CASCADE,
    UNIQUE (owner_id, name_key)
)";

pub async fn migrate(database: &Database) -> Result<(), sqlx::Error> {
    with_pool!(database, pool => sqlx::query(SCHEMA).execute(pool).await.map(drop))
}

/// How names compare: case-insensitively, in every script (upstream's `lower()`).
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Reserves `name` for a new key of `owner`: its UUID, or `None` when the owner already has a
/// key of that name.
pub async fn reserve(
    database: &Database,
    owner: UserId,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let query = sql!(database,
        sqlite: "INSERT INTO semantik_api_keys (id, owner_id, name_key) VALUES (?, ?, ?)",
        postgres: "INSERT INTO semantik_api_keys (id, owner_id, name_key) VALUES ($1, $2, $3)");
    let inserted = with_pool!(database, pool => {
        sqlx::query(query)
            .bind(&id)
            .bind(owner.0)
            .bind(name_key(name))
            .execute(pool)
            .await
            .map(drop)
    });
    match inserted {
        Ok(_) => Ok(Some(id)),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Completes a reservation with the key created for it.
pub async fn attach(database: &Database, id: &str, token: TokenId) -> Result<(), sqlx::Error> {
    let query = sql!(database,
        sqlite: "UPDATE semantik_api_keys SET token_id = ? WHERE id = ?",
        postgres: "UPDATE semantik_api_keys SET token_id = $1 WHERE id = $2");
    with_pool!(database, pool => {
        sqlx::query(query).bind(token.0).bind(id).execute(pool).await.map(drop)
    })
}

/// Gives up a reservation whose key was not created.
pub async fn release(database: &Database, id: &str) -> Result<(), sqlx::Error> {
    let query = sql!(database,
        sqlite: "DELETE FROM semantik_api_keys WHERE id = ? AND token_id IS NULL",
        postgres: "DELETE FROM semantik_api_keys WHERE id = $1 AND token_id IS NULL");
    with_pool!(database, pool => sqlx::query(query).bind(id).execute(pool).await.map(drop))
}

/// The key `id` names, if it is one of `owner`'s. An id that is not a UUID names nothing.
pub async fn token_of(
    database: &Database,
    owner: UserId,
    id: &str,
) -> Result<Option<TokenId>, sqlx::Error> {
    let Ok(id) = uuid::Uuid::try_parse(id) else {
        return Ok(None);
    };
    let query = sql!(database,
        sqlite: "SELECT token_id FROM semantik_api_keys WHERE id = ? AND owner_id = ? AND token_id IS NOT NULL",
        postgres: "SELECT token_id FROM semantik_api_keys WHERE id = $1 AND owner_id = $2 AND token_id IS NOT NULL");
    let found: Option<(i64,)> = with_pool!(database, pool => {
        sqlx::query_as(query)
            .bind(id.to_string())
            .bind(owner.0)
            .fetch_optional(pool)
            .await?
    });
    Ok(found.map(|(token,)| TokenId(token)))
}

/// The UUIDs of `owner`'s keys, by token.
pub async fn ids_of(
    database: &Database,
    owner: UserId,
) -> Result<HashMap<TokenId, String>, sqlx::Error> {
    let query = sql!(database,
        sqlite: "SELECT token_id, id FROM semantik_api_keys WHERE owner_id = ? AND token_id IS NOT NULL",
        postgres: "SELECT token_id, id FROM semantik_api_keys WHERE owner_id = $1 AND token_id IS NOT NULL");
    let rows: Vec<(i64, String)> = with_pool!(database, pool => {
        sqlx::query_as(query).bind(owner.0).fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|(token, id)| (TokenId(token), id))
        .collect())
}

/// Gives a UUID to a key created before keys had one (by an earlier version of this server),
/// so that no usable key is missing from the listing. Its name is not reserved: two such
/// keys may share one.
pub async fn adopt(
    database: &Database,
    owner: UserId,
    token: TokenId,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    // Typed names never hold control characters, so this one never collides with them.
    let unreserved = format!("\u{1}{}", token.0);
    let query = sql!(database,
        sqlite: "INSERT INTO semantik_api_keys (id, owner_id, name_key, token_id) VALUES (?, ?, ?, ?)
                 ON CONFLICT (token_id) DO UPDATE SET token_id = excluded.token_id RETURNING id",
        postgres: "INSERT INTO semantik_api_keys (id, owner_id, name_key, token_id) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (token_id) DO UPDATE SET token_id = excluded.token_id RETURNING id");
    let (id,): (String,) = with_pool!(database, pool => {
        sqlx::query_as(query)
            .bind(&id)
            .bind(owner.0)
            .bind(&unreserved)
            .bind(token.0)
            .fetch_one(pool)
            .await?
    });
    Ok(id)
}
