//! Sign-in with Google, or any OpenID Connect provider: `GET|POST /auth/login` sends the
//! browser to the provider, `GET /auth/redirect` completes the sign-in; failures go back to
//! `/login?error=…` with `302`, as Khoj answers them.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use portcullis::flows::{Callback, OidcError};
use portcullis::redirect::LocalRedirect;
use portcullis::session::session_cookie;
use portcullis::sign_in::{Refusal, SignInOutcome};
use portcullis::token::TokenDigest;
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

/// Google One Tap's post to `/auth/redirect`.
#[derive(Debug, Default, Deserialize)]
pub struct OneTap {
    /// The ID token Google handed the page.
    pub credential: Option<String>,
    /// Google's double-submit value, equal to the `g_csrf_token` cookie.
    pub g_csrf_token: Option<String>,
}

/// Whether the form's `g_csrf_token` equals the cookie's (compared as digests, in constant
/// time): Google's double-submit check, which a cross-site forger cannot pass.
fn csrf_token_matches(headers: &HeaderMap, form: &OneTap) -> bool {
    match (
        session_cookie(headers, "g_csrf_token"),
        form.g_csrf_token.as_deref(),
    ) {
        (Some(cookie), Some(posted)) if !cookie.is_empty() => {
            TokenDigest::of(cookie) == TokenDigest::of(posted)
        }
        _ => false,
    }
}

/// `POST /auth/redirect`: Google One Tap, a form with the ID token as `credential`; `400
/// Invalid CSRF token` unless `g_csrf_token` matches its cookie, as Khoj answers.
#[utoipa::path(post, path = "/auth/redirect", tag = "auth",
    responses(
        (status = 302, description = "Signed in and on to /, or to /login?error=…"),
        (status = 400, description = "Invalid CSRF token"),
        (status = 404, description = "No identity provider is configured"),
    ))]
pub async fn one_tap(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<OneTap>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return api::error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    let form = form.map(|Form(form)| form).unwrap_or_default();
    if !csrf_token_matches(&headers, &form) {
        return api::error(StatusCode::BAD_REQUEST, "Invalid CSRF token", None);
    }
    let Some(credential) = form.credential else {
        return found("/login?error=invalid_token", &[]);
    };
    let signed_in = match oidc.finish_id_token(&credential).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => signed_in,
        Ok(SignInOutcome::Refused(Refusal::Inactive)) => {
            return found("/login?error=inactive", &[]);
        }
        Ok(_) => return found("/login?error=invalid_token", &[]),
        Err(error) => return found(&format!("/login?error={}", error.code()), &[]),
    };
    match app.sessions.start(&signed_in, &headers).await {
        Ok(started) => found("/", &[started.cookie.header_value().clone()]),
        Err(error) => error.into_response(),
    }
}
