//! Khoj's API routes (`/api/v1/user`, `/api/health`), its error shape (`{"detail": ...}`, as
//! FastAPI answers), and the CORS policy for Khoj's clients.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use portcullis::{Identity, json_detail};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;

use super::{AppState, KHOJ_VERSION};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `{"detail": detail}` with `status`, and `Retry-After` when given.
pub fn error(status: StatusCode, detail: &str, retry_after: Option<Duration>) -> Response {
    let mut response = json_detail(status, detail);
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs().max(1);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"khoj\""),
        );
    }
    response
}

/// The answer to a store or mail failure: never a 500 with details.
pub fn unavailable(cause: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %cause, "a dependency failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service temporarily unavailable. Please try again.",
        Some(Duration::from_secs(5)),
    )
}

/// Whether the request is a browser asking for a page, not a script asking for JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/html")
        })
}

/// What `GET /api/v1/user` answers, as Khoj's clients read it.
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    pub email: Option<String>,
    pub username: String,
    pub photo: Option<String>,
    pub is_active: bool,
    pub has_documents: bool,
    pub khoj_version: &'static str,
}

/// `GET /api/v1/user[?client=…]`: the caller's profile; unauthenticated, `403 Forbidden`,
/// which Khoj's web client reads as "not signed in".
#[utoipa::path(get, path = "/api/v1/user", tag = "api",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UserInfo, description = "The caller"),
        (status = 400, description = "A malformed Authorization header or client parameters"),
        (status = 401, description = "A bad credential"),
        (status = 403, description = "Not authenticated"),
    ))]
pub async fn user(identity: Option<Identity>) -> Response {
    let Some(user) = identity.as_ref().and_then(Identity::user_record) else {
        return error(StatusCode::FORBIDDEN, "Forbidden", None);
    };
    Json(UserInfo {
        email: user.email.clone(),
        username: user.username.clone(),
        photo: user.photo_url.clone(),
        is_active: user.is_active,
        // Documents are outside this example: nobody has indexed any.
        has_documents: false,
        khoj_version: KHOJ_VERSION,
    })
    .into_response()
}

/// `GET /api/health`: `{"email": …}` for an authenticated caller, `{"detail": "OK"}`
/// otherwise, both 200, as Khoj answers.
#[utoipa::path(get, path = "/api/health", tag = "api",
    responses(
        (status = 200, description = "{\"email\"} when authenticated, else {\"detail\": \"OK\"}"),
        (status = 400, description = "A malformed Authorization header"),
        (status = 401, description = "A bad credential"),
    ))]
pub async fn health(State(_): State<AppState>, identity: Option<Identity>) -> Response {
    match identity.as_ref().and_then(Identity::user_record) {
        Some(user) => Json(serde_json::json!({ "email": user.email })).into_response(),
        None => json_detail(StatusCode::OK, "OK"),
    }
}

pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", None)
}

pub async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", None)
}

/// Whether `origin` is one of Khoj's clients: the Obsidian and desktop apps, the mobile app's
/// web view, a local web client on any port, or a configured origin.
fn is_khoj_client(origin: &[u8], configured: &[String]) -> bool {
    const APPS: [&[u8]; 3] = [
        b"app://obsidian.md",
        b"capacitor://localhost",
        b"app://khoj.dev",
    ];
    let local = |prefix: &[u8]| {
        origin.strip_prefix(prefix).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix(b":").is_some_and(|port| {
                    !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
                })
        })
    };
    APPS.contains(&origin)
        || local(b"http://localhost")
        || local(b"http://127.0.0.1")
        || configured
            .iter()
            .any(|allowed| allowed.as_bytes() == origin)
}

/// CORS for Khoj's clients, with credentials (the web client's session cookie).
pub fn cors(configured: &[String]) -> CorsLayer {
    let configured: Vec<String> = configured
        .iter()
        .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _: &Parts| is_khoj_client(origin.as_bytes(), &configured),
        ))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PUT,
            Method::PATCH,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khojs_clients_and_only_they_are_allowed() {
        let configured = ["https://khoj.example.com".to_owned()];
        for good in [
            "app://obsidian.md",
            "capacitor://localhost",
            "app://khoj.dev",
            "http://localhost",
            "http://localhost:42110",
            "http://127.0.0.1:3000",
            "https://khoj.example.com",
        ] {
            assert!(is_khoj_client(good.as_bytes(), &configured), "{good}");
        }
        for bad in [
            "http://localhost.evil.example",
            "http://localhost:",
            "http://localhost:42110x",
            "http://127.0.0.1.evil.example",
            "https://localhost",
            "app://obsidian.md.evil",
            "null",
            "https://evil.example",
        ] {
            assert!(!is_khoj_client(bad.as_bytes(), &configured), "{bad}");
        }
    }
}
