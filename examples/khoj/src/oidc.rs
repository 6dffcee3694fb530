//! Sign-in with Google, or any OpenID Connect provider: `GET|POST /auth/login` sends the
//! browser to the provider, `GET /auth/redirect` completes the sign-in; failures go back to
//! `/login?error=…` with `302`, as Khoj answers them.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use portcullis::flows::{Callback, OidcError};
use portcullis::redirect::LocalRedirect;
use portcullis::sign_in::{Refusal, SignInOutcome};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppState, api};

/// `/auth/login?next=…`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LoginQuery {
    /// Where to go once signed in: a path on this site.
    pub next: Option<String>,
}

fn found(location: &str, cookies: &[HeaderValue]) -> Response {
    let location =
        HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/login"));
    let mut response = (
        StatusCode::FOUND,
        [
            (LOCATION, location),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response();
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie.clone());
    }
    response
}

/// `GET|POST /auth/login`: to the provider, with the sign-in bound to this browser.
#[utoipa::path(get, path = "/auth/login", tag = "auth", params(LoginQuery),
    responses(
        (status = 302, description = "To the identity provider"),
        (status = 404, description = "No identity provider is configured"),
    ))]
pub async fn login(
    State(app): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return api::error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    let next = query
        .ok()
        .and_then(|Query(query)| query.next)
        .and_then(|next| LocalRedirect::parse(&next).ok());
    match oidc.begin(next.as_ref()).await {
        Ok(authorization) => found(&authorization.url, &[authorization.cookie]),
        Err(error) => {
            tracing::warn!(%error, "could not begin a sign-in with the identity provider");
            found("/login?error=unavailable", &[])
        }
    }
}

/// `GET /auth/redirect`: the provider's callback; a session and on to `next`, or
/// `/login?error=…`.
#[utoipa::path(get, path = "/auth/redirect", tag = "auth",
    responses(
        (status = 302, description = "Signed in and on to next, or to /login?error=…"),
        (status = 404, description = "No identity provider is configured"),
    ))]
pub async fn redirect(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return api::error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    let callback = query.map(|Query(callback)| callback).unwrap_or_default();
    let removal = oidc.removal_cookie();
    let refused = |code: &str| {
        found(
            &format!("/login?error={code}"),
            std::slice::from_ref(&removal),
        )
    };
    let completed = match oidc.finish(&headers, &callback).await {
        Ok(completed) => completed,
        Err(error) => {
            if matches!(error, OidcError::Provider(_) | OidcError::Store(_)) {
                tracing::warn!(%error, "a sign-in with the identity provider failed");
            }
            return refused(error.code());
        }
    };
    let signed_in = match completed.outcome {
        SignInOutcome::SignedIn(signed_in) => signed_in,
        SignInOutcome::Refused(Refusal::Inactive) => return refused("inactive"),
        _ => return refused("invalid_token"),
    };
    match app.sessions.start(&signed_in, &headers).await {
        Ok(started) => {
            let session = started.cookie.header_value().clone();
            found(completed.next.as_str(), &[removal, session])
        }
        Err(error) => error.into_response(),
    }
}
