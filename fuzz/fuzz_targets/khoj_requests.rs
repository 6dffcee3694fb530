//! Every route of the Khoj example, through its real router on SQLite, with the input as the
//! query string and the body: whatever the bytes, the answer is below 500, the server does
//! not panic, and a JSON refusal carries a `detail`.
//!
//! The first input byte picks the route (and its caller: nobody, a browser session, an API
//! key or a client application); the rest, split at the first newline, is the query string
//! and the body. Limits are lifted so that they never answer in place of the handlers.
#![no_main]

use khoj as app;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use portcullis::assurance::Factor;
use portcullis::sign_in::Authenticated;
use portcullis::store::NewUser;
use tower::ServiceExt;

#[derive(Clone, Copy)]
enum Caller {
    Anonymous,
    Session,
    ApiKey,
    Client,
}

/// Method, path, content type of the body, caller.
const ROUTES: [(Method, &str, &str, Caller); 12] = [
    (Method::POST, "/auth/magic", "application/json", Caller::Anonymous),
    (Method::POST, "/auth/magic", "application/x-www-form-urlencoded", Caller::Anonymous),
    (Method::GET, "/auth/magic", "", Caller::Anonymous),
    (Method::POST, "/auth/token", "", Caller::Session),
    (Method::GET, "/auth/token", "", Caller::ApiKey),
    (Method::DELETE, "/auth/token", "", Caller::Session),
    (Method::GET, "/api/v1/user", "", Caller::Client),
    (Method::GET, "/api/health", "", Caller::ApiKey),
    (Method::GET, "/login", "", Caller::Anonymous),
    (Method::POST, "/settings/keys", "application/x-www-form-urlencoded", Caller::Session),
    (Method::POST, "/settings/keys/delete", "application/x-www-form-urlencoded", Caller::Session),
    (Method::GET, "/auth/logout", "", Caller::Anonymous),
];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    cookie: String,
    api_key: String,
    client_id: String,
    client_secret: String,
    _data: tempfile::TempDir,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", data.path().display().to_string()),
        ("KHOJ_AUTH_REQUESTS_PER_HOUR", "1000000".to_owned()),
        ("KHOJ_MAGIC_LINK_REQUESTS_PER_DAY", "1000000".to_owned()),
        ("KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY", "1000000".to_owned()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let (router, cookie, api_key, client_id, client_secret) = runtime.block_on(async {
        let (router, state) = app::build(&config, "http://127.0.0.1:42110").await.unwrap();
        let user = NewUser::new("fuzz").email("fuzz@example.com").email_verified(true);
        let user = state.auth.users().create_user(user, state.auth.now()).await.unwrap();
        let signed_in = Authenticated::new(user.clone(), Factor::Email, state.auth.now());
        let started = state.sessions.start(&signed_in, &http::HeaderMap::new()).await.unwrap();
        let cookie = format!("khoj_session={}", started.secret.expose());
        let api_key = state
            .api_keys
            .create(&user, portcullis::NewApiKey::named("fuzz"))
            .await
            .unwrap()
            .secret
            .into_exposed();
        let command = app::CreateClient::parse(["--name".to_owned(), "fuzz".to_owned()]).unwrap();
        let (client, secret) = app::create_client(&config, command).await.unwrap();
        let secret = secret.secret().expose().to_owned();
        (router, cookie, api_key, client.client_id, secret)
    });
    // The router's background tasks (the mail outbox, `last_used_at` writes) live on this
    // runtime, which every input runs on.
    Server {
        runtime,
        router,
        cookie,
        api_key,
        client_id,
        client_secret,
        _data: data,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let server = &*SERVER;
    let (method, path, content_type, caller) = &ROUTES[usize::from(selector) % ROUTES.len()];
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    // Only what a URI can carry: anything else never reaches a router.
    let query: String = query
        .iter()
        .filter(|b| b.is_ascii_graphic() && **b != b'#')
        .map(|&b| char::from(b))
        .collect();
    let query = match caller {
        Caller::Client => format!("client_id={}&{query}", server.client_id),
        _ => query,
    };
    let Ok(uri) = format!("{path}?{query}").parse::<http::Uri>() else {
        return;
    };
    let mut request = Request::builder().method(method.clone()).uri(uri);
    if !content_type.is_empty() {
        request = request.header("content-type", *content_type);
    }
    request = match caller {
        Caller::Anonymous => request,
        Caller::Session => request.header("cookie", &server.cookie),
        Caller::ApiKey => request.header("authorization", format!("Bearer {}", server.api_key)),
        Caller::Client => {
            request.header("authorization", format!("Bearer {}", server.client_secret))
        }
    };
    let mut request = request.body(Body::from(body.to_vec())).unwrap();
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let (status, json, answer) = server.runtime.block_on(async {
        let response = server.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let json = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, json, body.to_vec())
    });
    assert!(
        status < StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {path}?{query} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    if json && status.is_client_error() {
        let json: serde_json::Value = serde_json::from_slice(&answer).expect("JSON as labelled");
        assert!(json["detail"].is_string(), "{status} without a detail: {json}");
    }
});
