//! Attacks judged by measurement, against the Semantik example as a process: login timing
//! (user enumeration) and memory under a flood of invalid credentials. They live in their own
//! test binary and take turns, so that no other test's work lands in their figures; cargo runs
//! test binaries one at a time.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::example::{self, Running};
use common::{PgSchema, client_address};
use futures_util::StreamExt as _;
use portcullis::token::TokenFormat;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

/// One measurement at a time.
static TURN: Mutex<()> = Mutex::const_new(());

/// The Semantik example on SQLite, and on PostgreSQL when there is one, behind a trusted
/// proxy so that each simulated client can have an address of its own (`X-Forwarded-For`)
/// and the per-address limits stay out of the way of what is measured.
///
/// Each comes with what it stores into, dropped after the server stops.
async fn servers() -> Vec<(&'static str, Running, tempfile::TempDir, Option<PgSchema>)> {
    let mut servers = Vec::new();
    let mut backends = vec![("sqlite", None)];
    if let Some(server) = common::postgres_url() {
        backends.push(("postgres", Some(PgSchema::create(&server).await)));
    }
    for (name, schema) in backends {
        let dir = tempfile::tempdir().unwrap();
        let mut command: Command = example::command(env!("CARGO_BIN_EXE_semantik"), dir.path());
        command.env("TRUSTED_PROXIES", "127.0.0.1");
        if let Some(schema) = &schema {
            command.env("DATABASE_URL", &schema.url);
        }
        servers.push((name, example::start(command), dir, schema));
    }
    servers
}

async fn post(
    client: &reqwest::Client,
    url: String,
    from: &str,
    body: serde_json::Value,
) -> StatusCode {
    let reply = client
        .post(url)
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    assert!(status.as_u16() < 500, "{status}");
    status
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// OWASP ASVS 5.0 V6.3.8 (no user enumeration through timing): a login for an unknown user
/// takes as long as one with a wrong password, because the unknown user still costs one
/// Argon2id verification. Medians over interleaved samples (which goes first alternates),
/// each from its own address and account so that neither limiter answers early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asvs_6_3_8_unknown_user_and_wrong_password_take_the_same_time() {
    const SAMPLES: usize = 21;
    let _turn = TURN.lock().await;
    let client = reqwest::Client::new();
    for (backend, server, _dir, _schema) in servers().await {
        let login = format!("{}/api/auth/login", server.base);
        let register = format!("{}/api/auth/register", server.base);
        for n in 0..SAMPLES {
            let user = format!("user{n}");
            let body = json!({"username": user, "email": format!("{user}@example.com"),
                              "password": "correct horse"});
            assert_eq!(
                post(&client, register.clone(), &client_address(n), body).await,
                StatusCode::OK
            );
        }
        // The first unknown-user login builds the dummy hash; not a sample.
        let wrong = json!({"username": "nobody", "password": "wrong horse"});
        post(&client, login.clone(), &client_address(SAMPLES), wrong).await;

        let (mut wrong_password, mut unknown_user) = (Vec::new(), Vec::new());
        for n in 0..SAMPLES {
            let from = client_address(100 + n);
            let known = (format!("user{n}"), &mut wrong_password);
            let unknown = (format!("nobody{n}"), &mut unknown_user);
            let order = if n % 2 == 0 {
                [known, unknown]
            } else {
                [unknown, known]
            };
            for (username, samples) in order {
                let body = json!({"username": username, "password": "wrong horse"});
                let started = Instant::now();
                let status = post(&client, login.clone(), &from, body).await;
                samples.push(started.elapsed());
                assert_eq!(status, StatusCode::UNAUTHORIZED);
            }
        }
        let (wrong, unknown) = (median(wrong_password), median(unknown_user));
        let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
        eprintln!("{backend}: login medians, unknown user {unknown:?}, wrong password {wrong:?}");
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{backend}: unknown user {unknown:?} vs wrong password {wrong:?}: ratio {ratio:.2}"
        );
    }
}

/// 10 000 invalid credentials, 64 at a time: garbage, well-formed API keys that were never
/// issued, and JWTs with forged signatures. Every answer is 401 with `WWW-Authenticate`
/// (RFC 6750 §3), none is a 5xx, and the server's resident memory stays bounded (the negative
/// cache has a capacity; nothing else keeps a refused credential).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_invalid_tokens_get_401_with_bounded_memory() {
    const REQUESTS: usize = 10_000;
    const CONCURRENCY: usize = 64;
    let _turn = TURN.lock().await;
    let format = TokenFormat::new("smtk_").unwrap();
    let forged_header = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9";
    let tokens: Vec<String> = (0..REQUESTS)
        .map(|n| match n % 3 {
            0 => format!("garbage-{n}"),
            1 => format.generate().unwrap().secret().expose().to_owned(),
            _ => format!("{forged_header}.eyJzdWIiOiIxIn0.c2lnbmF0dXJl{n:08}"),
        })
        .collect();
    let client = reqwest::Client::new();
    for (backend, server, _dir, _schema) in servers().await {
        let me = format!("{}/api/auth/me", server.base);
        let flood = |tokens: &[String]| {
            let tokens = tokens.to_vec();
            let (client, me) = (&client, &me);
            async move {
                futures_util::stream::iter(tokens.into_iter().enumerate())
                    .map(|(n, token)| async move {
                        let reply = client
                            .get(me)
                            .header("x-forwarded-for", client_address(n))
                            .bearer_auth(token)
                            .send()
                            .await
                            .unwrap();
                        (
                            reply.status(),
                            reply.headers().contains_key("www-authenticate"),
                        )
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect::<Vec<_>>()
                    .await
            }
        };
        // Warm the server's pools and allocator first, so that only the flood is measured.
        flood(&tokens[..500]).await;
        let before = server.resident_bytes();
        let started = Instant::now();
        let answers = flood(&tokens).await;
        let elapsed = started.elapsed();
        let grown = server.resident_bytes().saturating_sub(before);
        for (status, challenged) in &answers {
            assert_eq!(*status, StatusCode::UNAUTHORIZED, "{backend}");
            assert!(challenged, "{backend}: a 401 carries WWW-Authenticate");
        }
        eprintln!(
            "{backend}: {REQUESTS} invalid tokens in {elapsed:?}; resident memory grew by {} KiB",
            grown >> 10
        );
        assert!(
            grown < 32 << 20,
            "{backend}: resident memory grew by {} MiB over {REQUESTS} invalid tokens",
            grown >> 20
        );
    }
}
