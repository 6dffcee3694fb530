//! The middleware a typical user writes instead of using an auth crate: `middleware::from_fn`
//! around a SHA-256 + moka API-key lookup, and around `jsonwebtoken::decode`. They are written
//! the way such code usually is (no constant-time comparison, no `WWW-Authenticate`, no
//! revocation), which makes them cheaper than they should be, not dearer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};

/// The authenticated user, as the hand-written middleware stores it in the request.
#[derive(Clone, Debug)]
pub struct KeyOwner {
    /// The user id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
}

#[derive(Clone)]
struct ApiKeyState {
    cache: moka::future::Cache<[u8; 32], Arc<KeyOwner>>,
    /// Stands in for the database: only asked on a cache miss.
    database: Arc<HashMap<[u8; 32], Arc<KeyOwner>>>,
}

fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn api_key(State(state): State<ApiKeyState>, mut request: Request, next: Next) -> Response {
    let Some(token) = bearer(&request) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let owner = match state.cache.get(&digest).await {
        Some(owner) => owner,
        None => match state.database.get(&digest) {
            Some(owner) => {
                state.cache.insert(digest, Arc::clone(owner)).await;
                Arc::clone(owner)
            }
            None => return StatusCode::UNAUTHORIZED.into_response(),
        },
    };
    request.extensions_mut().insert(owner);
    next.run(request).await
}

/// `router` behind a hand-written API-key middleware that knows `key`.
pub fn api_key_router(router: Router, key: &str) -> Router {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let owner = Arc::new(KeyOwner {
        user_id: 1,
        username: "ada".into(),
    });
    let state = ApiKeyState {
        cache: moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(30))
            .build(),
        database: Arc::new(HashMap::from([(digest, owner)])),
    };
    router.layer(middleware::from_fn_with_state(state, api_key))
}

/// The claims the hand-written JWT middleware checks.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// Subject.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
}

const SECRET: &[u8] = &[7; 32];

#[derive(Clone)]
struct JwtState {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

async fn jwt(State(state): State<JwtState>, mut request: Request, next: Next) -> Response {
    let Some(token) = bearer(&request) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match jsonwebtoken::decode::<Claims>(token, &state.key, &state.validation) {
        Ok(data) => {
            request.extensions_mut().insert(data.claims);
            next.run(request).await
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// `router` behind a hand-written HS256 JWT middleware.
pub fn jwt_router(router: Router) -> Router {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["bench"]);
    validation.set_audience(&["bench-api"]);
    let state = JwtState {
        key: Arc::new(DecodingKey::from_secret(SECRET)),
        validation: Arc::new(validation),
    };
    router.layer(middleware::from_fn_with_state(state, jwt))
}

/// A token the hand-written JWT middleware accepts for the next hour.
pub fn jwt_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let claims = Claims {
        sub: "1".into(),
        iss: "bench".into(),
        aud: "bench-api".into(),
        exp: now + 3_600,
        iat: now,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("an encodable token")
}
