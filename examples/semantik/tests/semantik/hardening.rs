//! Regression tests for the security review of the landed code (hardening issue), over HTTP
//! against the running Semantik example. Each test is named after the defect it pins down and
//! failed on the code before its fix.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use super::{Backend, Server, jwt_claims, start, start_with};

const JWT_SECRET: &str = "hardening-test-secret-of-at-least-32-bytes";

/// An access token the server accepts, signed with its secret, with claims of the test's
/// choosing: a stand-in for a token stolen at a given age.
fn forged_access_token(
    user_id: &Value,
    iat_ago: i64,
    exp_in: i64,
    auth_time_ago: Option<i64>,
) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": "semantik", "aud": "semantik-api", "sub": user_id.to_string(),
        "iat": now - iat_ago, "exp": now + exp_in,
        "jti": format!("forged-{now}-{iat_ago}"), "token_use": "access",
    });
    if let Some(ago) = auth_time_ago {
        claims["auth_time"] = json!(now - ago);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some(portcullis::ACCESS_TOKEN_TYP.to_owned());
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn start_signing_with_known_secret(
    backend: Backend,
    extra: &[(&'static str, &str)],
) -> Server {
    let mut env = vec![("JWT_SECRET", JWT_SECRET)];
    env.extend_from_slice(extra);
    start_with(backend, &env).await
}

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
        (
            "/api/v2/api-keys",
            Some(access.as_str()),
            json!({"name": nul}),
        ),
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
    let keys = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(keys.body["total"], 0, "{}", keys.body);
    assert_eq!(
        server.get("/api/auth/me", Some(&access)).await.status,
        StatusCode::OK
    );
}

on_every_backend!(
    a_forwarded_header_written_by_the_client_does_not_reset_the_login_limit,
    text_the_store_refuses_is_a_client_error_in_every_field,
    failed_authentications_are_limited_per_address_before_authentication,
    a_websocket_closes_with_1008_when_the_token_that_opened_it_ends,
    a_read_only_api_key_cannot_log_out_or_open_the_websocket,
    a_stolen_access_token_cannot_mint_an_api_key_without_a_recent_sign_in,
    ending_every_credential_can_include_the_api_keys,
    the_first_registrant_rule_can_be_turned_off,
);

/// Opens `/ws/operations` with `token` in the query and reads the greeting.
async fn open_socket(
    server: &Server,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/ws/operations?token={token}",
        server.base.replace("http://", "ws://")
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    let hello = socket.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("connected"), "{hello:?}");
    socket
}

/// Waits for the server to close `socket`; returns the close code and how long it took.
async fn closed_by_server(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (u16, Duration) {
    let started = Instant::now();
    let closing = async {
        loop {
            match socket.next().await {
                Some(Ok(tungstenite::Message::Close(frame))) => {
                    return frame.map(|frame| u16::from(frame.code));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("socket failed instead of closing: {error}"),
                None => return None,
            }
        }
    };
    let code = tokio::time::timeout(Duration::from_secs(8), closing)
        .await
        .expect("the server did not close the socket within 8 s");
    (code.expect("a close frame with a code"), started.elapsed())
}

/// Item 14: a WebSocket stayed open after logout, suspension or expiry of the token that
/// opened it. It is re-checked every `WS_RECHECK_SECONDS` and closed with 1008.
async fn a_websocket_closes_with_1008_when_the_token_that_opened_it_ends(backend: Backend) {
    let server = start_signing_with_known_secret(backend, &[("WS_RECHECK_SECONDS", "1")]).await;
    let ada = server.register("ada").await;
    server.register("bob").await;

    // Logout everywhere.
    let (access, _) = server.login("ada").await;
    let mut socket = open_socket(&server, &access).await;
    socket
        .send(tungstenite::Message::Text("ping".into()))
        .await
        .unwrap();
    assert!(
        socket
            .next()
            .await
            .unwrap()
            .unwrap()
            .to_text()
            .unwrap()
            .contains("pong")
    );
    let (other, _) = server.login("ada").await;
    let logout = server
        .post("/api/auth/logout", Some(&other), json!({}))
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    let (code, after) = closed_by_server(&mut socket).await;
    assert_eq!(code, 1008);
    eprintln!("closed {after:?} after logout");

    // Expiry: a token 2 s from the end of its leeway.
    let expiring = forged_access_token(&ada["id"], 60, -28, Some(60));
    let mut socket = open_socket(&server, &expiring).await;
    assert_eq!(closed_by_server(&mut socket).await.0, 1008);

    // Suspension through the internal API.
    let bob = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "bob", "password": "correct horse"}),
        )
        .await;
    let bob_access = bob.body["access_token"].as_str().unwrap();
    let mut socket = open_socket(&server, bob_access).await;
    let me = server.get("/api/auth/me", Some(bob_access)).await;
    let suspend = server
        .internal(
            Method::PATCH,
            &format!("/users/{}", me.body["id"]),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(suspend.status, StatusCode::OK, "{}", suspend.body);
    assert_eq!(closed_by_server(&mut socket).await.0, 1008);
}

/// Item 15: a key limited to `collections:read` could end every session of its user and open
/// the operations socket. Both now need a sign-in's token.
async fn a_read_only_api_key_cannot_log_out_or_open_the_websocket(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let key = server
        .api_key(
            &access,
            json!({"name": "ro", "permissions": {"scopes": ["collections:read"]}}),
        )
        .await;
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    for body in [json!({}), json!({"refresh_token": refresh})] {
        let logout = server.post("/api/auth/logout", Some(&key), body).await;
        assert_eq!(logout.status, StatusCode::FORBIDDEN, "{}", logout.body);
    }
    let refreshed = server
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(
        refreshed.status,
        StatusCode::OK,
        "the session survived: {}",
        refreshed.body
    );

    let url = format!("{}/ws/operations", server.base.replace("http://", "ws://"));
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101, "refusals are close codes");
    let (code, _) = closed_by_server(&mut socket).await;
    assert_eq!(code, 1008);
}

