//! Signing out, the OAuth metadata Khoj's web client reads, and the rule Khoj's
//! `@requires(["authenticated"], redirect="login_page")` applies to account routes.

use axum::Json;
use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis::store::UserId;
use portcullis::{AuthMethod, Identity};
use serde_json::json;

use super::AppState;
use super::api;

/// `303 See Other` to `/login?next=<this page>`, as Khoj answers an account route without a
/// sign-in.
pub fn to_login(uri: &Uri) -> Response {
    let page = uri.path_and_query().map_or("/", |target| target.as_str());
    let location = format!(
        "/login?next={}",
        utf8_percent_encode(page, NON_ALPHANUMERIC)
    );
    let location =
        HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/login"));
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, location),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

/// The caller, when they authenticated as a user at all (a session, an API key, a client
/// application); without that, the extractor answers with the redirect to the login page.
pub struct Caller {
    pub identity: Identity,
    pub owner: UserId,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>()
            && let Some(owner) = identity.user_id()
        {
            return Ok(Self {
                identity: identity.clone(),
                owner,
            });
        }
        let Ok(OriginalUri(uri)) = OriginalUri::from_request_parts(parts, state).await;
        Err(to_login(&uri))
    }
}

/// The caller, when they signed in with a browser session: what creating credentials takes.
/// A program's credential (an API key, a client application) gets `403`.
pub struct SessionCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for SessionCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if matches!(caller.identity.method(), AuthMethod::Session { .. }) {
            Ok(Self(caller))
        } else {
            Err(api::error(
                StatusCode::FORBIDDEN,
                "Sign in with a browser session to create API keys.",
                None,
            ))
        }
    }
}

/// `GET /auth/logout`: ends the session on every instance and sends the browser home.
#[utoipa::path(get, path = "/auth/logout", tag = "auth",
    responses((status = 307, description = "Signed out; on to /")))]
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match app.sessions.end(&headers).await {
        Ok(removal) => (
            StatusCode::TEMPORARY_REDIRECT,
            removal,
            [(LOCATION, HeaderValue::from_static("/"))],
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /auth/oauth/metadata`: Khoj's web client shows "Continue with Google" when
/// `google` is set.
#[utoipa::path(get, path = "/auth/oauth/metadata", tag = "auth",
    responses((status = 200, description = "The OAuth providers configured")))]
pub async fn oauth_metadata(State(app): State<AppState>) -> Response {
    let google = app
        .oidc
        .as_ref()
        .map(|oidc| json!({ "client_id": oidc.client_id(), "redirect_uri": "/auth/redirect" }));
    Json(json!({ "google": google })).into_response()
}
