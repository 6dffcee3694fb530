//! `/api/v2/api-keys`, as Semantik defines it: create (the secret shown once), list, read,
//! and revoke with `PATCH {"is_active": false}`. A key is named by a UUID and its name is
//! unique per owner, whatever its case (see [`key_ids`](super::key_ids)).
//!
//! Two things differ from upstream, both deliberately. A revoked key stays revoked: upstream's
//! `PATCH {"is_active": true}` would bring back a credential its owner gave up, perhaps
//! because it leaked, so here it is refused with 409 and a new key is the way back. And a key
//! may be limited to some permissions (`{"permissions": {"scopes": [...]}}`, upstream's field
//! "reserved for future use"); without it a key may do what the credential creating it may.

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
use super::{AppState, PERMISSIONS, key_ids};

/// Semantik allows at most this many active keys per user.
pub const MAX_ACTIVE_KEYS: u32 = 20;
const DEFAULT_EXPIRY_DAYS: u32 = 365;
const MAX_EXPIRY_DAYS: u32 = 3650;
const MAX_NAME_LEN: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Days until the key expires (default 365).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
    /// What the key may do; omitted, everything the caller's credential may do.
    #[serde(default)]
    permissions: Option<Permissions>,
}

/// A key's permissions: the scopes it is limited to.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[schema(schema_with = scopes_schema)]
    scopes: Vec<String>,
}

/// A non-empty array of [`PERMISSIONS`], for the OpenAPI document.
fn scopes_schema() -> utoipa::openapi::schema::Array {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    /// `false` revokes the key for good.
    is_active: bool,
}

/// A key, without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    /// The key's UUID.
    id: String,
    name: String,
    /// Whether the key has not been revoked (an expired key is still "active"; its
    /// `expires_at` tells).
    is_active: bool,
    /// The scopes the key is limited to; `null`, whatever its creator could do.
    permissions: Option<Permissions>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl ApiKeyResponse {
    fn new(id: String, record: TokenRecord) -> Self {
        Self {
            id,
            is_active: record.revoked_at.is_none(),
            name: record.name.unwrap_or_default(),
            permissions: record.scopes.map(|scopes| Permissions { scopes }),
            last_used_at: record.last_used_at,
            expires_at: record.expires_at,
            created_at: record.created_at,
        }
    }
}

/// A new key, with its secret: in this answer and never again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyCreateResponse {
    #[serde(flatten)]
    key: ApiKeyResponse,
    api_key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyListResponse {
    api_keys: Vec<ApiKeyResponse>,
    total: usize,
}

/// The permissions the new key gets: those asked for, which must be known and, when the
/// caller's own credential is limited, among its permissions (a limited key cannot mint a
/// stronger one).
fn permissions(
    requested: Option<Permissions>,
    caller: &Scopes,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(Permissions { scopes: requested }) = requested else {
        return Ok(match caller {
            Scopes::Unrestricted => None,
            Scopes::Only(held) => Some(held.iter().cloned().collect()),
        });
    };
    if requested.is_empty() {
        return Err(ApiError::unprocessable(
            "permissions.scopes must not be empty; omit permissions for full access",
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
    post, path = "/api/v2/api-keys", tag = "api-keys", request_body = ApiKeyCreate,
    security(("bearer" = ["keys:manage"])),
    responses(
        (status = 201, description = "The key, with its secret", body = ApiKeyCreateResponse),
        (status = 400, description = "The caller has the maximum number of active keys", body = ErrorBody),
        (status = 409, description = "The caller has a key of this name (compared ignoring case)", body = ErrorBody),
        BodyErrors, AccessErrors, RateLimited,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<ApiKeyCreate>,
) -> Result<(StatusCode, Json<ApiKeyCreateResponse>), ApiError> {
    state
        .auth
        .require_recent_sign_in(user.identity(), state.key_creation_max_auth_age)?;
    let name = body.name.trim();
    check_len("name", name, 1, MAX_NAME_LEN)?;
    let days = body.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(ApiError::unprocessable(format!(
            "expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}"
        )));
    }
    let scopes = permissions(body.permissions, user.identity().scopes())?;
    let Some(id) = key_ids::reserve(&state.db, user.id, name).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("ApiKey with identifier '{name}' already exists"),
        ));
    };
    let key = NewApiKey {
        name: name.to_owned(),
        expires_in: Some(Duration::from_secs(u64::from(days) * 86_400)),
        scopes,
    };
    let created = match state.api_keys.create(user.user(), key).await {
        Ok(created) => created,
        Err(error) => {
            key_ids::release(&state.db, &id).await?;
            return Err(creation_refused(error));
        }
    };
    if let Err(error) = key_ids::attach(&state.db, &id, created.record.id).await {
        // A key the API cannot name could never be listed or revoked here: it must not live.
        state.api_keys.revoke(user.id, created.record.id).await?;
        key_ids::release(&state.db, &id).await?;
        return Err(error.into());
    }
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreateResponse {
            key: ApiKeyResponse::new(id, created.record),
            api_key: created.secret.into_exposed(),
        }),
    ))
}

