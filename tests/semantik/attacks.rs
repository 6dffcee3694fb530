//! The attack battery against the running Semantik example: what a hostile client tries after
//! the documented paths work. Token forgery (`alg: none`, algorithm confusion, `kid`
//! injection, expiry) is covered at the library level in `tests/jwt.rs`; refresh reuse,
//! revocation and deactivation in the main suite.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use portcullis::token::TokenFormat;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Backend, Server, common, start_with};

/// The proxy every test request claims to come through, so that each simulated client can
/// have an address of its own (`X-Forwarded-For`) and the per-address limits stay out of the
/// way of what is measured.
const TRUSTED_PROXY: [(&str, &str); 1] = [("TRUSTED_PROXIES", "127.0.0.1")];

fn client_address(n: usize) -> String {
    format!("198.51.{}.{}", n / 250, n % 250 + 1)
}

impl Server {
    async fn login_as(&self, username: &str, password: &str, from: &str) -> (StatusCode, Duration) {
        let request = self
            .request(Method::POST, "/api/auth/login")
            .header("x-forwarded-for", from)
            .json(&json!({"username": username, "password": password}));
        let started = Instant::now();
        let reply = self.send(request).await;
        (reply.status, started.elapsed())
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

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// OWASP ASVS 5.0 V6.3.8 (no user enumeration through timing): a login for an unknown user
/// takes as long as one with a wrong password, because the unknown user still costs one
/// Argon2id verification. Medians over interleaved samples, each from its own address and
/// account so that neither limiter answers early.
async fn asvs_6_3_8_unknown_user_and_wrong_password_take_the_same_time(backend: Backend) {
    const SAMPLES: usize = 11;
    let server = start_with(backend, &TRUSTED_PROXY).await;
    for n in 0..SAMPLES {
        let status = server
            .register_from(&format!("user{n}"), &client_address(n))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // The first unknown-user login builds the dummy hash; not a sample.
    server
        .login_as("nobody", "wrong horse", &client_address(SAMPLES))
        .await;
    let (mut wrong_password, mut unknown_user) = (Vec::new(), Vec::new());
    for n in 0..SAMPLES {
        let from = client_address(100 + n);
        let known = format!("user{n}");
        let unknown = format!("nobody{n}");
        // Alternate which goes first, so that neither always meets a warm allocator.
        let order = if n % 2 == 0 {
            [(&known, &mut wrong_password), (&unknown, &mut unknown_user)]
        } else {
            [(&unknown, &mut unknown_user), (&known, &mut wrong_password)]
        };
        for (username, samples) in order {
            let (status, elapsed) = server.login_as(username, "wrong horse", &from).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            samples.push(elapsed);
        }
    }
    let (wrong, unknown) = (median(wrong_password), median(unknown_user));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    eprintln!("login medians: unknown user {unknown:?}, wrong password {wrong:?} ({ratio:.2})");
    assert!(
        (0.75..=1.33).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}: ratio {ratio:.2}"
    );
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
        let (status, _) = server.login_as(confusable, "correct horse", &from).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{confusable:?} logs in");
    }
    // Every store compares usernames ignoring ASCII case: `ADMIN` is `admin`, taken at
    // registration and the same account at login.
    assert_eq!(
        server.register_from("ADMIN", &client_address(20)).await,
        StatusCode::CONFLICT
    );
    let (login, _) = server
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
        .post("/api/keys", Some(&access), json!({"name": hostile}))
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

    let listed = server.get("/api/keys", Some(&access)).await;
    assert_eq!(listed.body[0]["name"], hostile);
    let me = server.get("/api/auth/me", Some(&access)).await;
    assert_eq!(me.body["username"], "mallory");
    // Registration still works: the users table is there.
    assert_eq!(
        server.register_from("afterwards", &client_address(2)).await,
        StatusCode::OK
    );
}

/// 10 000 invalid credentials, 64 at a time: garbage, well-formed API keys that were never
/// issued, and JWTs with forged signatures. Every answer is 401 with `WWW-Authenticate`, none
/// is a 5xx, and the server's memory stays bounded (the negative cache has a capacity).
async fn ten_thousand_concurrent_invalid_tokens_get_401_with_bounded_memory(backend: Backend) {
    const REQUESTS: usize = 10_000;
    const CONCURRENCY: usize = 64;
    let server = start_with(backend, &TRUSTED_PROXY).await;
    let format = TokenFormat::new("smtk_").unwrap();
    let forged_header = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9";
    let tokens: Vec<String> = (0..REQUESTS)
        .map(|n| match n % 3 {
            0 => format!("garbage-{n}"),
            1 => format.generate().unwrap().secret().expose().to_owned(),
            _ => format!("{forged_header}.eyJzdWIiOiJ7bn0ifQ.c2lnbmF0dXJl{n:08}"),
        })
        .collect();
    let rss_before = resident_bytes();
    let started = Instant::now();
    let server = &server;
    let statuses: Vec<(StatusCode, bool)> = futures_util::stream::iter(tokens.iter().enumerate())
        .map(|(n, token)| async move {
            let request = server
                .request(Method::GET, "/api/auth/me")
                .header("x-forwarded-for", client_address(n))
                .bearer_auth(token);
            let reply = server.send(request).await;
            (reply.status, reply.headers.contains_key("www-authenticate"))
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let rss_after = resident_bytes();
    for (status, challenged) in &statuses {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert!(challenged, "RFC 6750 §3: a 401 carries WWW-Authenticate");
    }
    let grown = rss_after.saturating_sub(rss_before);
    assert!(
        grown < 64 << 20,
        "resident memory grew by {} MiB over {REQUESTS} invalid tokens",
        grown >> 20
    );
    eprintln!(
        "{REQUESTS} invalid tokens in {elapsed:?}; resident memory grew by {} KiB",
        grown >> 10
    );
}

/// This process's resident set (the server runs in it), from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm's second field");
    pages * 4096
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

on_every_backend!(
    asvs_6_3_8_unknown_user_and_wrong_password_take_the_same_time,
    confusable_usernames_are_refused_consistently,
    sql_metacharacters_in_every_field_are_stored_as_data,
    ten_thousand_concurrent_invalid_tokens_get_401_with_bounded_memory,
    oversized_headers_bodies_and_tokens_are_refused_early,
);
