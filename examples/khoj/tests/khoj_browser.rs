//! The Khoj example in Chromium, as a person signs in: `tests/browser/login.cjs` types the
//! address and the code by keyboard, reads the mail from a real SMTP sink, follows the link,
//! makes an API key on the settings page and signs out. Screenshots of the login, code and
//! settings pages are kept in `$CARGO_TARGET_TMPDIR/khoj-screenshots`.

#[path = "../../../tests/common/mod.rs"]
mod common;

use khoj as app;

use std::collections::HashMap;

use tokio::net::TcpListener;

/// Every check the script makes; fewer lines mean it stopped early.
const CHECKS: usize = 17;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_by_mail_makes_a_key_and_signs_out_in_chromium() {
    let Some((chromium, playwright)) = common::browser() else {
        return;
    };
    let Some((sink, maildir)) = common::smtp_sink() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Bound first, so that the links in mail name the address the browser opens.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("SMTP_URL", format!("smtp://{sink}")),
        ("KHOJ_DOMAIN", address.to_string()),
        ("KHOJ_NO_HTTPS", "true".to_owned()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let origin = config.public_url.clone().unwrap();
    let (router, _) = app::build(&config, &origin).await.unwrap();
    tokio::spawn(app::serve(listener, router));
    let artifacts = concat!(env!("CARGO_TARGET_TMPDIR"), "/khoj-screenshots");
    let maildir = maildir.display().to_string();
    let args = [
        origin.as_str(),
        chromium.as_str(),
        maildir.as_str(),
        artifacts,
    ];
    common::browser_checks("tests/browser/login.cjs", &args, &playwright, CHECKS).await;
    for shot in ["login.png", "code.png", "settings.png", "login-390.png"] {
        let size = std::fs::metadata(format!("{artifacts}/{shot}")).map_or(0, |m| m.len());
        assert!(size > 1000, "{shot} was written ({size} bytes)");
    }
}

/// Every check `tests/browser/oidc.cjs` makes.
const OIDC_CHECKS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_a_real_oidc_provider_and_forged_callbacks_are_refused() {
    let Some((chromium, playwright)) = common::browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let redirect = format!("http://{address}/auth/redirect");
    let secret = "khoj-client-secret-0123456789";
    let Some(provider) = common::oidc_provider("khoj-web", secret, &redirect).await else {
        return;
    };
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("KHOJ_DOMAIN", address.to_string()),
        ("KHOJ_NO_HTTPS", "true".to_owned()),
        ("OIDC_ISSUER", provider.issuer.clone()),
        ("OIDC_CLIENT_ID", "khoj-web".to_owned()),
        ("OIDC_CLIENT_SECRET", secret.to_owned()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let origin = config.public_url.clone().unwrap();
    let (router, _) = app::build(&config, &origin).await.unwrap();
    tokio::spawn(app::serve(listener, router));
    let metadata: serde_json::Value = reqwest::get(format!("{origin}/auth/oauth/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata,
        serde_json::json!({ "google": { "client_id": "khoj-web", "redirect_uri": "/auth/redirect" } })
    );
    let args = [origin.as_str(), provider.issuer.as_str(), chromium.as_str()];
    common::browser_checks("tests/browser/oidc.cjs", &args, &playwright, OIDC_CHECKS).await;
}
