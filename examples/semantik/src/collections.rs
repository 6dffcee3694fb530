//! `/api/collections`: per-user data isolation. Owners see their own collections; a superuser
//! sees all; another user's collection is answered as absent (404), not forbidden, so that ids
//! do not leak.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use portcullis::CurrentUser;
use portcullis::clock::{from_micros, to_micros};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::api::{
    AccessErrors, ApiError, ApiJson, BodyErrors, ErrorBody, NotFound, RateLimited, check_len,
};
use super::db::{Database, sql, with_pool};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS collections (
    id          TEXT    PRIMARY KEY,
    owner_id    BIGINT  NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    description TEXT,
    created_at  BIGINT  NOT NULL,
    UNIQUE (owner_id, name)
)";

pub async fn migrate(database: &Database) -> Result<(), sqlx::Error> {
    with_pool!(database, pool => sqlx::query(SCHEMA).execute(pool).await.map(drop))
}

type Row = (String, i64, String, Option<String>, i64);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CollectionCreate {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionOut {
    id: String,
    name: String,
    description: Option<String>,
    owner_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Row> for CollectionOut {
    fn from((id, owner_id, name, description, created_at): Row) -> Self {
        Self {
            id,
            owner_id,
            name,
            description,
            created_at: from_micros(created_at),
        }
    }
}

/// Creates a collection owned by the caller.
#[utoipa::path(
    post, path = "/api/collections", tag = "collections", request_body = CollectionCreate,
    security(("bearer" = ["collections:write"])),
    responses(
        (status = 201, description = "The new collection", body = CollectionOut),
        (status = 409, description = "The caller has a collection of this name", body = ErrorBody),
        BodyErrors, AccessErrors, RateLimited,
    )
)]
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
    let query = sql!(&state.db,
        sqlite: "INSERT INTO collections (id, owner_id, name, description, created_at) VALUES (?, ?, ?, ?, ?)
                 RETURNING id, owner_id, name, description, created_at",
        postgres: "INSERT INTO collections (id, owner_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)
                   RETURNING id, owner_id, name, description, created_at");
    let id = uuid::Uuid::new_v4().to_string();
    let now = to_micros(state.auth.now());
    let result = with_pool!(&state.db, pool => {
        sqlx::query_as::<_, Row>(query)
            .bind(&id)
            .bind(user.id.0)
            .bind(name)
            .bind(&body.description)
            .bind(now)
            .fetch_one(pool)
            .await
    });
    match result {
        Ok(row) => Ok((StatusCode::CREATED, Json(row.into()))),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(ApiError::new(
            StatusCode::CONFLICT,
            "A collection with this name already exists",
        )),
        Err(error) => Err(error.into()),
    }
}

/// The caller's collections (every collection, for the superuser).
#[utoipa::path(
    get, path = "/api/collections", tag = "collections",
    security(("bearer" = ["collections:read"])),
    responses((status = 200, description = "The collections", body = Vec<CollectionOut>), AccessErrors, RateLimited)
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<CollectionOut>>, ApiError> {
    let query = sql!(&state.db,
        sqlite: "SELECT id, owner_id, name, description, created_at FROM collections
                 WHERE owner_id = ? OR ? ORDER BY created_at, id",
        postgres: "SELECT id, owner_id, name, description, created_at FROM collections
                   WHERE owner_id = $1 OR $2 ORDER BY created_at, id");
    let rows = with_pool!(&state.db, pool => {
        sqlx::query_as::<_, Row>(query)
            .bind(user.id.0)
            .bind(user.is_superuser())
            .fetch_all(pool)
            .await?
    });
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// One of the caller's collections.
#[utoipa::path(
    get, path = "/api/collections/{id}", tag = "collections",
    security(("bearer" = ["collections:read"])),
    params(("id" = String, Path, description = "The collection's id")),
    responses((status = 200, description = "The collection", body = CollectionOut), NotFound, AccessErrors, RateLimited)
)]
pub async fn get_one(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<CollectionOut>, ApiError> {
    let query = sql!(&state.db,
        sqlite: "SELECT id, owner_id, name, description, created_at FROM collections
                 WHERE id = ? AND (owner_id = ? OR ?)",
        postgres: "SELECT id, owner_id, name, description, created_at FROM collections
                   WHERE id = $1 AND (owner_id = $2 OR $3)");
    let row = with_pool!(&state.db, pool => {
        sqlx::query_as::<_, Row>(query)
            .bind(&id)
            .bind(user.id.0)
            .bind(user.is_superuser())
            .fetch_optional(pool)
            .await?
    });
    row.map(|row| Json(row.into()))
        .ok_or_else(|| ApiError::not_found("Collection"))
}
