//! Regression tests for the security review of the landed code (hardening issue), over HTTP
//! against the running Semantik example. Each test is named after the defect it pins down and
//! failed on the code before its fix.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Backend, start, start_with};

/// Item 1 over HTTP: behind a trusted proxy that appends to `X-Forwarded-For`, a client that
/// writes its own `Forwarded` header for every attempt still has one login budget.
async fn a_forwarded_header_written_by_the_client_does_not_reset_the_login_limit(backend: Backend) {
    let server = start_with(backend, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    server.register("ada").await;
    let mut statuses = Vec::new();
    for n in 0..11 {
        let request = server
            .request(Method::POST, "/api/auth/login")
            .header("forwarded", format!("for=198.51.100.{n}"))
            .header("x-forwarded-for", "203.0.113.50")
            .json(&json!({"username": "ada", "password": "correct horse"}));
        statuses.push(server.send(request).await.status);
    }
    assert_eq!(statuses[..10], [StatusCode::OK; 10]);
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

/// Item 8: text a store refuses (U+0000: PostgreSQL cannot hold it) in a login username was a
/// 503 and an error in the log; in any other field that reaches the store, the same. Every
/// such request is now a 4xx, a login one answered as for a wrong password.
async fn text_the_store_refuses_is_a_client_error_in_every_field(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let nul = "a\u{0}b";

    let login = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": format!("ada{nul}"), "password": "correct horse"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    assert_eq!(login.detail(), "Incorrect username or password");

    let registrations = [
        json!({"username": format!("bob{nul}"), "email": "bob@example.com", "password": "correct horse"}),
        json!({"username": "bob", "email": format!("bob{nul}@example.com"), "password": "correct horse"}),
        json!({"username": "bob", "email": "bob@example.com", "password": "correct horse", "full_name": nul}),
    ];
    for body in registrations {
        let reply = server.post("/api/auth/register", None, body.clone()).await;
        assert!(
            reply.status.is_client_error(),
            "{body}: {} {}",
            reply.status,
            reply.body
        );
        reply.detail();
    }
    let bodies = [
        ("/api/keys", Some(access.as_str()), json!({"name": nul})),
        (
            "/api/collections",
            Some(access.as_str()),
            json!({"name": nul}),
        ),
        (
            "/api/collections",
            Some(access.as_str()),
            json!({"name": "docs", "description": nul}),
        ),
        (
            "/api/auth/refresh",
            None,
            json!({"refresh_token": format!("{refresh}{nul}")}),
        ),
        (
            "/api/auth/logout",
            Some(access.as_str()),
            json!({"refresh_token": nul}),
        ),
    ];
    for (path, token, body) in bodies {
        let reply = server.post(path, token, body.clone()).await;
        assert!(
            reply.status.is_client_error() || reply.status.is_success(),
            "{path} {body}: {} {}",
            reply.status,
            reply.body
        );
    }
    // A password is hashed, never stored: a NUL in it is just another character.
    let odd_password = json!({"username": "carol", "email": "carol@example.com", "password": format!("correct horse{nul}")});
    let registered = server.post("/api/auth/register", None, odd_password).await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    // Nothing was stored with the NUL, and the account still works.
    let keys = server.get("/api/keys", Some(&access)).await;
    assert_eq!(keys.body.as_array().map(Vec::len), Some(0), "{}", keys.body);
    assert_eq!(
        server.get("/api/auth/me", Some(&access)).await.status,
        StatusCode::OK
    );
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(server) = super::super::common::postgres_url() else { return };
                    super::$test(super::Backend::Postgres(server)).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_forwarded_header_written_by_the_client_does_not_reset_the_login_limit,
    text_the_store_refuses_is_a_client_error_in_every_field,
    failed_authentications_are_limited_per_address_before_authentication,
);

/// Item 5: the per-user API limit sits inside authentication, so a credential that fails to
/// authenticate was never limited: guesses at the internal key, and random checksum-valid API
/// keys (each one a store query), were unlimited. Failed authentications are now counted per
/// client address in front of authentication.
async fn failed_authentications_are_limited_per_address_before_authentication(backend: Backend) {
    let server = start_with(backend, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let format = portcullis::token::TokenFormat::new("smtk_").unwrap();
    let mut statuses = Vec::new();
    for n in 0..100 {
        let request = if n % 2 == 0 {
            server
                .request(Method::GET, "/api/internal/users/1")
                .header("x-internal-api-key", format!("guess-{n:0>40}"))
        } else {
            let random = format.generate().unwrap().into_secret().into_exposed();
            server
                .request(Method::GET, "/api/auth/me")
                .bearer_auth(random)
        };
        let request = request.header("x-forwarded-for", "203.0.113.66");
        statuses.push(server.send(request).await.status);
    }
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        refused >= 50,
        "{refused} of 100 bad credentials refused: {statuses:?}"
    );
    assert!(
        statuses[..30]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    // Another client is not affected.
    let other = server
        .request(Method::GET, "/api/auth/me")
        .bearer_auth(format.generate().unwrap().into_secret().into_exposed())
        .header("x-forwarded-for", "203.0.113.99");
    assert_eq!(server.send(other).await.status, StatusCode::UNAUTHORIZED);
}

/// Item 5: an internal key shorter than 32 bytes is refused at start-up.
#[test]
fn an_internal_api_key_shorter_than_32_bytes_is_refused() {
    assert!(portcullis::source::InternalKey::new("svc", &"k".repeat(31)).is_err());
    assert!(portcullis::source::InternalKey::new("svc", &"k".repeat(32)).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let env = |name: &str| match name {
        "DATA_DIR" => Some(data_dir.clone()),
        "INTERNAL_API_KEY" => Some("only-twenty-bytes-ok".to_owned()),
        _ => None,
    };
    assert!(super::app::Config::from_env(env).is_err());
}
