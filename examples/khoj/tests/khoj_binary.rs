//! The Khoj server as `cargo run -p khoj` starts it, with nothing configured: a newcomer
//! asks for a sign-in link, finds it in the log (no SMTP server), and follows it.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::example;

#[tokio::test]
async fn with_nothing_configured_the_logged_link_signs_a_person_in() {
    let data = tempfile::tempdir().unwrap();
    let mut command = example::command(env!("CARGO_BIN_EXE_khoj"), data.path());
    // The development mail is logged at info; the rest of the log stays at warn.
    command.env("RUST_LOG", "warn,portcullis::mail=info");
    let server = example::start(command);
    let warned = server.wait_for_output("SMTP_URL is not set", std::time::Duration::from_secs(10));
    assert!(
        warned.is_some(),
        "the missing mail relay is said, after the address line"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let asked = client
        .post(format!("{}/auth/magic", server.base))
        .json(&serde_json::json!({ "email": "newcomer@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let line = server
        .wait_for_output("Sign in: ", std::time::Duration::from_secs(10))
        .expect("the sign-in link in the log");
    let link = line.split("Sign in: ").nth(1).unwrap().trim();
    assert!(
        link.starts_with(&format!("{}/auth/magic?code=", server.base)),
        "{link:?}: the link names the address the server listens on, in plain text"
    );
    let followed = client.get(link).send().await.unwrap();
    assert_eq!(followed.status(), 307);
    let cookie = followed.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let home = client
        .get(format!("{}/", server.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("newcomer@example.com"));
}
