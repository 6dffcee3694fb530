//! A real browser against browser sessions: Chromium, driven by Playwright
//! (`tests/browser/sessions.cjs`), logs in to the session application of
//! `tests/common/session_app.rs` on SQLite, and an attacker's page on another origin of the
//! same site forges form posts to it.
//!
//! What only a browser can show: that it accepts the `__Host-` cookie from
//! `http://127.0.0.1` (the examples' default address), keeps it from page scripts, sends
//! `Sec-Fetch-Site` as the CSRF check expects, forgets the cookie at logout, and follows a
//! post-login `Location` the way it reads URLs (open redirects).

mod common;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use common::session_app::{self, PASSWORD};
use portcullis::store::SqliteStore;

/// Pages on the attacker's origin that submit forms to the application as soon as they load.
fn attacker(app: String) -> Router {
    let forge = |action: &'static str, fields: &'static str| {
        move |State(app): State<String>| async move {
            Html(format!(
                "<!doctype html><form id=f method=post action=\"{app}{action}\">{fields}</form>\
                 <script>document.getElementById('f').submit()</script>"
            ))
        }
    };
    Router::new()
        .route("/forge-settings", get(forge("/settings", "")))
        .route(
            "/forge-login",
            get(forge(
                "/login",
                "<input name=username value=mallory><input name=password value=x>",
            )),
        )
        .with_state(app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_the_session_cookie_and_the_csrf_check_stops_forged_posts() {
    let Some((chromium, playwright)) = common::browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("browser.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let app = session_app::serve(store).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://{}", listener.local_addr().unwrap());
    let pages = attacker(app.base.clone());
    tokio::spawn(async move { axum::serve(listener, pages).await });

    let args = [app.base.as_str(), &evil, &chromium, PASSWORD];
    common::browser_checks("tests/browser/sessions.cjs", &args, &playwright, 18).await;
}
