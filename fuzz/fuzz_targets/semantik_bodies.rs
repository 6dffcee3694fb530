//! Every JSON body the Semantik example accepts, through its real router on SQLite: whatever
//! the bytes, the answer is below 500 and the server does not panic.
//!
//! The first input byte picks the endpoint; the rest is the body. Each input comes from an
//! address of its own behind a trusted proxy, and the caller's API key moves to a new user
//! every few hundred inputs, so that the rate limits never answer in place of the handlers.
#![no_main]

use semantik as app;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const INTERNAL_KEY: &str = "fuzz-internal-key-0123456789abcdef";
/// Under the per-user limit of 600 a minute.
const INPUTS_PER_USER: u64 = 500;

/// Which endpoint a body goes to, and with which credential.
const ENDPOINTS: [(Method, &str, Caller); 9] = [
    (Method::POST, "/api/auth/register", Caller::Anonymous),
    (Method::POST, "/api/auth/login", Caller::Anonymous),
    (Method::POST, "/api/auth/refresh", Caller::Anonymous),
    (Method::POST, "/api/auth/logout", Caller::User),
    (Method::POST, "/api/v2/api-keys", Caller::User),
    (
        Method::PATCH,
        "/api/v2/api-keys/00000000-0000-4000-8000-000000000000",
        Caller::User,
    ),
    (Method::POST, "/api/collections", Caller::User),
    (Method::PATCH, "/api/internal/users/2", Caller::Service),
    (Method::GET, "/ws/operations", Caller::User),
];

#[derive(Clone, Copy)]
enum Caller {
    Anonymous,
    User,
    Service,
}

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    state: Mutex<Rotation>,
    _data: tempfile::TempDir,
}

struct Rotation {
    inputs: u64,
    users: u64,
    api_key: String,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", data.path().display().to_string()),
        ("INTERNAL_API_KEY", INTERNAL_KEY.to_owned()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let (router, _state) = runtime.block_on(app::build(&config)).unwrap();
    let server = Server {
        runtime,
        router,
        state: Mutex::new(Rotation {
            inputs: 0,
            users: 0,
            api_key: String::new(),
        }),
        _data: data,
    };
    let api_key = server.new_user(0);
    server.state.lock().unwrap().api_key = api_key;
    server
});

impl Server {
    /// Sends `request` as the trusted proxy would forward it from the client `address`.
    fn send(&self, request: Request<Body>, address: &str) -> (StatusCode, Vec<u8>) {
        let (mut parts, body) = request.into_parts();
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        parts.extensions.insert(ConnectInfo(peer));
        parts
            .headers
            .insert("x-forwarded-for", address.parse().unwrap());
        let request = Request::from_parts(parts, body);
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, body.to_vec())
        })
    }

    /// A setup request from `address`, which must succeed.
    fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
        bearer: Option<&str>,
        address: &str,
    ) -> serde_json::Value {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        let (status, body) = self.send(request, address);
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    /// Registers user `n` (from an address of the user's own, outside the inputs' range) and
    /// returns an API key of theirs.
    fn new_user(&self, n: u64) -> String {
        let address = format!("172.16.{}.{}", n / 250 % 250, n % 250 + 1);
        let username = format!("fuzz{n}");
        let credentials = serde_json::json!({
            "username": username, "email": format!("{username}@example.com"),
            "password": "correct horse battery",
        });
        self.post_json("/api/auth/register", credentials.clone(), None, &address);
        let tokens = self.post_json("/api/auth/login", credentials, None, &address);
        let access = tokens["access_token"].as_str().unwrap();
        let key = serde_json::json!({"name": "fuzz"});
        let key = self.post_json("/api/v2/api-keys", key, Some(access), &address);
        key["api_key"].as_str().unwrap().to_owned()
    }

    /// The current user's API key and this input's number, moving to a new user when due.
    fn caller(&self) -> (String, u64) {
        let mut state = self.state.lock().unwrap();
        state.inputs += 1;
        if state.inputs % INPUTS_PER_USER == 0 {
            state.users += 1;
            state.api_key = self.new_user(state.users);
        }
        (state.api_key.clone(), state.inputs)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let server = &*SERVER;
    let (method, path, caller) = &ENDPOINTS[usize::from(selector) % ENDPOINTS.len()];
    let (api_key, input) = server.caller();
    let mut request = Request::builder()
        .method(method.clone())
        .uri(*path)
        .header("content-type", "application/json");
    request = match caller {
        Caller::Anonymous => request,
        Caller::User => request.header("authorization", format!("Bearer {api_key}")),
        Caller::Service => request.header("x-internal-api-key", INTERNAL_KEY),
    };
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let address = format!(
        "10.{}.{}.{}",
        input >> 16 & 255,
        input >> 8 & 255,
        input & 255
    );
    let (status, answer) = server.send(request, &address);
    assert!(
        status.as_u16() < 500,
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    if !answer.is_empty() {
        let json: serde_json::Value =
            serde_json::from_slice(&answer).expect("every answer is JSON");
        if !status.is_success() {
            assert!(
                json["detail"].is_string(),
                "{status} without a detail: {json}"
            );
        }
    }
});
