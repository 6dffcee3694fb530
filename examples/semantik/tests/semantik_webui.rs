//! The web app beside the API (`WEBUI_STATIC_DIR`), as upstream serves Semantik's React build:
//! the page on each client-side route, the bundle under `/assets`, the API's JSON for the rest.
//!
//! The app served is a small one of this repository's (`tests/webui/app`): laid out like a Vite
//! build, with a client that makes Semantik's app's requests the way it makes them. In Chromium
//! (`tests/webui/web_app.cjs`) it shows what only a browser checks: same-origin use of the API
//! from the served page, and the operations WebSocket with its `access_token.<token>`
//! subprotocol echoed (a browser drops a socket whose subprotocol is not).

#[path = "../../../tests/common/mod.rs"]
mod common;

use semantik as app;

use std::collections::HashMap;
use std::path::Path;

use reqwest::Method;

use tempfile::TempDir;
use tokio::net::TcpListener;

/// Every check the script makes; fewer lines mean it stopped early.
const CHECKS: usize = 17;

/// The test app, relative to the package root (the working directory of `cargo test`).
const WEB_APP: &str = "tests/webui/app";

/// The example serving `web_app`, listening on loopback: its origin, and the data directory
/// that must outlive it.
async fn serving(web_app: &Path) -> Result<(String, TempDir), app::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("WEBUI_STATIC_DIR", web_app.display().to_string()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let (router, _) = app::build(&config).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, router));
    Ok((origin, dir))
}

/// Status, content type and body of one request.
async fn fetch(method: reqwest::Method, url: &str) -> (reqwest::StatusCode, String, String) {
    let response = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn every_client_side_route_serves_the_page_and_the_rest_stays_the_apis() {
    let (origin, _data) = serving(Path::new(WEB_APP)).await.unwrap();
    let page = std::fs::read_to_string(Path::new(WEB_APP).join("index.html")).unwrap();
    for path in [
        "/",
        "/login",
        "/settings",
        "/verification",
        "/collections",
        "/collections/c1",
        "/pipeline/p1",
    ] {
        let (status, kind, body) = fetch(Method::GET, &format!("{origin}{path}")).await;
        assert_eq!(
            (status, kind.as_str()),
            (reqwest::StatusCode::OK, "text/html"),
            "{path}"
        );
        assert_eq!(body, page, "{path}");
    }
    let (status, kind, body) = fetch(Method::GET, &format!("{origin}/assets/client.js")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(kind.contains("javascript"), "{kind}");
    assert!(body.contains("window.semantik"));
    let (status, kind, _) = fetch(Method::GET, &format!("{origin}/vite.svg")).await;
    assert_eq!(
        (status, kind.as_str()),
        (reqwest::StatusCode::OK, "image/svg+xml")
    );

    // Outside the app's files: the API's JSON answers, never a file from elsewhere.
    for path in ["/assets/missing.js", "/assets/", "/nowhere"] {
        let (status, kind, body) = fetch(Method::GET, &format!("{origin}{path}")).await;
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(kind, "application/json", "{path}");
        assert!(body.contains("\"detail\""), "{path}: {body}");
    }
    let (status, kind, body) = fetch(Method::POST, &format!("{origin}/login")).await;
    assert_eq!(status, reqwest::StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(kind, "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_web_app_signs_up_in_and_out_manages_api_keys_and_opens_the_operations_feed() {
    let Some((chromium, playwright)) = common::browser() else {
        return;
    };
    let (origin, _data) = serving(Path::new(WEB_APP)).await.unwrap();
    let script = "tests/webui/web_app.cjs";
    common::browser_checks(script, &[&origin, &chromium], &playwright, CHECKS).await;
}

#[tokio::test]
async fn a_web_app_directory_without_its_page_is_refused_at_start_up() {
    let empty = tempfile::tempdir().unwrap();
    let error = serving(empty.path()).await.expect_err("refused");
    assert!(
        error.to_string().contains("WEBUI_STATIC_DIR") && error.to_string().contains("index.html"),
        "{error}"
    );
}
