//! The attack battery against the running Semantik example: what a hostile client tries after
//! the documented paths work. Token forgery (`alg: none`, algorithm confusion, `kid`
//! injection, expiry) is covered at the library level in `tests/jwt.rs`; refresh reuse,
//! revocation and deactivation in the main suite; the measured attacks (login timing, memory
//! under a flood of invalid tokens) in `tests/semantik_measured.rs`, where nothing else runs.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::common::client_address;
use super::{Backend, Server, start_with};

/// The proxy every test request claims to come through, so that each simulated client can
/// have an address of its own (`X-Forwarded-For`) and the per-address limits stay out of the
/// way of what is tested.
const TRUSTED_PROXY: [(&str, &str); 1] = [("TRUSTED_PROXIES", "127.0.0.1")];

impl Server {
    async fn login_as(&self, username: &str, password: &str, from: &str) -> StatusCode {
        let request = self
            .request(Method::POST, "/api/auth/login")
            .header("x-forwarded-for", from)
            .json(&json!({"username": username, "password": password}));
        self.send(request).await.status
    }

    async fn register_from(&self, username: &str, from: &str) -> StatusCode {
        let request = self
            .request(Method::POST, "/api/auth/register")
            .header("x-forwarded-for", from)
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": "correct horse",
            }));
        self.send(request).await.status
    }
}

/// Usernames are ASCII, so a confusable (`ａｄｍｉｎ`, Cyrillic `аdmin`, a zero-width space,
/// a dotless i) can neither register beside `admin` nor log in as it, and a case variant is
/// the same account, never a second one.
async fn confusable_usernames_are_refused_consistently(backend: Backend) {
    let server = start_with(backend, &TRUSTED_PROXY).await;
    assert_eq!(
        server.register_from("admin", &client_address(1)).await,
        StatusCode::OK
    );
    for (n, confusable) in [
        "ａｄｍｉｎ",
        "\u{0430}dmin",
        "admin\u{200b}",
        "adm\u{0131}n",
    ]
    .into_iter()
    .enumerate()
    {
        let from = client_address(10 + n);
        assert_eq!(
            server.register_from(confusable, &from).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{confusable:?} registers"
        );
        let status = server.login_as(confusable, "correct horse", &from).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{confusable:?} logs in");
    }
    // Every store compares usernames ignoring ASCII case: `ADMIN` is `admin`, taken at
    // registration and the same account at login.
    assert_eq!(
        server.register_from("ADMIN", &client_address(20)).await,
        StatusCode::CONFLICT
    );
    let login = server
        .login_as("ADMIN", "correct horse", &client_address(21))
        .await;
    assert_eq!(login, StatusCode::OK);
}

