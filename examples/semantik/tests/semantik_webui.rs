//! Semantik's own web app against the example: its React build (upstream `apps/webui-react`,
//! built by `scripts/test.sh` at a pinned commit) served from `WEBUI_STATIC_DIR` as upstream
//! serves it, driven in Chromium by Playwright (`tests/webui/semantik_webui.cjs`).
//!
//! What only the real client shows: that the example answers the app's own requests as it
//! reads them — sign-up and its automatic sign-in, `/api/auth/me`, sign-out with the refresh
//! token in the body, a reload with the stored tokens, the API-keys page (list, create, soft
//! revoke) and the operations WebSocket with its `access_token.<token>` subprotocol echoed.

#[path = "../../../tests/common/mod.rs"]
mod common;

use semantik as app;

use std::collections::HashMap;

use tokio::net::TcpListener;

/// Every check the script makes; fewer lines mean it stopped early.
const CHECKS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantiks_web_app_signs_up_in_and_out_manages_api_keys_and_opens_the_operations_feed() {
    let Some((chromium, playwright)) = common::browser() else {
        return;
    };
    let Some(webui) = common::semantik_webui() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("WEBUI_STATIC_DIR", webui),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let (router, _) = app::build(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, router));

    // Relative to the package root, the working directory of `cargo test`.
    let script = "tests/webui/semantik_webui.cjs";
    common::browser_checks(script, &[&base, &chromium], &playwright, CHECKS).await;
}

#[tokio::test]
async fn a_web_app_directory_without_its_page_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("WEBUI_STATIC_DIR", empty.path().display().to_string()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let error = app::build(&config).await.err().expect("refused");
    assert!(
        error.to_string().contains("WEBUI_STATIC_DIR") && error.to_string().contains("index.html"),
        "{error}"
    );
}
