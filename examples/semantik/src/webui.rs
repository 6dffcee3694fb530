//! Semantik's web app, when its build is at hand (`WEBUI_STATIC_DIR`).
//!
//! Upstream serves the React build from the API's own origin: the page on each of the app's
//! client-side routes and the bundle under `/assets` (`packages/webui/api/root.py`,
//! `packages/webui/main.py`). The app's requests are relative (`/api/...`, `/ws/...`), so
//! serving it here is what lets Semantik's own client run against this server unchanged.

use std::path::Path;

use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use axum::routing::get_service;
use tower_http::services::{ServeDir, ServeFile};

use crate::{AppState, ConfigError, api};

/// The client-side routes upstream answers with the app's page.
const PAGES: [&str; 7] = [
    "/",
    "/login",
    "/settings",
    "/verification",
    "/collections",
    "/collections/{collection_id}",
    "/pipeline/{conversation_id}",
];

/// The app's routes, served from a Vite build (`index.html`, `assets/`, `vite.svg`).
///
/// Only `GET` and `HEAD` reach the files; a missing asset is the API's JSON 404. A directory
/// without `index.html` is refused at start-up rather than answering every page with a 404.
pub fn routes(dir: &Path) -> Result<Router<AppState>, ConfigError> {
    let index = dir.join("index.html");
    if !index.is_file() {
        return Err(ConfigError::Invalid(
            "WEBUI_STATIC_DIR",
            format!(
                "{} holds no index.html: build the web app into it",
                dir.display()
            ),
        ));
    }
    let assets = ServeDir::new(dir.join("assets"))
        .append_index_html_on_directories(false)
        .fallback(api::not_found.into_service());
    let page = get_service(ServeFile::new(index));
    let router = PAGES
        .iter()
        .fold(Router::new(), |router, path| {
            router.route(path, page.clone())
        })
        .route(
            "/vite.svg",
            get_service(ServeFile::new(dir.join("vite.svg"))),
        )
        .nest_service("/assets", assets);
    Ok(router)
}