/// SQL metacharacters in every text field are data: stored and returned byte for byte, and
/// the database is intact afterwards.
async fn sql_metacharacters_in_every_field_are_stored_as_data(backend: Backend) {
    let server = start_with(backend, &TRUSTED_PROXY).await;
    let hostile = "x'); DROP TABLE users; -- \" ` \\ % _ ;";
    let reply = server
        .post(
            "/api/auth/register",
            None,
            json!({
                "username": "mallory",
                "email": "o'brien+\"x\"@example.com",
                "password": hostile,
                "full_name": hostile,
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["full_name"], hostile);
    assert_eq!(reply.body["email"], "o'brien+\"x\"@example.com");

    // A metacharacter username is refused by validation, not by a database error.
    let reply = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "' OR '1'='1", "password": "' OR '1'='1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reply = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "mallory", "password": hostile}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let access = reply.body["access_token"].as_str().unwrap().to_owned();

    let reply = server
        .post("/api/v2/api-keys", Some(&access), json!({"name": hostile}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["name"], hostile);
    let reply = server
        .post(
            "/api/collections",
            Some(&access),
            json!({"name": hostile, "description": hostile}),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    assert_eq!(reply.body["name"], hostile);
    assert_eq!(reply.body["description"], hostile);

    let listed = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(listed.body["api_keys"][0]["name"], hostile);
    let me = server.get("/api/auth/me", Some(&access)).await;
    assert_eq!(me.body["username"], "mallory");
    // Registration still works: the users table is there.
    assert_eq!(
        server.register_from("afterwards", &client_address(2)).await,
        StatusCode::OK
    );
}

/// Oversized headers, bodies and tokens are refused with a 4xx before any work is done.
async fn oversized_headers_bodies_and_tokens_are_refused_early(backend: Backend) {
    let server = start_with(backend, &TRUSTED_PROXY).await;
    let huge_token = "a".repeat(64 * 1024);
    let reply = server.get("/api/auth/me", Some(&huge_token)).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    let huge_jwt = format!(
        "{}.{}.{}",
        "a".repeat(100),
        "b".repeat(20_000),
        "c".repeat(43)
    );
    let reply = server.get("/api/auth/me", Some(&huge_jwt)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // An 8 MiB body is refused from its Content-Length alone: the answer comes while the body
    // is still unsent (over a raw connection, since an HTTP client would insist on sending it).
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        8 << 20
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 512];
        let read = stream.read(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer[..read]).into_owned()
    })
    .await
    .expect("the server answers without waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// RFC 8725 over HTTP: tokens an attacker can make from a real one are refused with 401 and
/// an `invalid_token` challenge, the real one still passes. (`tests/jwt.rs` covers each
/// rule at the library level, with every algorithm.)
async fn rfc8725_forged_tokens_are_refused_over_http(backend: Backend) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let server = start_with(backend, &TRUSTED_PROXY).await;
    server.register("ada").await;
    server.register("eve").await;
    let (access, _) = server.login("ada").await;
    let secret = std::fs::read(server.dir.path().join(".jwt_secret")).unwrap();
    let secret = String::from_utf8(secret).unwrap();
    let claims = super::jwt_claims(&access);
    let header = json!({"alg": "HS256", "typ": "at+jwt"});
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let sign = |header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]| {
        let input = format!("{}.{}", encode(header), encode(claims));
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(key),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{signature}")
    };
    let with = |key: &str, value: serde_json::Value| {
        let mut changed = claims.clone();
        changed[key] = value;
        changed
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let right = secret.trim().as_bytes();
    let (_, signature) = access.rsplit_once('.').unwrap();
    let forgeries = [
        (
            "alg none (§3.1)",
            format!(
                "{}.{}.",
                encode(&json!({"alg": "none", "typ": "at+jwt"})),
                encode(&claims)
            ),
        ),
        (
            "signed with another secret",
            sign(&header, &claims, b"not-the-server-secret-but-32-bytes!!"),
        ),
        (
            "another user's id under the real signature",
            format!(
                "{}.{}.{signature}",
                encode(&header),
                encode(&with("sub", json!("2")))
            ),
        ),
        (
            "expired an hour ago",
            sign(&header, &with("exp", json!(now - 3600)), right),
        ),
        (
            "for another audience (§3.9)",
            sign(&header, &with("aud", json!("another-service")), right),
        ),
        (
            "a refresh token's use (§3.11)",
            sign(&header, &with("token_use", json!("refresh")), right),
        ),
        (
            "without the access-token type (§3.11)",
            sign(&json!({"alg": "HS256"}), &claims, right),
        ),
        (
            "kid injection",
            sign(
                &json!({"alg": "HS256", "typ": "at+jwt", "kid": "../../dev/null' OR '1'='1"}),
                &claims,
                right,
            ),
        ),
    ];
    for (what, token) in forgeries {
        let reply = server.get("/api/auth/me", Some(&token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }
    // Controls: the real token passes, and so does its claims set re-signed with the secret
    // the forgeries used, so each refusal above is for the reason its name gives.
    for token in [access.clone(), sign(&header, &claims, right)] {
        let reply = server.get("/api/auth/me", Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["username"], "ada");
    }
}

on_every_backend!(
    rfc8725_forged_tokens_are_refused_over_http,
    confusable_usernames_are_refused_consistently,
    sql_metacharacters_in_every_field_are_stored_as_data,
    oversized_headers_bodies_and_tokens_are_refused_early,
);
