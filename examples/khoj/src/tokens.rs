//! `/auth/token`: Khoj's API keys (`kk-…`), stored as SHA-256 digests with `accessed_at`
//! kept (Khoj stores them in plain text and never updates it).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use portcullis::store::{TokenId, TokenRecord, UserId};
use portcullis::token::TokenDigest;
use portcullis::{ApiKeyError, Identity, NewApiKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::session::{Caller, SessionCaller};
use super::{AppState, api};

/// `POST /auth/token?token_name=…`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CreateQuery {
    /// A name for the key; a random readable one when absent.
    pub token_name: Option<String>,
}

/// A key just created: the secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub name: String,
}

/// A key in the listing: never its secret.
#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    /// What `DELETE /auth/token?token=` takes, besides the key itself.
    pub id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accessed_at: Option<OffsetDateTime>,
}

/// `DELETE /auth/token?token=…`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// The key itself, or its id from the listing.
    pub token: String,
}

const ADJECTIVES: [&str; 16] = [
    "Amber", "Brave", "Calm", "Daring", "Eager", "Gentle", "Golden", "Happy", "Keen", "Lucky",
    "Mellow", "Nimble", "Quiet", "Swift", "Vivid", "Wise",
];
const ANIMALS: [&str; 16] = [
    "Badger", "Crane", "Dolphin", "Falcon", "Heron", "Ibex", "Koala", "Lynx", "Marten", "Otter",
    "Panda", "Quokka", "Raven", "Seal", "Tiger", "Wren",
];

/// A random readable name, as Khoj gives a key created without one.
pub fn random_name() -> String {
    let adjective = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let animal = ANIMALS[rand::random_range(0..ANIMALS.len())];
    format!("{adjective} {animal}")
}

/// Creates a key for `owner`: the handler's and the settings page's common path.
pub async fn create_key(
    app: &AppState,
    identity: &Identity,
    name: Option<&str>,
) -> Result<CreatedToken, Response> {
    let Some(owner) = identity.user_record() else {
        return Err(api::error(StatusCode::FORBIDDEN, "Forbidden", None));
    };
    let name = name.map(str::trim).filter(|name| !name.is_empty());
    let name = name.map_or_else(random_name, str::to_owned);
    match app.api_keys.create(owner, NewApiKey::named(&name)).await {
        Ok(created) => Ok(CreatedToken {
            token: created.secret.into_exposed(),
            name,
        }),
        Err(ApiKeyError::InvalidName) => Err(api::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The key's name must be 1 to 100 printable characters.",
            None,
        )),
        Err(ApiKeyError::LimitReached { limit }) => Err(api::error(
            StatusCode::CONFLICT,
            &format!("At most {limit} API keys are allowed: delete one first."),
            None,
        )),
        Err(ApiKeyError::InactiveOwner) => Err(api::error(
            StatusCode::FORBIDDEN,
            "This account is disabled.",
            None,
        )),
        Err(error) => Err(api::unavailable(&error)),
    }
}

/// `owner`'s live keys, oldest first.
pub async fn live_keys(app: &AppState, owner: UserId) -> Result<Vec<TokenRecord>, Response> {
    let now = app.auth.now();
    match app.api_keys.list(owner).await {
        Ok(keys) => Ok(keys
            .into_iter()
            .filter(|key| key.revoked_at.is_none() && key.expires_at.is_none_or(|at| at > now))
            .collect()),
        Err(error) => Err(api::unavailable(&error)),
    }
}

/// Revokes `owner`'s key named by `token` (the key itself or its id); whether one was.
pub async fn delete_key(app: &AppState, owner: UserId, token: &str) -> Result<bool, Response> {
    let token = token.trim();
    let id = if app.api_keys.format().recognizes(token) {
        let digest = TokenDigest::of(token);
        let keys = live_keys(app, owner).await?;
        match keys.into_iter().find(|key| key.digest == digest) {
            Some(key) => key.id,
            None => return Ok(false),
        }
    } else {
        match token.parse::<i64>() {
            Ok(id) => TokenId(id),
            Err(_) => return Ok(false),
        }
    };
    app.api_keys
        .revoke(owner, id)
        .await
        .map_err(|error| api::unavailable(&error))
}

/// `POST /auth/token`: a browser session only (an API key cannot mint keys: `403`);
/// without a sign-in, `303` to the login page.
#[utoipa::path(post, path = "/auth/token", tag = "auth", params(CreateQuery),
    security(("session" = [])),
    responses(
        (status = 200, body = CreatedToken, description = "The new key, shown this once"),
        (status = 303, description = "Not signed in: to the login page"),
        (status = 400, description = "A malformed Authorization header"),
        (status = 401, description = "A bad credential"),
        (status = 403, description = "Not a browser session (an API key cannot create keys)"),
        (status = 409, description = "Too many keys"),
        (status = 422, description = "The name is too long"),
    ))]
pub async fn create(
    State(app): State<AppState>,
    SessionCaller(caller): SessionCaller,
    query: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let name = query.ok().and_then(|Query(query)| query.token_name);
    match create_key(&app, &caller.identity, name.as_deref()).await {
        Ok(created) => Json(created).into_response(),
        Err(response) => response,
    }
}

/// `GET /auth/token`: the caller's keys with names and dates.
#[utoipa::path(get, path = "/auth/token", tag = "auth",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = [TokenInfo], description = "The caller's keys"),
        (status = 303, description = "Not signed in: to the login page"),
        (status = 400, description = "A malformed Authorization header"),
        (status = 401, description = "A bad credential"),
    ))]
pub async fn list(State(app): State<AppState>, caller: Caller) -> Response {
    match live_keys(&app, caller.owner).await {
        Ok(keys) => Json(
            keys.into_iter()
                .map(|key| TokenInfo {
                    id: key.id.0.to_string(),
                    name: key.name.unwrap_or_default(),
                    created_at: key.created_at,
                    accessed_at: key.last_used_at,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(response) => response,
    }
}

/// `DELETE /auth/token?token=…`: `200` when the caller's key is gone, `404` when the caller
/// has no such key.
#[utoipa::path(delete, path = "/auth/token", tag = "auth", params(DeleteQuery),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted"),
        (status = 303, description = "Not signed in: to the login page"),
        (status = 400, description = "A malformed Authorization header"),
        (status = 401, description = "A bad credential"),
        (status = 404, description = "No such key of the caller's"),
        (status = 422, description = "token missing"),
    ))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return api::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The token parameter is required.",
            None,
        );
    };
    match delete_key(&app, caller.owner, &query.token).await {
        Ok(true) => Json(serde_json::Value::Null).into_response(),
        Ok(false) => api::error(StatusCode::NOT_FOUND, "API key not found.", None),
        Err(response) => response,
    }
}
