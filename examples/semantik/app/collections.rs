//! `/api/collections`: per-user data isolation. Owners see their own collections; a superuser
//! sees all; another user's collection is answered as absent (404), not forbidden, so that ids
//! do not leak.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use portcullis::CurrentUser;
use portcullis::clock::{from_micros, to_micros};
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use time::OffsetDateTime;

use super::AppState;
use super::api::{ApiError, ApiJson, check_len};

pub async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS collections (
            id          TEXT    PRIMARY KEY,
            owner_id    INTEGER NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
            name        TEXT    NOT NULL,
            description TEXT,
            created_at  INTEGER NOT NULL,
            UNIQUE (owner_id, name)
        )",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct CollectionCreate {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CollectionOut {
    id: String,
    name: String,
    description: Option<String>,
    owner_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

fn from_row(row: &SqliteRow) -> Result<CollectionOut, sqlx::Error> {
    Ok(CollectionOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        owner_id: row.try_get("owner_id")?,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<CollectionCreate>,
) -> Result<(StatusCode, Json<CollectionOut>), ApiError> {
    let name = body.name.trim();
    check_len("name", name, 1, 100)?;
    if let Some(description) = &body.description {
        check_len("description", description, 0, 1000)?;
    }
    let result = sqlx::query(
        "INSERT INTO collections (id, owner_id, name, description, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id, owner_id, name, description, created_at",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(user.id.0)
    .bind(name)
    .bind(&body.description)
    .bind(to_micros(state.auth.now()))
    .fetch_one(&state.db)
    .await;
    match result {
        Ok(row) => Ok((StatusCode::CREATED, Json(from_row(&row)?))),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(ApiError::new(
            StatusCode::CONFLICT,
            "A collection with this name already exists",
        )),
        Err(error) => Err(error.into()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<CollectionOut>>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, owner_id, name, description, created_at FROM collections
         WHERE owner_id = ? OR ? ORDER BY created_at, id",
    )
    .bind(user.id.0)
    .bind(user.is_superuser())
    .fetch_all(&state.db)
    .await?;
    let collections = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Json(collections))
}

pub async fn get_one(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<CollectionOut>, ApiError> {
    let row = sqlx::query(
        "SELECT id, owner_id, name, description, created_at FROM collections
         WHERE id = ? AND (owner_id = ? OR ?)",
    )
    .bind(&id)
    .bind(user.id.0)
    .bind(user.is_superuser())
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("Collection"))?;
    Ok(Json(from_row(&row)?))
}