/// Item 16: a stolen access token could mint an unrestricted API key valid for ten years.
/// Creating a key now needs a sign-in within `API_KEY_SIGN_IN_MAX_AGE_MINUTES` (15): the sign-in
/// time rides in the token (`auth_time`) and survives refreshes, so refreshing does not make an
/// old sign-in fresh.
async fn a_stolen_access_token_cannot_mint_an_api_key_without_a_recent_sign_in(backend: Backend) {
    let server = start_signing_with_known_secret(backend, &[]).await;
    let ada = server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let signed_in = jwt_claims(&access)["auth_time"]
        .as_i64()
        .expect("auth_time claim");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - signed_in).abs() <= 5, "{signed_in} vs {now}");
    let refreshed = server
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    let refreshed = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(refreshed)["auth_time"].as_i64(), Some(signed_in));
    // RFC 8176: how the user signed in rides along too (a password; no second factor here).
    assert_eq!(jwt_claims(&access)["amr"], json!(["pwd"]));
    assert_eq!(jwt_claims(refreshed)["amr"], json!(["pwd"]));
    assert_eq!(
        server
            .api_key(refreshed, json!({"name": "fresh"}))
            .await
            .status,
        StatusCode::CREATED
    );

    // Issued by a refresh an hour after a sign-in 16 minutes ago: valid, but not fresh.
    let stale = forged_access_token(&ada["id"], 0, 3600, Some(16 * 60));
    let no_sign_in = forged_access_token(&ada["id"], 0, 3600, None);
    for token in [&stale, &no_sign_in] {
        assert_eq!(
            server.get("/api/auth/me", Some(token)).await.status,
            StatusCode::OK
        );
        let minted = server
            .api_key(token, json!({"name": "backdoor", "expires_in_days": 3650}))
            .await;
        assert_eq!(minted.status, StatusCode::UNAUTHORIZED, "{}", minted.body);
        let challenge = minted.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_user_authentication\"")
                && challenge.contains("max_age=900"),
            "{challenge}"
        );
        assert!(
            minted.detail().contains("sign in again"),
            "{}",
            minted.detail()
        );
    }
    let keys = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(keys.body["total"], 1, "{}", keys.body);
}

/// Item 16: "end every credential" must be able to reach the API keys, which outlive every
/// session: `{"revoke_api_keys": true}` on the logout of every session.
async fn ending_every_credential_can_include_the_api_keys(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let key = server.api_key(&access, json!({"name": "script"})).await;
    let key = key.body["api_key"].as_str().unwrap().to_owned();

    let (second, _) = server.login("ada").await;
    let plain = server
        .post("/api/auth/logout", Some(&second), json!({}))
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(
        server.get("/api/auth/me", Some(&key)).await.status,
        StatusCode::OK,
        "a plain logout leaves keys"
    );

    let (third, refresh) = server.login("ada").await;
    let mixed = server
        .post(
            "/api/auth/logout",
            Some(&third),
            json!({"refresh_token": refresh, "revoke_api_keys": true}),
        )
        .await;
    assert_eq!(
        mixed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        mixed.body
    );
    let everything = server
        .post(
            "/api/auth/logout",
            Some(&third),
            json!({"revoke_api_keys": true}),
        )
        .await;
    assert_eq!(everything.status, StatusCode::OK, "{}", everything.body);
    assert_eq!(
        server.get("/api/auth/me", Some(&key)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/api/auth/me", Some(&third)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Item 18: with `FIRST_USER_IS_SUPERUSER=false` the first registrant is an ordinary user.
async fn the_first_registrant_rule_can_be_turned_off(backend: Backend) {
    let server = start_with(backend, &[("FIRST_USER_IS_SUPERUSER", "false")]).await;
    let first = server.register("mallory").await;
    let shown = server
        .internal(Method::GET, &format!("/users/{}", first["id"]), None)
        .await;
    assert_eq!(shown.body["is_superuser"], false, "{}", shown.body);
}

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
