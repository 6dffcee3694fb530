//! `POST /auth/magic` (mail a sign-in code and link) and `GET /auth/magic` (redeem it), as
//! Khoj answers them; the login page's forms post and link here too.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis::flows::MagicLinkError;
use portcullis::redirect::LocalRedirect;
use portcullis::sign_in::{Refusal, SignInOutcome};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{AppState, api, pages};

/// Khoj's messages, word for word where Khoj has one.
pub const INVALID_EMAIL: &str = "Invalid email address. Please fix before trying again.";
pub const TOO_MANY_REQUESTS: &str =
    "Too many requests for your email address. Please wait before trying again.";
pub const OUT_OF_ATTEMPTS: &str = "Ran out of login attempts. Please wait before trying again.";
pub const USER_NOT_FOUND: &str = "User not found.";
pub const WRONG_CODE: &str =
    "That code is not right, or was already used. Check the latest mail and try again.";
pub const EXPIRED_CODE: &str = "That code has expired. Request a new one.";

/// `POST /auth/magic`: a JSON body (Khoj's clients) or the login form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MagicRequest {
    pub email: String,
    /// Where to go once signed in: a path on this site.
    pub next: Option<String>,
}

/// `GET /auth/magic`: what the mailed link (or the code form) carries.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MagicVerify {
    pub code: String,
    pub email: String,
    pub next: Option<String>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `POST /auth/magic`: mails a code and link, answering `200` with an empty body whether
/// or not the address has an account (the login form gets the code page instead).
#[utoipa::path(post, path = "/auth/magic", tag = "auth",
    request_body(content = MagicRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A code and link were mailed, if the address may sign in"),
        (status = 404, description = "Not an email address"),
        (status = 413, description = "The body is too large"),
        (status = 415, description = "Not JSON or a form"),
        (status = 422, description = "The body is not {\"email\"}"),
        (status = 429, description = "Too many requests for this address or client"),
    ))]
pub async fn request(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = is_form(&headers);
    let parsed: Result<MagicRequest, String> = if form {
        serde_urlencoded::from_bytes(&body).map_err(|error| error.to_string())
    } else {
        serde_json::from_slice(&body).map_err(|error| error.to_string())
    };
    let request = match parsed {
        Ok(request) => request,
        Err(error) if form => {
            return pages::login_page(
                &app,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                Some(&error),
            );
        }
        Err(error) => {
            let detail = format!("The body must be {{\"email\": \"…\"}}: {error}");
            return api::error(StatusCode::UNPROCESSABLE_ENTITY, &detail, None);
        }
    };
    // An unsafe `next` is dropped here rather than carried in a mail.
    let next = request
        .next
        .as_deref()
        .and_then(|next| LocalRedirect::parse(next).ok());
    let next = next.as_ref().map(LocalRedirect::as_str);
    let answer = app.magic.request(&request.email, next).await;
    let (status, detail, retry_after) = match answer {
        Ok(()) if form => return code_sent(&request.email, next),
        Ok(()) => return StatusCode::OK.into_response(),
        Err(MagicLinkError::InvalidEmail) => (StatusCode::NOT_FOUND, INVALID_EMAIL, None),
        Err(MagicLinkError::TooManyRequests { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            TOO_MANY_REQUESTS,
            Some(retry_after),
        ),
        Err(error) => return api::unavailable(&error),
    };
    if form {
        pages::login_page(&app, status, None, next, Some(detail))
    } else {
        api::error(status, detail, retry_after)
    }
}

/// After the form asked for a code: `303` to the page where it is typed.
fn code_sent(email: &str, next: Option<&str>) -> Response {
    let mut location = format!(
        "/login?email={}",
        utf8_percent_encode(email.trim(), NON_ALPHANUMERIC)
    );
    if let Some(next) = next {
        location.push_str("&next=");
        location.push_str(&utf8_percent_encode(next, NON_ALPHANUMERIC).to_string());
    }
    let location =
        HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/login"));
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

/// `GET /auth/magic?code=&email=[&next=]`: signs in and sends the browser on with `307`;
/// refusals are `401` (a wrong code, or one used, replaced or out of guesses, as Khoj
/// answers a code that no longer matches), `403` (expired unused), `404` (no such user, only
/// when sign-in does not create accounts), `429` (out of attempts): JSON for scripts, the
/// code page with the message for browsers.
#[utoipa::path(get, path = "/auth/magic", tag = "auth", params(MagicVerify),
    responses(
        (status = 307, description = "Signed in: a session cookie, and on to next"),
        (status = 401, description = "Wrong, used, replaced or dead code"),
        (status = 403, description = "Expired code"),
        (status = 404, description = "No such user (only when sign-in creates no accounts)"),
        (status = 422, description = "code or email missing"),
        (status = 429, description = "Out of attempts"),
    ))]
pub async fn verify(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<MagicVerify>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let html = api::wants_html(&headers);
    let Ok(Query(query)) = query else {
        let detail = "The link must carry code and email.";
        return if html {
            pages::login_page(
                &app,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                Some(detail),
            )
        } else {
            api::error(StatusCode::UNPROCESSABLE_ENTITY, detail, None)
        };
    };
    let next = query
        .next
        .as_deref()
        .and_then(|next| LocalRedirect::parse(next).ok());
    let refuse = |status: StatusCode, detail: &str, retry_after| {
        if html {
            let next = next.as_ref().map(LocalRedirect::as_str);
            pages::login_page(&app, status, Some(&query.email), next, Some(detail))
        } else {
            api::error(status, detail, retry_after)
        }
    };
    if !app.auto_create_users {
        // Khoj's answer when accounts are not created at sign-in.
        match app.auth.users().user_by_email(query.email.trim()).await {
            Ok(Some(_)) => {}
            Ok(None) => return refuse(StatusCode::NOT_FOUND, USER_NOT_FOUND, None),
            Err(error) => return api::unavailable(&error),
        }
    }
    let signed_in = match app.magic.verify(&query.email, &query.code).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => signed_in,
        Ok(SignInOutcome::Refused(Refusal::Throttled { retry_after })) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                OUT_OF_ATTEMPTS,
                Some(retry_after),
            );
        }
        Ok(SignInOutcome::Refused(Refusal::ChallengeInvalid)) => {
            return refuse(StatusCode::FORBIDDEN, EXPIRED_CODE, None);
        }
        Ok(SignInOutcome::Refused(Refusal::Inactive)) => {
            return refuse(StatusCode::FORBIDDEN, "This account is disabled.", None);
        }
        // A wrong, used, replaced or dead code; or a second factor this server never
        // configures.
        Ok(_) => return refuse(StatusCode::UNAUTHORIZED, WRONG_CODE, None),
        Err(error) => return api::unavailable(&error),
    };
    match app.sessions.start(&signed_in, &headers).await {
        Ok(started) => {
            let target = next.unwrap_or_else(LocalRedirect::root);
            let location = HeaderValue::try_from(target.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("/"));
            (
                StatusCode::TEMPORARY_REDIRECT,
                started.cookie,
                [
                    (LOCATION, location),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}
