//! A small cookie-login application on portcullis, served on 127.0.0.1: the session tests
//! drive it with an HTTP client, the browser test with Chromium.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use portcullis::assurance::Factor;
use portcullis::clock::ManualClock;
use portcullis::csrf::CrossOrigin;
use portcullis::flows::{PasswordLogin, Registration};
use portcullis::redirect::LocalRedirect;
use portcullis::session::Sessions;
use portcullis::sign_in::{Authenticated, SignInOutcome};
use portcullis::source::{Bearer, SessionCookie};
use portcullis::store::{Stores, UserUpdate};
use portcullis::token::TokenFormat;
use portcullis::{
    ApiKeys, Auth, AuthError, AuthLayer, CurrentUser, Identity, PasswordPolicy, Passwords,
    json_detail,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Every user's password.
pub const PASSWORD: &str = "correct horse battery";
/// The session cookie's name.
pub const COOKIE: &str = "__Host-session";

/// The running application.
pub struct App {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub auth: Auth,
    /// The clock every timeout is measured on.
    pub clock: Arc<ManualClock>,
    pub sessions: Sessions,
    pub api_keys: ApiKeys,
}

#[derive(Clone)]
struct AppState {
    auth: Auth,
    sessions: Sessions,
    login: PasswordLogin,
}

/// Serves the application over `store` with users `ada`, `mallory` and `grace`.
pub async fn serve(store: impl Into<Stores>) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let auth = Auth::builder(store).shared_clock(clock.clone()).build();
    let sessions = Sessions::new(&auth, TokenFormat::new("pcs_").unwrap());
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("kk-").unwrap());
    let login = PasswordLogin::new(&auth, &Passwords::new(PasswordPolicy::default()));
    for name in ["ada", "mallory", "grace"] {
        login
            .register(Registration::new(name, PASSWORD))
            .await
            .unwrap();
    }
    let state = AppState {
        auth: auth.clone(),
        sessions: sessions.clone(),
        login,
    };
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(log_in).layer(CrossOrigin::new()))
        .route("/signin", get(sign_in_page))
        .route("/signin", post(sign_in).layer(CrossOrigin::new()))
        .route("/logout", post(log_out))
        .route("/me", get(me))
        .route("/public", get(public))
        .route("/settings", post(save_settings))
        .route("/elevate", post(elevate))
        .route("/password", post(change_password))
        .with_state(state)
        .layer(
            AuthLayer::builder()
                .source(SessionCookie::new(sessions.clone()))
                .source(Bearer::new(api_keys.clone()))
                .build(),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    App {
        base,
        auth,
        clock,
        sessions,
        api_keys,
    }
}

/// A page for the browser to run `fetch` from, as the application's own scripts would.
async fn home() -> Html<&'static str> {
    Html("<!doctype html><title>home</title><p>home</p>")
}

async fn log_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (Some(username), Some(password)) = (body["username"].as_str(), body["password"].as_str())
    else {
        return json_detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "username and password required",
        );
    };
    let signed_in = match app.login.sign_in(username, password, None).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => signed_in,
        Ok(_) => {
            return json_detail(StatusCode::UNAUTHORIZED, "Incorrect username or password");
        }
        Err(_) => return json_detail(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    match app.sessions.start(&signed_in, &headers).await {
        Ok(started) => {
            let username = &signed_in.user().username;
            (started.cookie, Json(json!({ "username": username }))).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// Where the sign-in form sends the browser once it has signed in.
#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// A sign-in form that keeps the page's `?next=` for after the login, as login pages do.
async fn sign_in_page(Query(next): Query<Next>) -> Html<String> {
    let next = next.next.unwrap_or_default();
    Html(format!(
        "<!doctype html><title>sign in</title><form method=post action=/signin>\
         <input type=hidden name=next value=\"{}\">\
         <input name=username><input name=password type=password>\
         <button type=submit>Sign in</button></form>",
        html_escape(&next)
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Deserialize)]
struct SignIn {
    username: String,
    password: String,
    next: Option<String>,
}

/// The form login: a session and a `303 See Other` to `next` if it stays on this site, else `/`.
async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, AuthError> {
    let outcome = app.login.sign_in(&form.username, &form.password, None);
    let Ok(SignInOutcome::SignedIn(signed_in)) = outcome.await else {
        return Ok(json_detail(
            StatusCode::UNAUTHORIZED,
            "Incorrect username or password",
        ));
    };
    let started = app.sessions.start(&signed_in, &headers).await?;
    let next = LocalRedirect::next_or_root(form.next.as_deref());
    Ok((started.cookie, next).into_response())
}

async fn log_out(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, AuthError> {
    let removal = app.sessions.end(&headers).await?;
    Ok((removal, StatusCode::NO_CONTENT).into_response())
}

async fn me(user: CurrentUser) -> Json<Value> {
    Json(json!({ "username": user.username, "roles": user.roles }))
}

async fn public(identity: Option<Identity>) -> String {
    identity.map_or_else(|| "anonymous".to_owned(), |id| id.name().to_owned())
}

async fn save_settings(user: CurrentUser) -> String {
    format!("saved for {}", user.username)
}

/// Grants the caller the `admin` role (as if an administrator approved it) and, since the
/// session's privileges changed, rotates its id.
async fn elevate(
    State(app): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, AuthError> {
    app.auth
        .update_user(user.id, UserUpdate::default().roles(["admin"]))
        .await?;
    let rotated = app.sessions.rotate(&headers).await?;
    Ok((rotated.cookie, StatusCode::NO_CONTENT).into_response())
}

/// Changes the password: every session of the user ends, and this browser gets a new one.
async fn change_password(
    State(app): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, AuthError> {
    let new = body["new"].as_str().unwrap_or_default();
    let Ok(updated) = app.login.change_password(user.id, PASSWORD, new).await else {
        return Ok(json_detail(StatusCode::BAD_REQUEST, "password not changed"));
    };
    let signed_in = Authenticated::new(updated, Factor::Password, app.auth.now());
    let started = app.sessions.start(&signed_in, &headers).await?;
    Ok((started.cookie, StatusCode::NO_CONTENT).into_response())
}