fn creation_refused(error: ApiKeyError) -> ApiError {
    match error {
        ApiKeyError::LimitReached { limit } => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "Maximum number of API keys ({limit}) reached. Please revoke an existing key \
                 before creating a new one."
            ),
        ),
        ApiKeyError::InvalidName => ApiError::unprocessable(format!(
            "name must be between 1 and {MAX_NAME_LEN} characters long"
        )),
        ApiKeyError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "could not create an API key");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "API key creation is temporarily unavailable",
            )
        }
    }
}

/// The caller's keys, newest first, without secrets.
#[utoipa::path(
    get, path = "/api/v2/api-keys", tag = "api-keys", security(("bearer" = ["keys:manage"])),
    responses((status = 200, description = "The caller's keys", body = ApiKeyListResponse), AccessErrors, RateLimited)
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<ApiKeyListResponse>, ApiError> {
    let mut ids = key_ids::ids_of(&state.db, user.id).await?;
    let mut api_keys = Vec::new();
    for record in state.api_keys.list(user.id).await? {
        let id = match ids.remove(&record.id) {
            Some(id) => id,
            None => key_ids::adopt(&state.db, user.id, record.id).await?,
        };
        api_keys.push(ApiKeyResponse::new(id, record));
    }
    api_keys.sort_by_key(|key| std::cmp::Reverse(key.created_at));
    Ok(Json(ApiKeyListResponse {
        total: api_keys.len(),
        api_keys,
    }))
}

/// One of the caller's keys; another user's is answered as absent.
async fn find(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<(TokenId, TokenRecord), ApiError> {
    let not_found = || ApiError::not_found("API key");
    let token = key_ids::token_of(&state.db, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    let record = state
        .api_keys
        .list(user.id)
        .await?
        .into_iter()
        .find(|record| record.id == token)
        .ok_or_else(not_found)?;
    Ok((token, record))
}

/// One of the caller's keys, without its secret.
#[utoipa::path(
    get, path = "/api/v2/api-keys/{key_id}", tag = "api-keys", security(("bearer" = ["keys:manage"])),
    params(("key_id" = String, Path, description = "The key's UUID")),
    responses((status = 200, description = "The key", body = ApiKeyResponse), NotFound, AccessErrors, RateLimited)
)]
pub async fn get_one(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let (_, record) = find(&state, &user, &id).await?;
    Ok(Json(ApiKeyResponse::new(id, record)))
}

/// Revokes one of the caller's keys (`{"is_active": false}`); the record stays, listed as
/// inactive. Revoking a revoked key changes nothing; bringing one back is refused (409).
#[utoipa::path(
    patch, path = "/api/v2/api-keys/{key_id}", tag = "api-keys", request_body = ApiKeyUpdate,
    security(("bearer" = ["keys:manage"])),
    params(("key_id" = String, Path, description = "The key's UUID")),
    responses(
        (status = 200, description = "The key as it now is", body = ApiKeyResponse),
        (status = 409, description = "A revoked key cannot be reactivated", body = ErrorBody),
        NotFound, BodyErrors, AccessErrors, RateLimited,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApiKeyUpdate>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let (token, record) = find(&state, &user, &id).await?;
    let revoked = record.revoked_at.is_some();
    match (body.is_active, revoked) {
        (true, true) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "A revoked API key cannot be reactivated; create a new one",
        )),
        (true, false) | (false, true) => Ok(Json(ApiKeyResponse::new(id, record))),
        (false, false) => {
            state.api_keys.revoke(user.id, token).await?;
            let (_, record) = find(&state, &user, &id).await?;
            Ok(Json(ApiKeyResponse::new(id, record)))
        }
    }
}
