//! `/api/internal/*`: service-to-service endpoints, reachable only with `X-Internal-Api-Key`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use portcullis::store::{User, UserId, UserUpdate};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::api::{AccessErrors, ApiError, ApiJson, BodyErrors, NotFound, RateLimited};

pub fn routes() -> Router<AppState> {
    Router::new().route("/users/{id}", get(user).patch(update_user))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InternalUser {
    id: i64,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_login: Option<OffsetDateTime>,
}

impl From<User> for InternalUser {
    fn from(user: User) -> Self {
        Self {
            id: user.id.0,
            is_superuser: user.is_superuser(),
            username: user.username,
            email: user.email,
            full_name: user.full_name,
            is_active: user.is_active,
            created_at: user.created_at,
            last_login: user.last_login,
        }
    }
}

fn user_id(id: &str) -> Result<UserId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("User"))
}

/// A user's account, for another Semantik service.
#[utoipa::path(
    get, path = "/api/internal/users/{id}", tag = "internal", security(("internal" = [])),
    params(("id" = String, Path, description = "The user's id", example = "1")),
    responses((status = 200, description = "The user", body = InternalUser), NotFound, AccessErrors, RateLimited)
)]
pub async fn user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InternalUser>, ApiError> {
    let user = state
        .auth
        .users()
        .user_by_id(user_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(user.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InternalUserUpdate {
    #[serde(default)]
    is_active: Option<bool>,
}

/// Activates or deactivates a user. Every credential of a deactivated user stops working at
/// once, including access tokens and API keys issued before.
#[utoipa::path(
    patch, path = "/api/internal/users/{id}", tag = "internal", security(("internal" = [])),
    params(("id" = String, Path, description = "The user's id", example = "1")),
    request_body = InternalUserUpdate,
    responses(
        (status = 200, description = "The user, updated", body = InternalUser),
        NotFound, BodyErrors, AccessErrors, RateLimited,
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InternalUserUpdate>,
) -> Result<Json<InternalUser>, ApiError> {
    let mut update = UserUpdate::default();
    update.is_active = body.is_active;
    let user = state
        .auth
        .update_user(user_id(&id)?, update)
        .await?
        .ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(user.into()))
}
