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
