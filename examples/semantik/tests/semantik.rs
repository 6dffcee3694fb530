//! The Semantik example over real HTTP against a real SQLite file: every documented endpoint,
//! success and failure paths.

#[path = "../../../tests/common/mod.rs"]
mod common;

use semantik as app;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;

const INTERNAL_KEY: &str = "internal-test-key-0123456789abcdef";

/// Where the server keeps its data: the same suite runs on both.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite,
    Postgres(String),
}

struct Server {
    base: String,
    /// The running server's own state, for what no endpoint does.
    state: app::AppState,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    schema: Option<common::PgSchema>,
}

async fn start(backend: Backend) -> Server {
    start_with(backend, &[]).await
}

async fn start_with(backend: Backend, extra: &[(&'static str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let schema = match &backend {
        Backend::Sqlite => None,
        Backend::Postgres(server) => Some(common::PgSchema::create(server).await),
    };
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("INTERNAL_API_KEY", INTERNAL_KEY.to_owned()),
        (
            "CORS_ORIGINS",
            "http://localhost:5173, https://app.example".to_owned(),
        ),
        // Upstream's 5 creations an hour would stop the tests that make many keys; the limit
        // itself is tested on its own.
        ("API_KEY_CREATE_RATE_LIMIT", "1000".to_owned()),
    ]);
    if let Some(schema) = &schema {
        env.insert("DATABASE_URL", schema.url.clone());
    }
    env.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let (router, state) = app::build(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, router));
    Server {
        base,
        state,
        client: reqwest::Client::new(),
        dir,
        schema,
    }
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Reply {
    fn detail(&self) -> &str {
        self.body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {}", self.body))
    }
}

impl Server {
    /// Sends a request and reads the reply; every reply must be below 500.
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        assert!(status.as_u16() < 500, "{status} {body}");
        Reply {
            status,
            body,
            headers,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    async fn raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self.request(Method::POST, path).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }

    async fn internal(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .request(method, &format!("/api/internal{path}"))
            .header("x-internal-api-key", INTERNAL_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Everything the database holds: the SQLite files, or a text dump of every table.
    async fn stored_data(&self) -> Vec<u8> {
        let Some(schema) = &self.schema else {
            let mut stored = Vec::new();
            for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("semantik.db")
                {
                    stored.extend(std::fs::read(&path).unwrap());
                }
            }
            return stored;
        };
        let pool = sqlx::PgPool::connect(&schema.url).await.unwrap();
        let mut stored = Vec::new();
        for table in ["portcullis_users", "portcullis_tokens", "collections"] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM {}.{table} t",
                schema.name
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            stored.extend(rows.join("\n").into_bytes());
        }
        pool.close().await;
        stored
    }

