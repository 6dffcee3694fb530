//! The Khoj example over real HTTP, on a real SQLite file (and PostgreSQL for the sign-in
//! round trip), with sign-in mail read back from a real SMTP sink: every route, its
//! refusals, and the attacks a sign-in by mail invites.

#[path = "../../../tests/common/mod.rs"]
mod common;

use khoj as app;

use std::collections::HashMap;

use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The public address links are built from: never the request's `Host`.
const DOMAIN: &str = "khoj.example.com";

struct Server {
    base: String,
    client: reqwest::Client,
    maildir: std::path::PathBuf,
    config: app::Config,
    state: app::AppState,
    /// The messages already read, so that each read takes the next one.
    read: std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>,
    _dir: tempfile::TempDir,
    _schema: Option<common::PgSchema>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {:?}", self.text))
    }

    fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// The session cookie this reply sets, as `name=value`.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap())
            .find(|cookie| cookie.starts_with("__Host-khoj=") && !cookie.contains("Max-Age=0"))
            .map(|cookie| cookie.split(';').next().unwrap().to_owned())
    }
}

async fn start(extra: &[(&'static str, &str)]) -> Option<Server> {
    start_on(None, extra).await
}

async fn start_on(postgres: Option<&str>, extra: &[(&'static str, &str)]) -> Option<Server> {
    let (sink, maildir) = common::smtp_sink()?;
    let dir = tempfile::tempdir().unwrap();
    let schema = match postgres {
        Some(server) => Some(common::PgSchema::create(server).await),
        None => None,
    };
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("SMTP_URL", format!("smtp://{sink}")),
        ("SMTP_FROM", "Khoj <login@khoj.example.com>".to_owned()),
        ("KHOJ_DOMAIN", DOMAIN.to_owned()),
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
    let public_url = config.public_url.clone().unwrap();
    let (router, state) = app::build(&config, &public_url).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, router));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some(Server {
        base,
        client,
        maildir,
        config,
        state,
        read: Default::default(),
        _dir: dir,
        _schema: schema,
    })
}

/// `/auth/magic` with `query` form-encoded, as a link carries it.
fn magic_path(query: &[(&str, &str)]) -> String {
    format!(
        "/auth/magic?{}",
        serde_urlencoded::to_string(query).unwrap()
    )
}

impl Server {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and reads the reply; no reply may be a 5xx.
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let reply = Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        };
        assert!(
            !reply.status.is_server_error(),
            "{} {}",
            reply.status,
            reply.text
        );
        reply
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// The next raw message the sink delivered to `to`, waiting up to
    /// 10 s for it.
    async fn next_mail(&self, to: &str) -> String {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(10) {
            let mut entries: Vec<_> = std::fs::read_dir(self.maildir.join("new"))
                .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
                .unwrap_or_default();
            entries.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
            for path in entries {
                if self.read.lock().unwrap().contains(&path) {
                    continue;
                }
                let raw = std::fs::read_to_string(&path).unwrap_or_default();
                if raw.contains(&format!("To: {to}")) {
                    self.read.lock().unwrap().insert(path);
                    return raw;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no new message to {to} reached the sink within 10 s");
    }

    async fn ask_for_code(&self, email: &str) -> Reply {
        let request = self.request(Method::POST, "/auth/magic");
        self.send(request.json(&json!({ "email": email }))).await
    }

    /// Asks for a code for `email` and reads it, and the link, from the delivered mail.
    async fn mailed_code(&self, email: &str) -> (String, String) {
        let reply = self.ask_for_code(email).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(reply.text.is_empty());
        let raw = self.next_mail(email).await;
        assert!(raw.contains("Subject: Your login code to Khoj"), "{raw}");
        let text = common::mail::unquote(&raw);
        let start = text.find("https://").expect("a link in the mail");
        let link: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
            .collect();
        let code = link
            .split("code=")
            .nth(1)
            .unwrap()
            .chars()
            .take(6)
            .collect();
        (code, link)
    }

    async fn verify(&self, email: &str, code: &str) -> Reply {
        let query = [("code", code), ("email", email)];
        self.send(self.request(Method::GET, &magic_path(&query)))
            .await
    }

    /// Signs `email` in by mail; the session cookie as `name=value`.
    async fn sign_in(&self, email: &str) -> String {
        let (code, _) = self.mailed_code(email).await;
        let reply = self.verify(email, &code).await;
        assert_eq!(
            reply.status,
            StatusCode::TEMPORARY_REDIRECT,
            "{}",
            reply.text
        );
        assert_eq!(reply.location(), "/");
        reply.session_cookie().expect("a session cookie")
    }

    async fn with_cookie(&self, method: Method, path: &str, cookie: &str) -> Reply {
        self.send(self.request(method, path).header(COOKIE, cookie))
            .await
    }

    async fn with_key(&self, method: Method, path: &str, key: &str) -> Reply {
        self.send(self.request(method, path).bearer_auth(key)).await
    }
}

async fn sign_in_by_mail_on(postgres: Option<&str>) {
    let Some(server) = start_on(postgres, &[]).await else {
        return;
    };
    let email = common::mail::recipient("ada");
    let (code, link) = server.mailed_code(&email).await;
    assert_eq!(code.len(), 6);
    assert!(
        link.starts_with(&format!("https://{DOMAIN}/auth/magic?code={code}&email=")),
        "{link}"
    );
    let reply = server.verify(&email, &code).await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    let set_cookie = reply.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    for flag in [
        "__Host-khoj=khs_",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(
            set_cookie.contains(flag),
            "{flag} missing from {set_cookie}"
        );
    }
    let cookie = reply.session_cookie().unwrap();
    let user = server
        .with_cookie(Method::GET, "/api/v1/user", &cookie)
        .await;
    assert_eq!(user.status, StatusCode::OK);
    let user = user.json();
    assert_eq!(user["email"], email.as_str());
    for field in [
        "username",
        "photo",
        "is_active",
        "has_documents",
        "khoj_version",
    ] {
        assert!(user.get(field).is_some(), "{field} missing from {user}");
    }
    // The link is single use: a replay is no longer the code (401, as Khoj answers it).
    let replay = server.verify(&email, &code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.session_cookie().is_none());
}

#[tokio::test]
async fn a_mailed_code_signs_in_once_with_a_hardened_cookie_on_sqlite() {
    sign_in_by_mail_on(None).await;
}

#[tokio::test]
async fn a_mailed_code_signs_in_once_with_a_hardened_cookie_on_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    sign_in_by_mail_on(Some(&url)).await;
}

#[tokio::test]
async fn links_use_the_configured_domain_whatever_host_the_request_names() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let email = common::mail::recipient("host");
    let request = server
        .request(Method::POST, "/auth/magic")
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("Forwarded", "host=evil.example;proto=https")
        .json(&json!({ "email": email }));
    assert_eq!(server.send(request).await.status, StatusCode::OK);
    let raw = common::mail::unquote(&server.next_mail(&email).await);
    assert!(!raw.contains("evil.example"), "{raw}");
    assert!(raw.contains(&format!("https://{DOMAIN}/auth/magic?code=")));
}

#[tokio::test]
async fn wrong_expired_and_guessed_codes_never_sign_in() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let email = common::mail::recipient("guess");
    let (code, _) = server.mailed_code(&email).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let reply = server.verify(&email, wrong).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.session_cookie().is_none());
    // Five wrong guesses in all kill the code: the right one is refused after them.
    for _ in 0..4 {
        assert_eq!(
            server.verify(&email, wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let dead = server.verify(&email, &code).await;
    assert_eq!(dead.status, StatusCode::UNAUTHORIZED, "{}", dead.text);
    assert!(dead.session_cookie().is_none());
    // A new request makes a new code, and the older one stays dead.
    let (fresh, _) = server.mailed_code(&email).await;
    if fresh != code {
        assert_ne!(
            server.verify(&email, &code).await.status,
            StatusCode::TEMPORARY_REDIRECT
        );
    }
    assert_eq!(
        server.verify(&email, &fresh).await.status,
        StatusCode::TEMPORARY_REDIRECT
    );
    // Malformed input is a clear 4xx.
    let missing = server.get("/auth/magic?email=a@example.com").await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!missing.detail().is_empty());
    for code in ["", "12345", "abcdef", "1234567", &"9".repeat(5000)] {
        let reply = server.verify(&email, code).await;
        assert!(reply.status.is_client_error(), "{code:?}: {}", reply.status);
    }
}

#[tokio::test]
async fn an_expired_code_is_403() {
    let Some(server) = start(&[("KHOJ_MAGIC_LINK_LIFETIME_SECONDS", "1")]).await else {
        return;
    };
    let email = common::mail::recipient("expired");
    let (code, _) = server.mailed_code(&email).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = server.verify(&email, &code).await;
    assert_eq!(expired.status, StatusCode::FORBIDDEN, "{}", expired.text);
    assert!(expired.detail().contains("expired"));
    assert!(expired.session_cookie().is_none());
}

#[tokio::test]
async fn one_code_used_at_once_signs_in_exactly_once() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let email = common::mail::recipient("race");
    let (code, _) = server.mailed_code(&email).await;
    let attempts = (0..8).map(|_| server.verify(&email, &code));
    let replies = futures_util::future::join_all(attempts).await;
    let winners = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::TEMPORARY_REDIRECT)
        .count();
    assert_eq!(
        winners,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn limits_answer_429_with_khojs_messages() {
    let Some(server) = start(&[
        ("KHOJ_MAGIC_LINK_REQUESTS_PER_DAY", "2"),
        ("KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY", "3"),
    ])
    .await
    else {
        return;
    };
    let email = common::mail::recipient("limits");
    for _ in 0..2 {
        assert_eq!(server.ask_for_code(&email).await.status, StatusCode::OK);
    }
    let over = server.ask_for_code(&email).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        over.detail(),
        "Too many requests for your email address. Please wait before trying again."
    );
    assert!(over.headers.contains_key("retry-after"));
    for _ in 0..3 {
        assert_eq!(
            server.verify(&email, "000000").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let out = server.verify(&email, "000000").await;
    assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        out.detail(),
        "Ran out of login attempts. Please wait before trying again."
    );
}

#[tokio::test]
async fn one_client_address_is_limited_per_hour() {
    let Some(server) = start(&[("KHOJ_AUTH_REQUESTS_PER_HOUR", "3")]).await else {
        return;
    };
    for n in 0..3 {
        let email = format!("flood{n}@example.com");
        assert_eq!(server.ask_for_code(&email).await.status, StatusCode::OK);
    }
    let over = server.ask_for_code("flood9@example.com").await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn bad_addresses_and_bodies_are_clear_4xx() {
    let Some(server) = start(&[]).await else {
        return;
    };
    for email in [
        "",
        "ada",
        "ada@",
        "a b@example.com",
        "ada@example.com\r\nBcc: eve@example.com",
    ] {
        let reply = server.ask_for_code(email).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{email:?}");
        assert_eq!(
            reply.detail(),
            "Invalid email address. Please fix before trying again."
        );
    }
    for body in [
        "",
        "{",
        "[]",
        "{\"email\": 7}",
        "{\"mail\": \"a@example.com\"}",
    ] {
        let request = server
            .request(Method::POST, "/auth/magic")
            .header("content-type", "application/json")
            .body(body);
        let reply = server.send(request).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
        assert!(!reply.detail().is_empty());
    }
    let huge = json!({ "email": "a".repeat(64 * 1024) });
    let reply = server
        .send(server.request(Method::POST, "/auth/magic").json(&huge))
        .await;
    assert!(reply.status.is_client_error());
}

#[tokio::test]
async fn without_auto_creation_an_unknown_address_is_not_found() {
    let Some(server) = start(&[("KHOJ_AUTO_CREATE_USERS", "false")]).await else {
        return;
    };
    let email = common::mail::recipient("nobody");
    // The request itself tells nothing.
    assert_eq!(server.ask_for_code(&email).await.status, StatusCode::OK);
    let reply = server.verify(&email, "123456").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.detail(), "User not found.");
}

#[tokio::test]
async fn a_session_id_planted_before_sign_in_is_never_the_one_kept() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let email = common::mail::recipient("fixation");
    let first = server.sign_in(&email).await;
    let (code, _) = server.mailed_code(&email).await;
    let request = server
        .request(
            Method::GET,
            &magic_path(&[("code", code.as_str()), ("email", email.as_str())]),
        )
        .header(COOKIE, &first);
    let reply = server.send(request).await;
    let second = reply.session_cookie().unwrap();
    assert_ne!(first, second);
    let old = server
        .with_cookie(Method::GET, "/api/v1/user", &first)
        .await;
    assert_eq!(old.status, StatusCode::FORBIDDEN);
    let new = server
        .with_cookie(Method::GET, "/api/v1/user", &second)
        .await;
    assert_eq!(new.status, StatusCode::OK);
}

#[tokio::test]
async fn next_is_honoured_only_on_this_site() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let email = common::mail::recipient("next");
    let (code, _) = server.mailed_code(&email).await;
    let query = [
        ("code", code.as_str()),
        ("email", email.as_str()),
        ("next", "//evil.example"),
    ];
    let reply = server
        .send(server.request(Method::GET, &magic_path(&query)))
        .await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.location(), "/");
    for next in [
        "https://evil.example/",
        "/\\evil.example",
        "/%2F/evil.example",
    ] {
        let (code, _) = server.mailed_code(&email).await;
        let query = [
            ("code", code.as_str()),
            ("email", email.as_str()),
            ("next", next),
        ];
        let reply = server
            .send(server.request(Method::GET, &magic_path(&query)))
            .await;
        assert_eq!(reply.location(), "/", "{next}");
    }
    // A local next survives the mail: the form's next comes back in the link.
    let email = common::mail::recipient("next-local");
    let form = format!(
        "email={}&next=%2Fsettings%3Ftab%3Dkeys",
        email.replace('@', "%40")
    );
    let request = server
        .request(Method::POST, "/auth/magic")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    let sent = server.send(request).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert!(
        sent.location().starts_with("/login?email="),
        "{}",
        sent.location()
    );
    let raw = common::mail::unquote(&server.next_mail(&email).await);
    assert!(raw.contains("next=%2Fsettings%3Ftab%3Dkeys"), "{raw}");
    let code: String = raw.split("code=").nth(1).unwrap().chars().take(6).collect();
    let query = [
        ("code", code.as_str()),
        ("email", email.as_str()),
        ("next", "/settings?tab=keys"),
    ];
    let reply = server
        .send(server.request(Method::GET, &magic_path(&query)))
        .await;
    assert_eq!(reply.location(), "/settings?tab=keys");
}

