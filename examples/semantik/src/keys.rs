//! `/api/keys`: create (secret shown once), list, revoke.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use portcullis::store::{TokenId, TokenRecord};
use portcullis::{ApiKeyError, CurrentUser, NewApiKey, Scopes};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::api::{
    AccessErrors, ApiError, ApiJson, BodyErrors, ErrorBody, NotFound, RateLimited, check_len,
};
use super::{AppState, PERMISSIONS};

/// Semantik allows at most this many active keys per user.
pub const MAX_ACTIVE_KEYS: u32 = 20;
const DEFAULT_EXPIRY_DAYS: u32 = 365;
const MAX_EXPIRY_DAYS: u32 = 3650;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Days until the key expires (default 365).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
    /// What the key may do; omitted, everything the caller's credential may do.
    #[serde(default)]
    #[schema(schema_with = permissions_schema)]
    permissions: Option<Vec<String>>,
}

/// A non-empty array of [`PERMISSIONS`], for the OpenAPI document.
fn permissions_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(PERMISSIONS)),
        )
        .min_items(Some(1))
        .build()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyCreated {
    id: i64,
    name: String,
    api_key: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    id: i64,
    name: String,
    key_hint: String,
    permissions: Option<Vec<String>>,
    is_active: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl ApiKeyOut {
    fn new(record: TokenRecord, now: OffsetDateTime) -> Self {
        Self {
            id: record.id.0,
            is_active: record.is_active(now),
            name: record.name.unwrap_or_default(),
            key_hint: record.hint,
            permissions: record.scopes,
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// The permissions the new key gets: those asked for, which must be known and, when the
/// caller's own credential is limited, among its permissions (a limited key cannot mint a
/// stronger one).
fn permissions(
    requested: Option<Vec<String>>,
    caller: &Scopes,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(requested) = requested else {
        return Ok(match caller {
            Scopes::Unrestricted => None,
            Scopes::Only(held) => Some(held.iter().cloned().collect()),
        });
    };
    if requested.is_empty() {
        return Err(ApiError::unprocessable(
            "permissions must not be empty; omit the field for full access",
        ));
    }
    if let Some(unknown) = requested
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(ApiError::unprocessable(format!(
            "unknown permission {unknown:?}; allowed: {}",
            PERMISSIONS.join(", ")
        )));
    }
    if let Some(beyond) = requested.iter().find(|p| !caller.allows(p)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("cannot grant {beyond:?}: the current credential does not hold it"),
        ));
    }
    let mut requested = requested;
    requested.sort();
    requested.dedup();
    Ok(Some(requested))
}

/// Creates an API key; its secret is in this answer and never again.
///
/// A key outlives the sessions and survives a password change, so creating one needs a sign-in
/// within the last `API_KEY_SIGN_IN_MAX_AGE_MINUTES` (15 by default): a stolen access token
/// from an older sign-in, however often refreshed, and any API key are refused with 401
/// `insufficient_user_authentication` (RFC 9470) and must sign in again.
#[utoipa::path(
    post, path = "/api/keys", tag = "keys", request_body = ApiKeyCreate,
    security(("bearer" = ["keys:manage"])),
    responses(
        (status = 201, description = "The key, with its secret", body = ApiKeyCreated),
        (status = 400, description = "The caller has the maximum number of active keys", body = ErrorBody),
        BodyErrors, AccessErrors, RateLimited,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<ApiKeyCreate>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    state
        .auth
        .require_recent_sign_in(user.identity(), state.key_creation_max_auth_age)?;
    check_len("name", body.name.trim(), 1, portcullis::MAX_KEY_NAME_LEN)?;
    let days = body.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(ApiError::unprocessable(format!(
            "expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}"
        )));
    }
    let scopes = permissions(body.permissions, user.identity().scopes())?;
    let key = NewApiKey {
        name: body.name,
        expires_in: Some(Duration::from_secs(u64::from(days) * 86_400)),
        scopes,
    };
    let created = state
        .api_keys
        .create(user.user(), key)
        .await
        .map_err(|error| match error {
            ApiKeyError::LimitReached { limit } => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Maximum number of active API keys ({limit}) reached; revoke one first"),
            ),
            ApiKeyError::InvalidName => {
                ApiError::unprocessable("name must be between 1 and 100 characters long")
            }
            ApiKeyError::Store(error) => error.into(),
            other => {
                tracing::error!(error = %other, "could not create an API key");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "API key creation is temporarily unavailable",
                )
            }
        })?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            id: created.record.id.0,
            name: created.record.name.unwrap_or_default(),
            api_key: created.secret.into_exposed(),
            created_at: created.record.created_at,
            expires_at: created.record.expires_at,
        }),
    ))
}

/// The caller's keys, without secrets.
#[utoipa::path(
    get, path = "/api/keys", tag = "keys", security(("bearer" = ["keys:manage"])),
    responses((status = 200, description = "The caller's keys", body = Vec<ApiKeyOut>), AccessErrors, RateLimited)
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<ApiKeyOut>>, ApiError> {
    let now = state.auth.now();
    let keys = state.api_keys.list(user.id).await?;
    Ok(Json(
        keys.into_iter().map(|k| ApiKeyOut::new(k, now)).collect(),
    ))
}

/// Revokes one of the caller's keys.
#[utoipa::path(
    delete, path = "/api/keys/{id}", tag = "keys", security(("bearer" = ["keys:manage"])),
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"), NotFound, AccessErrors, RateLimited)
)]
pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::not_found("API key"))?;
    if state.api_keys.revoke(user.id, TokenId(id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("API key"))
    }
}