    async fn register(&self, username: &str) -> Value {
        let reply = self
            .post(
                "/api/auth/register",
                None,
                json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    async fn login(&self, username: &str) -> (String, String) {
        let reply = self
            .post(
                "/api/auth/login",
                None,
                json!({"username": username, "password": "correct horse"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        (
            reply.body["access_token"].as_str().unwrap().to_owned(),
            reply.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn api_key(&self, token: &str, body: Value) -> Reply {
        self.post("/api/v2/api-keys", Some(token), body).await
    }

    /// `PATCH /api/v2/api-keys/{id}` with `{"is_active": active}`.
    async fn set_key_active(&self, token: &str, id: &str, active: bool) -> Reply {
        let path = format!("/api/v2/api-keys/{id}");
        let body = json!({ "is_active": active });
        self.call(Method::PATCH, &path, Some(token), Some(body))
            .await
    }
}

fn keys_of(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

async fn register_returns_the_user_and_the_first_user_becomes_superuser(backend: Backend) {
    let server = start(backend.clone()).await;
    let ada = server
        .post(
            "/api/auth/register",
            None,
            json!({"username": "ada", "email": "ada@example.com", "password": "correct horse", "full_name": "Ada Lovelace"}),
        )
        .await;
    assert_eq!(ada.status, StatusCode::OK);
    assert_eq!(
        keys_of(&ada.body),
        [
            "created_at",
            "email",
            "full_name",
            "id",
            "is_active",
            "is_superuser",
            "last_login",
            "updated_at",
            "username"
        ],
        "every field of upstream's user object: Semantik's web app reads is_superuser"
    );
    assert_eq!(ada.body["username"], "ada");
    assert_eq!(ada.body["is_superuser"], true);
    assert_eq!(ada.body["last_login"], Value::Null);
    assert_eq!(ada.body["updated_at"], ada.body["created_at"]);
    assert_eq!(ada.body["full_name"], "Ada Lovelace");
    assert_eq!(ada.body["is_active"], true);
    assert!(
        time::OffsetDateTime::parse(
            ada.body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let bob = server.register("bob").await;
    assert_eq!(bob["full_name"], Value::Null);
    assert_eq!(bob["is_superuser"], false);
    // After a login, /me tells when it happened.
    let (access, _) = server.login("bob").await;
    let me = server.get("/api/auth/me", Some(&access)).await;
    assert!(me.body["last_login"].is_string(), "{}", me.body);
    let superuser = |id: &Value| format!("/users/{id}");
    assert_eq!(
        server
            .internal(Method::GET, &superuser(&ada.body["id"]), None)
            .await
            .body["is_superuser"],
        true
    );
    assert_eq!(
        server
            .internal(Method::GET, &superuser(&bob["id"]), None)
            .await
            .body["is_superuser"],
        false
    );
}

async fn register_rejects_bad_input_with_clear_details(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let cases = [
        (
            json!({"username": "bob", "email": "bob@example.com", "password": "short"}),
            422,
            "at least 8",
        ),
        (
            json!({"username": "ADA", "email": "x@example.com", "password": "correct horse"}),
            409,
            "Username already exists",
        ),
        (
            json!({"username": "bob", "email": "ADA@example.com", "password": "correct horse"}),
            409,
            "Email already registered",
        ),
        (
            json!({"username": "b", "email": "b@example.com", "password": "correct horse"}),
            422,
            "username",
        ),
        (
            json!({"username": "ａｄｍｉｎ", "email": "c@example.com", "password": "correct horse"}),
            422,
            "ASCII",
        ),
        (
            json!({"username": "bob'; --", "email": "d@example.com", "password": "correct horse"}),
            422,
            "username",
        ),
        (
            json!({"username": "bob", "email": "not-an-email", "password": "correct horse"}),
            422,
            "email",
        ),
        (
            json!({"username": "bob", "password": "correct horse"}),
            422,
            "missing field `email`",
        ),
        (
            json!({"username": 5, "email": "e@example.com", "password": "correct horse"}),
            422,
            "invalid type",
        ),
        (
            json!({"username": "bob", "email": "f@example.com", "password": "x".repeat(129)}),
            422,
            "at most 128",
        ),
        (json!(["not", "an", "object"]), 422, "Invalid request body"),
    ];
    for (body, status, detail) in cases {
        let reply = server.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.body);
        assert!(
            reply.detail().contains(detail),
            "{body}: {}",
            reply.detail()
        );
    }
}

async fn malformed_bodies_get_4xx_json_never_500(backend: Backend) {
    let server = start(backend.clone()).await;
    let json_type = Some("application/json");
    for path in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"] {
        let bad_json = server
            .raw(path, json_type, b"{\"username\": ".to_vec())
            .await;
        assert_eq!(bad_json.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(bad_json.detail(), "Request body is not valid JSON");
        let no_type = server.raw(path, None, b"{}".to_vec()).await;
        assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        // Just over the 64 KiB limit. (Megabytes are answered 413 from the Content-Length
        // alone, before the client has written them: see the attack battery.)
        let huge = server.raw(path, json_type, vec![b' '; 70_000]).await;
        assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(huge.detail().contains("larger than"));
        let invalid_utf8 = server
            .raw(path, json_type, vec![b'"', 0xff, 0xfe, b'"'])
            .await;
        assert!(invalid_utf8.status.is_client_error(), "{path}");
        let null = server.raw(path, json_type, b"null".to_vec()).await;
        assert_eq!(null.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
    let not_found = server.get("/api/nope", None).await;
    assert_eq!(
        (not_found.status, not_found.detail()),
        (StatusCode::NOT_FOUND, "Not Found")
    );
    let wrong_method = server
        .call(Method::PUT, "/api/auth/login", None, None)
        .await;
    assert_eq!(
        (wrong_method.status, wrong_method.detail()),
        (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    );
}

async fn login_returns_a_bearer_pair_and_records_the_login(backend: Backend) {
    let server = start(backend.clone()).await;
    let ada = server.register("ada").await;
    let before = server
        .internal(Method::GET, &format!("/users/{}", ada["id"]), None)
        .await;
    assert_eq!(before.body["last_login"], Value::Null);
    let reply = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        keys_of(&reply.body),
        ["access_token", "refresh_token", "token_type"]
    );
    assert_eq!(reply.body["token_type"], "bearer");
    assert!(
        reply.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("smtr_")
    );
    assert_eq!(
        reply.body["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    let after = server
        .internal(Method::GET, &format!("/users/{}", ada["id"]), None)
        .await;
    assert!(after.body["last_login"].is_string());
    // Usernames are matched ignoring case, as at registration.
    assert_eq!(
        server
            .post(
                "/api/auth/login",
                None,
                json!({"username": "ADA", "password": "correct horse"})
            )
            .await
            .status,
        StatusCode::OK
    );
}

async fn wrong_username_and_wrong_password_are_indistinguishable(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let wrong_password = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "ada", "password": "wrong horse"}),
        )
        .await;
    let unknown_user = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "nobody", "password": "wrong horse"}),
        )
        .await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.body,
            json!({"detail": "Incorrect username or password"})
        );
        assert_eq!(
            reply.headers["www-authenticate"],
            "Bearer realm=\"semantik\""
        );
    }
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (_, first_refresh) = server.login("ada").await;
    let rotated = server
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": first_refresh}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.body["token_type"], "bearer");
    let new_access = rotated.body["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, first_refresh);
    assert_eq!(
        server.get("/api/auth/me", Some(&new_access)).await.status,
        StatusCode::OK
    );

    // The old token was revoked by the rotation; presenting it again is reuse.
    let reuse = server
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": first_refresh}),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert!(
        reuse.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // The whole family is gone: the rotated pair stops working too.
    assert_eq!(
        server
            .post(
                "/api/auth/refresh",
                None,
                json!({"refresh_token": new_refresh})
            )
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/api/auth/me", Some(&new_access)).await.status,
        StatusCode::UNAUTHORIZED
    );

    for garbage in [
        json!({"refresh_token": "smtr_x"}),
        json!({"refresh_token": new_access}),
        json!({"refresh_token": ""}),
    ] {
        assert_eq!(
            server.post("/api/auth/refresh", None, garbage).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let missing = server.post("/api/auth/refresh", None, json!({})).await;
    assert_eq!(
        (missing.status, missing.detail()),
        (StatusCode::BAD_REQUEST, "Missing refresh token")
    );
}

/// Upstream reads `?refresh_token=` when the body has none; one token, not two.
async fn refresh_takes_the_token_from_the_query_too(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (_, refresh) = server.login("ada").await;
    let path = format!("/api/auth/refresh?refresh_token={refresh}");
    let rotated = server.call(Method::POST, &path, None, None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let next = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    // Spent: the query reading is the same rotation, reuse detection included.
    assert_eq!(
        server.call(Method::POST, &path, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (_, other) = server.login("ada").await;
    let both = server
        .post(
            &format!("/api/auth/refresh?refresh_token={other}"),
            None,
            json!({"refresh_token": other}),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{}", both.body);
    let empty = server
        .call(Method::POST, "/api/auth/refresh", None, None)
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    // The family of `next` was revoked by the reuse above; `other`'s still rotates.
    let _ = next;
    let path = format!("/api/auth/refresh?refresh_token={other}");
    assert_eq!(
        server.call(Method::POST, &path, None, None).await.status,
        StatusCode::OK
    );
}

async fn a_refresh_token_is_not_an_access_token_and_vice_versa(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    assert_eq!(
        server.get("/api/auth/me", Some(&refresh)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .post("/api/auth/refresh", None, json!({"refresh_token": access}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_revokes_one_session_or_all_of_them(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access_a, refresh_a) = server.login("ada").await;
    let (access_b, refresh_b) = server.login("ada").await;
    let (access_c, _) = server.login("ada").await;

    let one = server
        .post(
            "/api/auth/logout",
            Some(&access_b),
            json!({"refresh_token": refresh_a}),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body, json!({"message": "Logged out successfully"}));
    assert_eq!(
        server.get("/api/auth/me", Some(&access_a)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .post(
                "/api/auth/refresh",
                None,
                json!({"refresh_token": refresh_a})
            )
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/api/auth/me", Some(&access_b)).await.status,
        StatusCode::OK
    );

    // Without a refresh token (and without a body at all), every session ends.
    let response = server
        .client
        .post(format!("{}/api/auth/logout", server.base))
        .bearer_auth(&access_b)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for access in [&access_b, &access_c] {
        assert_eq!(
            server.get("/api/auth/me", Some(access)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        server
            .post(
                "/api/auth/refresh",
                None,
                json!({"refresh_token": refresh_b})
            )
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .post("/api/auth/logout", None, json!({}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn me_requires_a_valid_bearer_credential(backend: Backend) {
    let server = start(backend.clone()).await;
    let ada = server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let me = server.get("/api/auth/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK);
    // The same user, as the login left it: its time recorded.
    let mut expected = ada.clone();
    expected["last_login"] = me.body["last_login"].clone();
    expected["updated_at"] = me.body["updated_at"].clone();
    assert_eq!(me.body, expected);
    assert!(me.body["last_login"].is_string(), "{}", me.body);
    let anonymous = server.get("/api/auth/me", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers["www-authenticate"],
        "Bearer realm=\"semantik\""
    );
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    let bad = server.get("/api/auth/me", Some(&tampered)).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.detail(), "Could not validate credentials");
}

async fn a_deactivated_user_is_rejected_on_every_path_including_earlier_tokens(backend: Backend) {
    let server = start(backend.clone()).await;
    let ada = server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let key = server
        .api_key(&access, json!({"name": "laptop"}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.get("/api/collections", Some(&key)).await.status,
        StatusCode::OK
    );

    let update = server
        .internal(
            Method::PATCH,
            &format!("/users/{}", ada["id"]),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK);
    assert_eq!(update.body["is_active"], false);

    for credential in [&access, &key] {
        for path in ["/api/auth/me", "/api/collections", "/api/v2/api-keys"] {
            let reply = server.get(path, Some(credential)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(reply.detail(), "Inactive user");
        }
    }
    assert_eq!(
        server
            .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let login = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(
        (login.status, login.detail()),
        (StatusCode::UNAUTHORIZED, "Inactive user")
    );

    server
        .internal(
            Method::PATCH,
            &format!("/users/{}", ada["id"]),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(
        server.get("/api/auth/me", Some(&key)).await.status,
        StatusCode::OK
    );
}

/// Semantik's key object: these fields, and never the secret or its digest.
const KEY_FIELDS: [&str; 7] = [
    "created_at",
    "expires_at",
    "id",
    "is_active",
    "last_used_at",
    "name",
    "permissions",
];

async fn api_keys_are_shown_once_listed_without_secrets_and_revoked_softly(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let created = server.api_key(&access, json!({"name": "laptop"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mut fields = KEY_FIELDS.to_vec();
    fields.push("api_key");
    fields.sort_unstable();
    assert_eq!(keys_of(&created.body), fields);
    assert_eq!(created.body["is_active"], true);
    assert_eq!(created.body["permissions"], Value::Null);
    let secret = created.body["api_key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("smtk_"));
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::try_parse(&id).is_ok(),
        "upstream's ids are UUIDs: {id}"
    );
    let parse = |field: &str| {
        time::OffsetDateTime::parse(
            created.body[field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        (parse("expires_at") - parse("created_at")).whole_days(),
        365
    );

    // The key authenticates every protected endpoint as its owner.
    assert_eq!(
        server.get("/api/auth/me", Some(&secret)).await.body["username"],
        "ada"
    );
    let listed = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(keys_of(&listed.body), ["api_keys", "total"]);
    assert_eq!(listed.body["total"], 1);
    let entry = &listed.body["api_keys"][0];
    assert_eq!(keys_of(entry), KEY_FIELDS);
    assert_eq!(
        (entry["id"].as_str(), &entry["name"]),
        (Some(id.as_str()), &json!("laptop"))
    );
    assert!(
        !listed.body.to_string().contains(&secret),
        "listing never shows the secret"
    );
    let one = server
        .get(&format!("/api/v2/api-keys/{id}"), Some(&access))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(&one.body, entry);

    // An active key stays active; `false` revokes it, and revoking again changes nothing.
    assert_eq!(
        server.set_key_active(&access, &id, true).await.body["is_active"],
        true
    );
    let revoked = server.set_key_active(&access, &id, false).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.body["is_active"], false);
    assert_eq!(
        server.get("/api/auth/me", Some(&secret)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = server.set_key_active(&access, &id, false).await;
    assert_eq!(
        (again.status, &again.body["is_active"]),
        (StatusCode::OK, &json!(false))
    );
    let after = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(
        after.body["api_keys"][0]["is_active"], false,
        "the row stays, marked revoked"
    );

    // A revoked key is never brought back (upstream would): its owner gave it up.
    let reactivated = server.set_key_active(&access, &id, true).await;
    assert_eq!(reactivated.status, StatusCode::CONFLICT);
    assert!(reactivated.detail().contains("cannot be reactivated"));
    assert_eq!(
        server.get("/api/auth/me", Some(&secret)).await.status,
        StatusCode::UNAUTHORIZED
    );

    for unknown in ["not-a-uuid", "1", &uuid::Uuid::new_v4().to_string()] {
        let path = format!("/api/v2/api-keys/{unknown}");
        assert_eq!(
            server.get(&path, Some(&access)).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            server.set_key_active(&access, unknown, false).await.status,
            StatusCode::NOT_FOUND
        );
    }
    for body in [
        json!({}),
        json!({"is_active": "no"}),
        json!({"is_active": false, "name": "x"}),
    ] {
        let path = format!("/api/v2/api-keys/{id}");
        let reply = server
            .call(Method::PATCH, &path, Some(&access), Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

async fn another_users_key_cannot_be_seen_or_revoked(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    server.register("bob").await;
    let (ada, _) = server.login("ada").await;
    let (bob, _) = server.login("bob").await;
    let created = server.api_key(&ada, json!({"name": "adas"})).await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        server.set_key_active(&bob, id, false).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .get(&format!("/api/v2/api-keys/{id}"), Some(&bob))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/api/v2/api-keys", Some(&bob)).await.body,
        json!({"api_keys": [], "total": 0})
    );
    let secret = created.body["api_key"].as_str().unwrap();
    assert_eq!(
        server.get("/api/auth/me", Some(secret)).await.status,
        StatusCode::OK
    );
    // Names are unique per owner only.
    assert_eq!(
        server.api_key(&bob, json!({"name": "adas"})).await.status,
        StatusCode::CREATED
    );
}

async fn key_names_are_unique_per_owner_whatever_their_case(backend: Backend) {
    let server = std::sync::Arc::new(start(backend.clone()).await);
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let first = server.api_key(&access, json!({"name": "Laptop"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    for name in ["Laptop", "laptop", "LAPTOP", " laptop "] {
        let reply = server.api_key(&access, json!({ "name": name })).await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{name:?}: {}",
            reply.body
        );
        assert!(
            reply.detail().contains("already exists"),
            "{}",
            reply.detail()
        );
    }
    // A revoked key keeps its name, as upstream's does.
    let id = first.body["id"].as_str().unwrap();
    server.set_key_active(&access, id, false).await;
    assert_eq!(
        server
            .api_key(&access, json!({"name": "laptop"}))
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Concurrent requests for one name: the database decides, exactly one key is made.
    let racing = (0..10).map(|n| {
        let (server, access) = (server.clone(), access.clone());
        let name = if n % 2 == 0 { "Desktop" } else { "desktop" };
        tokio::spawn(async move { server.api_key(&access, json!({ "name": name })).await })
    });
    let mut statuses = Vec::new();
    for reply in futures_util::future::join_all(racing).await {
        statuses.push(reply.unwrap().status);
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (1, 9), "{statuses:?}");
    let listed = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(listed.body["total"], 2, "{}", listed.body);
}

/// A key made before keys had UUIDs (by an earlier version of the server, here straight
/// through the library) is listed with one, and can be read and revoked by it.
async fn a_key_from_before_uuids_is_listed_and_revocable(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let users = server.state.auth.users();
    let ada = users.user_by_username("ada").await.unwrap().unwrap();
    let legacy = portcullis::NewApiKey::named("laptop");
    let legacy = server.state.api_keys.create(&ada, legacy).await.unwrap();
    let secret = legacy.secret.into_exposed();
    // Its name is not reserved: a new key may take it.
    let new = server.api_key(&access, json!({"name": "laptop"})).await;
    assert_eq!(new.status, StatusCode::CREATED);
    let listed = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(listed.body["total"], 2, "{}", listed.body);
    let ids: Vec<&str> = listed.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1]);
    let relisted = server.get("/api/v2/api-keys", Some(&access)).await;
    assert_eq!(relisted.body, listed.body, "the UUID given is kept");
    let legacy_id = ids
        .iter()
        .find(|id| **id != new.body["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        server
            .set_key_active(&access, legacy_id, false)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server.get("/api/auth/me", Some(&secret)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Upstream's limits on the key routes, per user: 5 creations an hour by default.
async fn key_creation_is_limited_per_user_as_upstream_does(backend: Backend) {
    let server = start_with(backend.clone(), &[("API_KEY_CREATE_RATE_LIMIT", "5")]).await;
    server.register("ada").await;
    server.register("bob").await;
    let (ada, _) = server.login("ada").await;
    let (bob, _) = server.login("bob").await;
    for n in 0..5 {
        let reply = server.api_key(&ada, json!({"name": format!("k{n}")})).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let refused = server.api_key(&ada, json!({"name": "k5"})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (600..=720).contains(&wait),
        "one creation every 12 minutes: {wait}"
    );
    // Listing is limited apart, and another user is not affected.
    assert_eq!(
        server.get("/api/v2/api-keys", Some(&ada)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.api_key(&bob, json!({"name": "k0"})).await.status,
        StatusCode::CREATED
    );
}

async fn at_most_twenty_active_keys_per_user(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let reply = server
            .api_key(&access, json!({"name": format!("key {n}")}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let extra = server.api_key(&access, json!({"name": "key 21"})).await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
    assert!(
        extra.detail().contains("Maximum number of API keys (20)"),
        "{}",
        extra.detail()
    );
    // The refused request reserved nothing: its name is free once a key is revoked.
    server.set_key_active(&access, &ids[0], false).await;
    assert_eq!(
        server
            .api_key(&access, json!({"name": "key 21"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

async fn api_key_permissions_limit_what_the_key_can_do(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let read_only = server
        .api_key(
            &access,
            json!({"name": "ro", "permissions": {"scopes": ["collections:read"]}}),
        )
        .await;
    assert_eq!(read_only.status, StatusCode::CREATED);
    let key = read_only.body["api_key"].as_str().unwrap();
    assert_eq!(
        server.get("/api/collections", Some(key)).await.status,
        StatusCode::OK
    );
    let write = server
        .post("/api/collections", Some(key), json!({"name": "docs"}))
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert!(
        write.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"collections:write\"")
    );
    assert_eq!(
        server.get("/api/v2/api-keys", Some(key)).await.status,
        StatusCode::FORBIDDEN
    );

    // A key, even one with keys:manage, cannot mint keys: that needs a recent sign-in.
    let manager = server
        .api_key(
            &access,
            json!({"name": "mgr", "permissions": {"scopes": ["keys:manage", "collections:read"]}}),
        )
        .await;
    let manager = manager.body["api_key"].as_str().unwrap();
    assert_eq!(
        server.get("/api/v2/api-keys", Some(manager)).await.status,
        StatusCode::OK
    );
    for body in [
        json!({"name": "x", "permissions": {"scopes": ["collections:write"]}}),
        json!({"name": "y"}),
    ] {
        let minted = server.api_key(manager, body).await;
        assert_eq!(minted.status, StatusCode::UNAUTHORIZED, "{}", minted.body);
        assert!(
            minted.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_user_authentication")
        );
    }

    for body in [
        json!({"name": "x", "permissions": {"scopes": ["root"]}}),
        json!({"name": "x", "permissions": {"scopes": []}}),
        json!({"name": "x", "permissions": ["collections:read"]}),
        json!({"name": "x", "permissions": {"scopes": ["collections:read"], "admin": true}}),
        json!({"name": "x", "is_active": true}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "expires_in_days": 3651}),
        json!({"name": "x", "expires_in_days": -1}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"permissions": {"scopes": ["collections:read"]}}),
    ] {
        let reply = server.api_key(&access, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
    }
}

async fn collections_are_isolated_per_owner_and_visible_to_the_superuser(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("admin").await;
    server.register("ada").await;
    server.register("bob").await;
    let (admin, _) = server.login("admin").await;
    let (ada, _) = server.login("ada").await;
    let (bob, _) = server.login("bob").await;
    let created = server
        .post(
            "/api/collections",
            Some(&ada),
            json!({"name": "notes", "description": "mine"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        keys_of(&created.body),
        ["created_at", "description", "id", "name", "owner_id"]
    );
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        server
            .post("/api/collections", Some(&ada), json!({"name": "notes"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        server
            .post("/api/collections", Some(&bob), json!({"name": "notes"}))
            .await
            .status,
        StatusCode::CREATED
    );

    assert_eq!(
        server
            .get(&format!("/api/collections/{id}"), Some(&ada))
            .await
            .body["name"],
        "notes"
    );
    let foreign = server
        .get(&format!("/api/collections/{id}"), Some(&bob))
        .await;
    assert_eq!(
        (foreign.status, foreign.detail()),
        (StatusCode::NOT_FOUND, "Collection not found")
    );
    assert_eq!(
        server
            .get(&format!("/api/collections/{id}"), Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .get("/api/collections/does-not-exist", Some(&ada))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        server
            .get("/api/collections", Some(&ada))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server
            .get("/api/collections", Some(&admin))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        server.get("/api/collections", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": 3}),
        json!({}),
    ] {
        assert_eq!(
            server
                .post("/api/collections", Some(&ada), bad)
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let hostile = server
        .post(
            "/api/collections",
            Some(&ada),
            json!({"name": "x'); DROP TABLE collections;--"}),
        )
        .await;
    assert_eq!(hostile.status, StatusCode::CREATED);
    assert_eq!(
        server
            .get("/api/collections", Some(&ada))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn the_internal_api_needs_the_internal_key(backend: Backend) {
    let server = start(backend.clone()).await;
    let ada = server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let path = format!("/api/internal/users/{}", ada["id"]);
    assert_eq!(
        server
            .internal(Method::GET, &format!("/users/{}", ada["id"]), None)
            .await
            .body["username"],
        "ada"
    );
    assert_eq!(
        server.get(&path, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get(&path, Some(&access)).await.status,
        StatusCode::FORBIDDEN,
        "users are not services"
    );
    let wrong = server
        .client
        .get(format!("{}{path}", server.base))
        .header("x-internal-api-key", "wrong-key-wrong-key-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server
            .internal(Method::GET, "/users/999", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .internal(Method::GET, "/users/abc", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The internal key is not a user: user endpoints refuse it.
    let as_user = server
        .client
        .get(format!("{}/api/auth/me", server.base))
        .header("x-internal-api-key", INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status(), StatusCode::FORBIDDEN);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws/operations` (plus `query`) with extra handshake headers.
async fn open_socket(
    server: &Server,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/ws/operations{query}",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await
}

/// The code the server closes `socket` with, once it sends nothing else.
async fn close_code(socket: &mut Socket) -> u16 {
    match socket.next().await {
        Some(Ok(tungstenite::Message::Close(Some(frame)))) => frame.code.into(),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap()
}

/// Semantik's web app sends the token as the subprotocol `access_token.<token>` and needs it
/// echoed; a refusal reaches it as a close code (4003 origin, 1008 credential), since a
/// browser sees no handshake status.
async fn the_websocket_authenticates_in_the_handshake_as_semantiks_clients_expect(
    backend: Backend,
) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let protocol = format!("access_token.{access}");
    let offered = [("sec-websocket-protocol", protocol.as_str())];
    let (mut socket, response) = open_socket(&server, "", &offered).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        protocol.as_str()
    );
    let hello = next_json(&mut socket).await;
    assert_eq!(
        (&hello["type"], &hello["username"]),
        (&json!("connected"), &json!("ada"))
    );
    for ping in [r#"{"type": "ping"}"#, "ping"] {
        socket
            .send(tungstenite::Message::Text(ping.into()))
            .await
            .unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "pong", "{ping}");
    }
    socket.close(None).await.unwrap();

    // The same origin, and the deprecated `?token=` and a bearer header, open it too.
    let same_origin = [
        ("sec-websocket-protocol", protocol.as_str()),
        ("origin", server.base.as_str()),
    ];
    let bearer = format!("Bearer {access}");
    for (query, headers) in [
        ("", &same_origin[..]),
        (&*format!("?token={access}"), &[][..]),
        ("", &[("authorization", bearer.as_str())][..]),
    ] {
        let (mut socket, _) = open_socket(&server, query, headers).await.unwrap();
        assert_eq!(
            next_json(&mut socket).await["type"],
            "connected",
            "{query} {headers:?}"
        );
    }

    // A page on another site never gets a socket, even with the user's token.
    let cross_site = [
        ("sec-websocket-protocol", protocol.as_str()),
        ("origin", "https://evil.example"),
    ];
    let (mut socket, _) = open_socket(&server, "", &cross_site).await.unwrap();
    assert_eq!(close_code(&mut socket).await, 4003);

    // No credential, the wrong kind, a forged one, an API key, or two at once: 1008.
    let key = server.api_key(&access, json!({"name": "program"})).await;
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    let refused = [
        String::new(),
        format!("?token={refresh}"),
        "?token=a.b.c".to_owned(),
        format!("?token={key}"),
    ];
    for query in &refused {
        let (mut socket, _) = open_socket(&server, query, &[]).await.unwrap();
        assert_eq!(close_code(&mut socket).await, 1008, "{query}");
    }
    for bad in [
        format!("access_token.{refresh}"),
        format!("access_token.{key}"),
        "access_token.a.b.c".to_owned(),
    ] {
        let headers = [("sec-websocket-protocol", bad.as_str())];
        let (mut socket, response) = open_socket(&server, "", &headers).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            bad.as_str(),
            "echoed"
        );
        assert_eq!(close_code(&mut socket).await, 1008, "{bad}");
    }
    let (mut socket, _) = open_socket(&server, &format!("?token={access}"), &offered)
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, 1008, "two tokens");

    // A bad bearer header is refused by the authentication layer before any upgrade.
    let forged = [("authorization", "Bearer a.b.c")];
    match open_socket(&server, "", &forged).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    // A plain GET is not an upgrade: a clear 4xx.
    let plain = server
        .get(&format!("/ws/operations?token={access}"), None)
        .await;
    assert!(plain.status.is_client_error());
}

async fn cors_allows_only_configured_origins(backend: Backend) {
    let server = start(backend.clone()).await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(Method::OPTIONS, format!("{}/api/auth/login", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn concurrent_refreshes_over_http_succeed_exactly_once(backend: Backend) {
    // 49 of the 50 refreshes fail, all from one address: past the per-address budget of
    // failed authentications (30 a minute) they would be answered 429, which is right but
    // not what this test is about.
    let failures = [("AUTH_FAILURES_PER_MINUTE", "1000")];
    let server = std::sync::Arc::new(start_with(backend.clone(), &failures).await);
    server.register("ada").await;
    let (_, refresh) = server.login("ada").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (server, refresh) = (server.clone(), refresh.clone());
            tokio::spawn(async move {
                let reply = server
                    .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
                    .await;
                (reply.status, reply.body)
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status} {body}"
        );
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 1);
}

async fn random_bodies_on_every_endpoint_never_produce_a_5xx(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let bodies = [
        json!(null),
        json!(0),
        json!("x"),
        json!([]),
        json!({}),
        json!({"name": null}),
        json!({"username": [], "password": {}}),
        json!({"refresh_token": 1}),
        json!({"name": "\u{0000}"}),
        json!({"name": "a", "expires_in_days": 1e40}),
        json!({"name": "a", "permissions": "collections:read"}),
        json!({"is_active": "yes"}),
    ];
    let endpoints = [
        (Method::POST, "/api/auth/register"),
        (Method::POST, "/api/auth/login"),
        (Method::POST, "/api/auth/refresh"),
        (Method::POST, "/api/auth/logout"),
        (Method::POST, "/api/v2/api-keys"),
        (Method::POST, "/api/collections"),
        (Method::PATCH, "/api/v2/api-keys/1"),
        (
            Method::PATCH,
            "/api/v2/api-keys/00000000-0000-0000-0000-000000000000",
        ),
        (Method::GET, "/api/collections/x"),
    ];
    for (method, path) in endpoints {
        for body in &bodies {
            for token in [None, Some(access.as_str())] {
                // `call` asserts the status is below 500.
                server
                    .call(method.clone(), path, token, Some(body.clone()))
                    .await;
            }
        }
    }
    for body in &bodies {
        server
            .internal(Method::PATCH, "/users/1", Some(body.clone()))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// The OpenAPI document names every route the server has; schemathesis
/// (`scripts/schemathesis.sh`) checks the server against it.
async fn the_openapi_document_lists_every_route(backend: Backend) {
    let server = start(backend).await;
    let reply = server.get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["openapi"], "3.1.0");
    let documented: Vec<(String, String)> = reply.body["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routes = [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/v2/api-keys"),
        ("GET", "/api/v2/api-keys"),
        ("GET", "/api/v2/api-keys/{key_id}"),
        ("PATCH", "/api/v2/api-keys/{key_id}"),
        ("POST", "/api/collections"),
        ("GET", "/api/collections"),
        ("GET", "/api/collections/{id}"),
        ("GET", "/api/internal/users/{id}"),
        ("PATCH", "/api/internal/users/{id}"),
        ("GET", "/ws/operations"),
    ];
    for (method, path) in routes {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(documented.len(), routes.len(), "{documented:?}");
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn access_tokens_live_24_hours_unless_configured_otherwise(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let claims = jwt_claims(&access);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        24 * 3600
    );
    assert_eq!(claims["token_use"], "access");

    let short = start_with(backend.clone(), &[("ACCESS_TOKEN_EXPIRE_MINUTES", "15")]).await;
    short.register("ada").await;
    let (access, _) = short.login("ada").await;
    let claims = jwt_claims(&access);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        15 * 60
    );
}

async fn refresh_tokens_api_keys_and_passwords_are_not_stored_in_plain_text(backend: Backend) {
    let server = start(backend.clone()).await;
    server.register("ada").await;
    let (access, refresh) = server.login("ada").await;
    let key = server
        .api_key(&access, json!({"name": "laptop"}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = server.stored_data().await;
    assert!(stored.len() > 256, "the stored data was read");
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    for secret in [refresh.as_str(), key.as_str(), "correct horse"] {
        assert!(
            !contains(secret.as_bytes()),
            "{secret} is stored in plain text"
        );
    }
    // What is stored is the SHA-256 digest of the secret (raw in SQLite, hex in a dump).
    let digest = portcullis::token::TokenDigest::of(&key);
    assert!(contains(digest.as_bytes()) || contains(digest.to_hex().as_bytes()));
}

/// Instantiates each named `async fn(Backend)` test once per backend: SQLite, and PostgreSQL
/// (which fails under `CI=true` when no server is given). Also used by the submodules below.
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
                    let Some(server) = crate::common::postgres_url() else { return };
                    super::$test(super::Backend::Postgres(server)).await;
                }
            )*
        }
    };
}

on_every_backend!(
    register_returns_the_user_and_the_first_user_becomes_superuser,
    register_rejects_bad_input_with_clear_details,
    malformed_bodies_get_4xx_json_never_500,
    login_returns_a_bearer_pair_and_records_the_login,
    wrong_username_and_wrong_password_are_indistinguishable,
    refresh_rotates_and_reuse_revokes_the_family,
    refresh_takes_the_token_from_the_query_too,
    a_refresh_token_is_not_an_access_token_and_vice_versa,
    logout_revokes_one_session_or_all_of_them,
    me_requires_a_valid_bearer_credential,
    a_deactivated_user_is_rejected_on_every_path_including_earlier_tokens,
    api_keys_are_shown_once_listed_without_secrets_and_revoked_softly,
    another_users_key_cannot_be_seen_or_revoked,
    at_most_twenty_active_keys_per_user,
    key_creation_is_limited_per_user_as_upstream_does,
    key_names_are_unique_per_owner_whatever_their_case,
    a_key_from_before_uuids_is_listed_and_revocable,
    api_key_permissions_limit_what_the_key_can_do,
    collections_are_isolated_per_owner_and_visible_to_the_superuser,
    the_internal_api_needs_the_internal_key,
    the_websocket_authenticates_in_the_handshake_as_semantiks_clients_expect,
    cors_allows_only_configured_origins,
    concurrent_refreshes_over_http_succeed_exactly_once,
    random_bodies_on_every_endpoint_never_produce_a_5xx,
    access_tokens_live_24_hours_unless_configured_otherwise,
    refresh_tokens_api_keys_and_passwords_are_not_stored_in_plain_text,
    the_openapi_document_lists_every_route,
);

#[path = "semantik/attacks.rs"]
mod attacks;

#[path = "semantik/hardening.rs"]
mod hardening;

/// Two Semantik instances behind a load balancer, on one PostgreSQL database: a key deleted
/// through one stops working on the other within a second, over NOTIFY or over Redis.
async fn two_instances_share_revocations(redis: Option<String>) {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let schema = common::PgSchema::create(&server).await;
    // Instances of one deployment share the database and the JWT secret.
    let mut settings = vec![
        ("DATABASE_URL", schema.url.clone()),
        (
            "JWT_SECRET",
            "a-shared-secret-of-at-least-32-bytes!".to_owned(),
        ),
    ];
    let prefix = common::redis_prefix();
    if let Some(redis) = &redis {
        settings.push(("REDIS_URL", redis.clone()));
        settings.push(("REDIS_PREFIX", prefix.clone()));
    }
    let settings: Vec<(&'static str, &str)> =
        settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = start_with(Backend::Sqlite, &settings).await;
    let b = start_with(Backend::Sqlite, &settings).await;
    // Both instances subscribe asynchronously; give them a moment (the cache is bypassed
    // until then, so correctness does not depend on it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.register("ada").await;
    let (access, _) = b.login("ada").await;
    let created = b.api_key(&access, json!({"name": "shared"})).await;
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(
            b.get("/api/auth/me", Some(&key)).await.status,
            StatusCode::OK
        );
    }
    let id = created.body["id"].as_str().unwrap();
    let revoked = a.set_key_active(&access, id, false).await;
    assert_eq!(revoked.status, StatusCode::OK);
    let started = std::time::Instant::now();
    while b.get("/api/auth/me", Some(&key)).await.status == StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "instance B still accepts the deleted key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{} bus: deleted key refused by the other instance after {:?}",
        if redis.is_some() { "Redis" } else { "NOTIFY" },
        started.elapsed()
    );
    if let Some(redis) = &redis {
        common::redis_delete_prefix(redis, &prefix).await;
    }
    drop(schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_share_revocations_over_notify() {
    two_instances_share_revocations(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_revocations_over_redis() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    two_instances_share_revocations(Some(redis)).await;
}

async fn login_attempt(server: &Server, password: &str) -> Reply {
    server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "ada", "password": password}),
        )
        .await
}

async fn login_is_rate_limited_per_address(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    for remaining in (0..10).rev() {
        let reply = login_attempt(&server, "correct horse").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["ratelimit-policy"], "\"login\";q=10;w=60");
        assert!(
            reply.headers["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with(&format!("\"login\";r={remaining};"))
        );
    }
    let refused = login_attempt(&server, "correct horse").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.detail(), "Too many requests");
    assert_eq!(refused.headers["retry-after"], "6");
    // Other endpoints have their own budgets.
    assert_eq!(server.register("bob").await["username"], "bob");
}

async fn failed_logins_back_off_per_account(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    server.register("bob").await;
    for _ in 0..5 {
        assert_eq!(
            login_attempt(&server, "wrong horse").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password waits now: the throttle answers before the password is checked.
    let throttled = login_attempt(&server, "correct horse").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled.detail(),
        "Too many failed login attempts; try again in 1 seconds"
    );
    assert_eq!(throttled.headers["retry-after"], "1");
    // Another account is unaffected.
    let bob = server
        .post(
            "/api/auth/login",
            None,
            json!({"username": "bob", "password": "correct horse"}),
        )
        .await;
    assert_eq!(bob.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        login_attempt(&server, "correct horse").await.status,
        StatusCode::OK
    );
}

async fn authenticated_requests_carry_the_per_user_limit(backend: Backend) {
    let server = start(backend).await;
    server.register("ada").await;
    let (access, _) = server.login("ada").await;
    let reply = server.get("/api/collections", Some(&access)).await;
    assert_eq!(reply.headers["ratelimit-policy"], "\"api\";q=600;w=60");
    let anonymous = server.get("/api/collections", None).await;
    assert!(
        anonymous.headers.get("ratelimit").is_none(),
        "anonymous requests are not counted per user"
    );
}

mod limits {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_is_rate_limited_per_address_on_sqlite() {
        super::login_is_rate_limited_per_address(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_logins_back_off_per_account_on_sqlite() {
        super::failed_logins_back_off_per_account(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authenticated_requests_carry_the_per_user_limit_on_sqlite() {
        super::authenticated_requests_carry_the_per_user_limit(Backend::Sqlite).await;
    }

    /// Two instances behind a load balancer share the login limit through Redis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_the_login_limit_through_redis() {
        let (Some(postgres), Some(redis)) = (common::postgres_url(), common::redis_url()) else {
            return;
        };
        let schema = common::PgSchema::create(&postgres).await;
        let prefix = common::redis_prefix();
        let settings = [
            ("DATABASE_URL", schema.url.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("REDIS_PREFIX", prefix.as_str()),
            ("JWT_SECRET", "a-shared-secret-of-at-least-32-bytes!"),
        ];
        let a = start_with(Backend::Sqlite, &settings).await;
        let b = start_with(Backend::Sqlite, &settings).await;
        a.register("ada").await;
        let mut statuses = Vec::new();
        for n in 0..12 {
            let server = if n % 2 == 0 { &a } else { &b };
            statuses.push(login_attempt(server, "correct horse").await.status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            10,
            "{statuses:?}"
        );
        assert!(
            statuses[10..]
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        );
        common::redis_delete_prefix(&redis, &prefix).await;
        drop(schema);
    }
}