#[tokio::test]
async fn api_keys_need_a_session_to_create_and_outlive_it() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let unauthenticated = server
        .send(server.request(Method::POST, "/auth/token"))
        .await;
    assert_eq!(unauthenticated.status, StatusCode::SEE_OTHER);
    assert_eq!(unauthenticated.location(), "/login?next=%2Fauth%2Ftoken");
    assert_eq!(
        server.get("/auth/token").await.status,
        StatusCode::SEE_OTHER
    );

    let email = common::mail::recipient("keys");
    let cookie = server.sign_in(&email).await;
    let created = server
        .with_cookie(Method::POST, "/auth/token?token_name=My%20Desktop", &cookie)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let created = created.json();
    let key = created["token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("kk-"));
    assert_eq!(created["name"], "My Desktop");
    // Names no person gives (found by the khoj_requests fuzz target: a NUL was a 503).
    for name in ["%00", "a%7F", "v%0Bt", &"x".repeat(101)] {
        let path = format!("/auth/token?token_name={name}");
        let refused = server.with_cookie(Method::POST, &path, &cookie).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
    }
    let form = server
        .request(Method::POST, "/settings/keys")
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Lzapt%7F%00o%0B");
    assert_eq!(
        server.send(form).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let unnamed = server
        .with_cookie(Method::POST, "/auth/token", &cookie)
        .await
        .json();
    let random_name = unnamed["name"].as_str().unwrap();
    assert!(
        random_name.contains(' ') && !random_name.is_empty(),
        "{random_name}"
    );

    let user = server.with_key(Method::GET, "/api/v1/user", &key).await;
    assert_eq!(user.json()["email"], email.as_str());
    // A key may list and delete keys, never mint one.
    let minted = server.with_key(Method::POST, "/auth/token", &key).await;
    assert_eq!(minted.status, StatusCode::FORBIDDEN);
    server.state.auth.flush_last_used().await.unwrap();
    let listed = server.with_key(Method::GET, "/auth/token", &key).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text.contains(&key), "a listing shows no secret");
    let keys = listed.json();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0]["accessed_at"].is_string(),
        "{keys:?}: the key's use is recorded"
    );
    assert!(keys[0]["created_at"].is_string());

    // Signing out ends the session everywhere; the key stays.
    let out = server
        .with_cookie(Method::GET, "/auth/logout", &cookie)
        .await;
    assert_eq!(out.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(out.location(), "/");
    let after = server
        .with_cookie(Method::GET, "/api/v1/user", &cookie)
        .await;
    assert_eq!(after.status, StatusCode::FORBIDDEN);
    assert_eq!(after.detail(), "Forbidden");
    assert_eq!(
        server
            .with_key(Method::GET, "/api/v1/user", &key)
            .await
            .status,
        StatusCode::OK
    );

    // Deleting by id (from the listing) and by the key itself.
    let other_id = keys[1]["id"].as_str().unwrap();
    let by_id = server
        .with_key(
            Method::DELETE,
            &format!("/auth/token?token={other_id}"),
            &key,
        )
        .await;
    assert_eq!(by_id.status, StatusCode::OK);
    let again = server
        .with_key(
            Method::DELETE,
            &format!("/auth/token?token={other_id}"),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let by_key = server
        .with_key(Method::DELETE, &format!("/auth/token?token={key}"), &key)
        .await;
    assert_eq!(by_key.status, StatusCode::OK);
    assert_eq!(
        server
            .with_key(Method::GET, "/api/v1/user", &key)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn every_unsafe_route_refuses_another_site_using_the_session() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let cookie = server.sign_in(&common::mail::recipient("csrf")).await;
    for (method, path) in [
        (Method::POST, "/auth/token"),
        (Method::DELETE, "/auth/token?token=1"),
        (Method::POST, "/settings/keys"),
        (Method::POST, "/settings/keys/delete"),
    ] {
        let request = server
            .request(method.clone(), path)
            .header(COOKIE, &cookie)
            .header("Origin", "https://evil.example")
            .header("Sec-Fetch-Site", "cross-site");
        let reply = server.send(request).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let listed = server
        .with_cookie(Method::GET, "/auth/token", &cookie)
        .await;
    assert_eq!(listed.json(), json!([]), "nothing was created");
}

#[tokio::test]
async fn a_client_application_acts_for_the_user_of_a_verified_number_on_sqlite() {
    client_application_on(None).await;
}

#[tokio::test]
async fn a_client_application_acts_for_the_user_of_a_verified_number_on_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    client_application_on(Some(&url)).await;
}

async fn client_application_on(postgres: Option<&str>) {
    let Some(server) = start_on(postgres, &[]).await else {
        return;
    };
    let command = app::CreateClient::parse(["--name".to_owned(), "whatsapp".to_owned()]).unwrap();
    let (client, secret) = app::create_client(&server.config, command).await.unwrap();
    let secret = secret.secret().expose().to_owned();
    let path = |query: &str| format!("/api/v1/user?client_id={}{query}", client.client_id);

    let missing = server.get(&path("&phone_number=15551234567")).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(missing.headers.contains_key("www-authenticate"));
    let wrong = server
        .with_key(Method::GET, &path("&phone_number=15551234567"), "kcs_wrong")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown_client = server
        .with_key(
            Method::GET,
            "/api/v1/user?client_id=nope&phone_number=1555",
            &secret,
        )
        .await;
    assert_eq!(unknown_client.status, StatusCode::UNAUTHORIZED);
    // An id no store could hold is unknown, never a store failure (PostgreSQL refuses a NUL).
    let nul_id = "/api/v1/user?client_id=a%00b&phone_number=15551234567";
    assert_eq!(
        server.with_key(Method::GET, nul_id, &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let no_number = server.with_key(Method::GET, &path(""), &secret).await;
    assert_eq!(no_number.status, StatusCode::BAD_REQUEST);
    let bad_number = server
        .with_key(Method::GET, &path("&phone_number=call-me"), &secret)
        .await;
    assert_eq!(bad_number.status, StatusCode::BAD_REQUEST);
    let unknown_number = server
        .with_key(Method::GET, &path("&phone_number=15551234567"), &secret)
        .await;
    assert_eq!(unknown_number.status, StatusCode::UNAUTHORIZED);

    let created = server
        .with_key(
            Method::GET,
            &path("&phone_number=15551234567&create_if_not_exists=true"),
            &secret,
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json()["username"], "+15551234567");
    // With or without the `+` (which a query string turns into a space), the same user.
    for number in ["%2B15551234567", "+15551234567", "15551234567"] {
        let reply = server
            .with_key(
                Method::GET,
                &path(&format!("&phone_number={number}")),
                &secret,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{number}");
        assert_eq!(reply.json()["username"], "+15551234567");
    }
    // A client's identity is not a sign-in: it cannot mint API keys.
    let minted = server
        .with_key(
            Method::POST,
            &path("&phone_number=15551234567").replace("/api/v1/user", "/auth/token"),
            &secret,
        )
        .await;
    assert_eq!(minted.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unauthenticated_callers_get_khojs_answers() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let user = server.get("/api/v1/user?client=desktop").await;
    assert_eq!(user.status, StatusCode::FORBIDDEN);
    assert_eq!(user.json(), json!({ "detail": "Forbidden" }));
    let health = server.get("/api/health").await;
    assert_eq!(
        (health.status, health.json()),
        (StatusCode::OK, json!({ "detail": "OK" }))
    );
    let bad_key = server
        .with_key(Method::GET, "/api/v1/user", "kk-not-a-key")
        .await;
    assert_eq!(bad_key.status, StatusCode::UNAUTHORIZED);
    let metadata = server.get("/auth/oauth/metadata").await;
    assert_eq!(metadata.json(), json!({ "google": null }));
    let page = server
        .send(
            server
                .request(Method::GET, "/settings")
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fsettings");
    assert_eq!(server.get("/nowhere").await.status, StatusCode::NOT_FOUND);
    let openapi = server.get("/openapi.json").await.json();
    assert!(openapi["paths"]["/auth/magic"].is_object());
}

#[tokio::test]
async fn the_login_page_works_without_javascript() {
    let Some(server) = start(&[]).await else {
        return;
    };
    let page = server.get("/login?next=%2Fsettings").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!page.text.contains("<script"));
    assert!(page.text.contains("action=\"/auth/magic\"") && page.text.contains("Send magic link"));
    assert!(page.text.contains("name=\"next\" value=\"/settings\""));

    let email = common::mail::recipient("page");
    let form = format!("email={}&next=%2Fsettings", email.replace('@', "%40"));
    let sent = server
        .send(
            server
                .request(Method::POST, "/auth/magic")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let code_page = server.get(sent.location()).await;
    assert!(
        code_page.text.contains("autocomplete=\"one-time-code\""),
        "{}",
        code_page.text
    );
    assert!(code_page.text.contains(&email));
    let wrong = server
        .send(
            server
                .request(
                    Method::GET,
                    &magic_path(&[("code", "000000"), ("email", email.as_str())]),
                )
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.text.contains("role=\"alert\"") && wrong.text.contains("not right"),
        "{}",
        wrong.text
    );
    let escaped = server
        .get("/login?email=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
    assert!(!escaped.text.contains("<script>"));

    // The settings page creates a key and shows its secret once.
    let cookie = server.sign_in(&common::mail::recipient("settings")).await;
    let created = server
        .send(
            server
                .request(Method::POST, "/settings/keys")
                .header(COOKIE, &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=Laptop"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(
        created.text.contains("id=\"new-key\">kk-"),
        "{}",
        created.text
    );
    let settings = server.with_cookie(Method::GET, "/settings", &cookie).await;
    assert!(settings.text.contains("Laptop") && !settings.text.contains("kk-"));
}

#[tokio::test]
async fn khojs_clients_may_call_with_credentials_and_other_sites_may_not() {
    let Some(server) = start(&[]).await else {
        return;
    };
    for origin in [
        "app://obsidian.md",
        "http://localhost:42110",
        "capacitor://localhost",
        "https://khoj.example.com",
    ] {
        let request = server
            .request(Method::OPTIONS, "/api/v1/user")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization");
        let reply = server.send(request).await;
        assert_eq!(reply.headers["access-control-allow-origin"], origin);
        assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    }
    let request = server
        .request(Method::OPTIONS, "/api/v1/user")
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET");
    let reply = server.send(request).await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn anonymous_mode_is_one_default_user_and_no_sign_in() {
    let Some(server) = start(&[("KHOJ_ANONYMOUS_MODE", "true")]).await else {
        return;
    };
    let user = server.get("/api/v1/user").await;
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(user.json()["email"], "default@example.com");
    assert_eq!(user.json()["username"], "default");
    let with_token = server
        .with_key(Method::GET, "/api/v1/user", "kk-whatever")
        .await;
    assert_eq!(with_token.json()["email"], "default@example.com");
    assert_eq!(
        server.ask_for_code("ada@example.com").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/auth/token").await.status,
        StatusCode::NOT_FOUND
    );
    let login = server.get("/login").await;
    assert_eq!(
        (login.status, login.location()),
        (StatusCode::SEE_OTHER, "/")
    );
}

#[tokio::test]
async fn without_a_provider_the_oidc_routes_are_not_found() {
    let Some(server) = start(&[]).await else {
        return;
    };
    assert_eq!(
        server.get("/auth/login").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/auth/redirect?code=x&state=y").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        !server
            .get("/login")
            .await
            .text
            .contains("Continue with Google")
    );
}

#[tokio::test]
async fn the_oidc_routes_redirect_to_the_provider_and_refuse_forged_callbacks() {
    let redirect = format!("https://{DOMAIN}/auth/redirect");
    let secret = "khoj-client-secret-0123456789";
    let Some(provider) = common::oidc_provider("khoj-web", secret, &redirect).await else {
        return;
    };
    let Some(server) = start(&[
        ("OIDC_ISSUER", &provider.issuer),
        ("OIDC_CLIENT_ID", "khoj-web"),
        ("OIDC_CLIENT_SECRET", secret),
    ])
    .await
    else {
        return;
    };
    let begun = server.get("/auth/login?next=%2Fsettings").await;
    assert_eq!(begun.status, StatusCode::FOUND);
    let location = begun.location();
    assert!(
        location.starts_with(&format!("{}/auth?", provider.issuer)),
        "{location}"
    );
    assert!(location.contains("code_challenge_method=S256") && location.contains("nonce="));
    assert!(location.contains("redirect_uri=https%3A%2F%2Fkhoj.example.com%2Fauth%2Fredirect"));
    let cookie = begun.headers[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-portcullis-oidc=") && cookie.contains("Secure"),
        "{cookie}"
    );
    // A forged callback, with or without the browser's cookie: back to the login page.
    let pair = cookie.split(';').next().unwrap().to_owned();
    for request in [
        server.request(Method::GET, "/auth/redirect?code=x&state=ots_forged"),
        server
            .request(Method::GET, "/auth/redirect?code=x&state=ots_forged")
            .header(COOKIE, &pair),
        server.request(Method::GET, "/auth/redirect"),
    ] {
        let reply = server.send(request).await;
        assert_eq!(reply.status, StatusCode::FOUND);
        assert_eq!(reply.location(), "/login?error=invalid_state");
        assert!(reply.session_cookie().is_none());
        let removal = reply.headers[SET_COOKIE].to_str().unwrap();
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }
    // Google One Tap: the ID token posted, behind Google's double-submit CSRF token.
    let token = provider
        .id_token("khoj-web", secret, &redirect, "onetap@example.com")
        .await;
    let one_tap = |cookie: Option<&str>, posted: &str, credential: &str| {
        let mut request = server
            .request(Method::POST, "/auth/redirect")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("credential={credential}&g_csrf_token={posted}"));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("g_csrf_token={cookie}"));
        }
        request
    };
    for (cookie, posted) in [(None, "abc"), (Some("abc"), "abd"), (Some(""), "")] {
        let reply = server.send(one_tap(cookie, posted, &token)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{cookie:?} {posted}");
        assert_eq!(reply.detail(), "Invalid CSRF token");
    }
    let forged = server
        .send(one_tap(Some("abc"), "abc", "not.a.token"))
        .await;
    assert_eq!(forged.location(), "/login?error=invalid_token");
    assert!(forged.session_cookie().is_none());
    let signed_in = server.send(one_tap(Some("abc"), "abc", &token)).await;
    assert_eq!(
        (signed_in.status, signed_in.location()),
        (StatusCode::FOUND, "/")
    );
    let cookie = signed_in.session_cookie().unwrap();
    let user = server
        .with_cookie(Method::GET, "/api/v1/user", &cookie)
        .await;
    assert_eq!(user.json()["email"], "onetap@example.com");

    let metadata = server.get("/auth/oauth/metadata").await.json();
    assert_eq!(metadata["google"]["client_id"], "khoj-web");
    assert!(
        server
            .get("/login")
            .await
            .text
            .contains("Continue with Google")
    );
}

#[tokio::test]
async fn plain_http_links_need_khoj_no_https_to_be_said() {
    let Some(server) = start(&[
        ("KHOJ_DOMAIN", "192.168.1.10:42110"),
        ("KHOJ_NO_HTTPS", "true"),
    ])
    .await
    else {
        return;
    };
    let email = common::mail::recipient("lan");
    assert_eq!(server.ask_for_code(&email).await.status, StatusCode::OK);
    let raw = common::mail::unquote(&server.next_mail(&email).await);
    assert!(
        raw.contains("http://192.168.1.10:42110/auth/magic?code="),
        "{raw}"
    );
    // An http:// address to another machine, without the flag: refused at start-up.
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        ("KHOJ_DOMAIN", "http://192.168.1.10:42110".to_owned()),
    ]);
    let config = app::Config::from_env(|name| env.get(name).cloned()).unwrap();
    let refused = app::build(&config, config.public_url.as_deref().unwrap()).await;
    let error = refused.err().expect("refused").to_string();
    assert!(
        error.contains("KHOJ_DOMAIN") && error.contains("https"),
        "{error}"
    );
}
