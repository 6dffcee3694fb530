//! The server-rendered pages: `/login` (email, then the code), `/` (who is signed in) and
//! `/settings` (API keys). No script and no external asset: they work without JavaScript,
//! and a strict `Content-Security-Policy` says so.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use http::{HeaderValue, StatusCode};
use portcullis::Identity;
use portcullis::redirect::LocalRedirect;
use serde::Deserialize;

use super::session::{Caller, SessionCaller};
use super::{AppState, tokens};

/// Inline styles only; no scripts, frames or foreign form targets. Pages are never cached,
/// and never leak their URL (a sign-in link's code) to another site.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Khoj</title><style>{STYLE}</style></head>\
         <body><main>\n{body}\n</main></body></html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
                     form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Html(html),
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f3;color:#1d1d1b}\
main{max-width:32rem;margin:3rem auto;padding:0 1rem}\
h1{font-size:1.6rem}label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #888;border-radius:.4rem}\
button{margin-top:1rem;padding:.6rem 1rem;font-size:1rem;border:0;border-radius:.4rem;background:#1d1d1b;color:#fff;cursor:pointer}\
button:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #f0a500;outline-offset:2px}\
.error{background:#fde8e8;border-left:4px solid #c81e1e;padding:.6rem;margin:1rem 0}\
.note{background:#e8f4fd;border-left:4px solid #1e6fc8;padding:.6rem;margin:1rem 0}\
code{word-break:break-all;background:#fff;padding:.2rem .4rem;border:1px solid #ccc}\
table{width:100%;border-collapse:collapse}td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}\
td form{margin:0}td button{margin:0;padding:.3rem .6rem}\
a.button{display:inline-block;padding:.6rem 1rem;border:1px solid #1d1d1b;border-radius:.4rem;color:#1d1d1b;text-decoration:none}\
.or{margin:1.2rem 0 .4rem;color:#555}";

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn hidden_next(next: Option<&str>) -> String {
    next.map(|next| {
        format!(
            "<input type=\"hidden\" name=\"next\" value=\"{}\">",
            escape(next)
        )
    })
    .unwrap_or_default()
}

/// The login page: the email form, or, once a code was sent to `email`, the code form;
/// with `error` shown above it.
pub fn login_page(
    app: &AppState,
    status: StatusCode,
    email: Option<&str>,
    next: Option<&str>,
    error: Option<&str>,
) -> Response {
    let error = error
        .map(|error| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(error)))
        .unwrap_or_default();
    let body = match email {
        Some(email) => format!(
            "<h1>Check your email</h1>{error}\
             <p class=\"note\">If <strong>{shown}</strong> can sign in, a 6-digit code and a link are on their way. \
             The code works once, within 5 minutes.</p>\
             <form method=\"get\" action=\"/auth/magic\">\
             <input type=\"hidden\" name=\"email\" value=\"{shown}\">{next}\
             <label for=\"code\">Sign-in code</label>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{{6}}\" maxlength=\"6\" required autofocus>\
             <button type=\"submit\">Sign in</button></form>\
             <p><a href=\"/login\">Use another address or send a new code</a></p>",
            shown = escape(email),
            next = hidden_next(next),
        ),
        None => format!(
            "<h1>Sign in to Khoj</h1>{error}\
             <form method=\"post\" action=\"/auth/magic\">{next}\
             <label for=\"email\">Email address</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required autofocus>\
             <button type=\"submit\">Send magic link</button></form>{google}",
            next = hidden_next(next),
            google = if app.oidc.is_some() {
                let next = next.map_or_else(String::new, |next| {
                    format!(
                        "?next={}",
                        percent_encoding::utf8_percent_encode(
                            next,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                });
                format!(
                    "<p class=\"or\">or</p><p><a class=\"button\" href=\"/auth/login{}\">Continue with Google</a></p>",
                    escape(&next)
                )
            } else {
                String::new()
            },
        ),
    };
    page(status, "Sign in", &body)
}

/// `GET /login` and the form's return visit.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    pub email: Option<String>,
    pub next: Option<String>,
    pub error: Option<String>,
}

/// `GET /login[?email=][&next=]`: a signed-in browser (or anonymous mode) goes on to `next`.
pub async fn login(
    State(app): State<AppState>,
    identity: Option<Identity>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.ok().map(|Query(query)| query);
    let next = query
        .as_ref()
        .and_then(|query| query.next.as_deref())
        .and_then(|next| LocalRedirect::parse(next).ok());
    if app.anonymous_mode || identity.is_some_and(|identity| identity.user_record().is_some()) {
        return next.unwrap_or_else(LocalRedirect::root).into_response();
    }
    let email = query.as_ref().and_then(|query| query.email.as_deref());
    let error = query
        .as_ref()
        .and_then(|query| query.error.as_deref())
        .map(|code| match code {
            // `/auth/redirect`'s failures, by their codes.
            "invalid_state" => {
                "That sign-in was not begun in this browser, or was already used. Try again."
            }
            "access_denied" => "The sign-in was cancelled at the provider.",
            "account_exists" => {
                "An account with this email address exists: sign in with a magic link."
            }
            "no_account" => "No account is linked to that sign-in.",
            "inactive" => "This account is disabled.",
            "unavailable" => "The sign-in provider could not be reached. Try again later.",
            _ => "Sign-in with Google failed. Try again.",
        });
    let next = next.as_ref().map(LocalRedirect::as_str);
    login_page(&app, StatusCode::OK, email, next, error)
}

/// `GET /`: who is signed in.
pub async fn home(caller: Caller) -> Response {
    let user = caller.identity.user_record().map(|user| {
        (
            user.email.clone().unwrap_or_else(|| user.username.clone()),
            user.username.clone(),
        )
    });
    let (email, username) = user.unwrap_or_default();
    page(
        StatusCode::OK,
        "Home",
        &format!(
            "<h1>Signed in</h1><p>You are signed in as <strong id=\"user\">{}</strong> ({}).</p>\
             <p><a href=\"/settings\">Settings and API keys</a></p>\
             <p><a href=\"/auth/logout\">Sign out</a></p>",
            escape(&email),
            escape(&username)
        ),
    )
}

/// `GET /settings`: the caller's API keys, a form to create one and a button to delete each.
pub async fn settings(
    State(app): State<AppState>,
    SessionCaller(caller): SessionCaller,
) -> Response {
    settings_page(&app, &caller, StatusCode::OK, None).await
}

async fn settings_page(
    app: &AppState,
    caller: &Caller,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let keys = match tokens::live_keys(app, caller.owner).await {
        Ok(keys) => keys,
        Err(response) => return response,
    };
    let rows: String = keys
        .iter()
        .map(|key| {
            format!(
                "<tr><td>{name}</td><td>{created}</td><td>{used}</td><td>\
                 <form method=\"post\" action=\"/settings/keys/delete\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\" aria-label=\"Delete {name}\">Delete</button></form></td></tr>",
                name = escape(key.name.as_deref().unwrap_or("")),
                created = key.created_at.date(),
                used = key
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |at| at.date().to_string()),
                id = key.id.0,
            )
        })
        .collect();
    let table = if keys.is_empty() {
        "<p>No API keys yet.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Name</th><th>Created</th><th>Last used</th><th></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    page(
        status,
        "Settings",
        &format!(
            "<h1>Settings</h1>{notice}<h2>API keys</h2>{table}\
             <form method=\"post\" action=\"/settings/keys\">\
             <label for=\"name\">New key's name</label>\
             <input id=\"name\" name=\"name\" maxlength=\"100\" placeholder=\"My Desktop\">\
             <button type=\"submit\">Create API key</button></form>\
             <p><a href=\"/\">Home</a> · <a href=\"/auth/logout\">Sign out</a></p>",
            notice = notice.unwrap_or_default(),
        ),
    )
}

/// The settings page's key form.
#[derive(Debug, Deserialize)]
pub struct NewKeyForm {
    pub name: Option<String>,
}

/// `POST /settings/keys`: creates a key and shows its secret once.
pub async fn create_key(
    State(app): State<AppState>,
    SessionCaller(caller): SessionCaller,
    form: Result<Form<NewKeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let name = form.ok().and_then(|Form(form)| form.name);
    match tokens::create_key(&app, &caller.identity, name.as_deref()).await {
        Ok(created) => {
            let notice = format!(
                "<div class=\"note\" role=\"status\"><p>The API key <strong>{}</strong> was created. \
                 Copy it now: it is not shown again.</p><p><code id=\"new-key\">{}</code></p></div>",
                escape(&created.name),
                escape(&created.token)
            );
            settings_page(&app, &caller, StatusCode::CREATED, Some(notice)).await
        }
        Err(response) => response,
    }
}

/// The settings page's delete buttons.
#[derive(Debug, Deserialize)]
pub struct DeleteKeyForm {
    pub id: String,
}

/// `POST /settings/keys/delete`: revokes a key and goes back to the settings page.
pub async fn delete_key(
    State(app): State<AppState>,
    SessionCaller(caller): SessionCaller,
    form: Result<Form<DeleteKeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return settings_page(&app, &caller, StatusCode::UNPROCESSABLE_ENTITY, None).await;
    };
    match tokens::delete_key(&app, caller.owner, &form.id).await {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, HeaderValue::from_static("/settings"))],
        )
            .into_response(),
        Err(response) => response,
    }
}
