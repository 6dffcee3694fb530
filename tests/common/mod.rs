//! Shared helpers for tests that need real services.
//!
//! `scripts/test.sh` starts PostgreSQL and Redis and exports their URLs. Outside CI a test
//! whose service is missing skips with a loud message; with `CI=true` it fails.

#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use portcullis::flows::PasswordLogin;
use portcullis::sign_in::{Refusal, SignInOutcome};
use portcullis::store::User;

pub mod example;
pub mod mail;
pub mod session_app;
pub mod stores;

fn service_url(variable: &str, service: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "{variable} is not set and CI=true: a test that needs {service} must fail, not skip"
            )
        }
        _ => {
            eprintln!("SKIPPED: {variable} is not set; run ./scripts/test.sh to start {service}");
            None
        }
    }
}

/// A password sign-in for an account without a second factor: the user, or the refusal.
pub async fn sign_in_with_password(
    login: &PasswordLogin,
    username: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<User, Refusal> {
    match login.sign_in(username, password, address).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => Ok(signed_in.into_user()),
        Ok(SignInOutcome::Refused(refusal)) => Err(refusal),
        Ok(_) => panic!("{username} has no second factor, yet one was asked for"),
        Err(error) => panic!("the sign-in failed: {error}"),
    }
}

/// The `n`th simulated client's address, for `X-Forwarded-For` behind a trusted proxy: each
/// client has its own, so that per-address limits stay out of the way of what is tested.
pub fn client_address(n: usize) -> String {
    format!("198.51.{}.{}", n / 250, n % 250 + 1)
}

/// Chromium and the directory holding Playwright's `node_modules`, for the browser tests.
pub fn browser() -> Option<(String, String)> {
    let chromium = service_url("PORTCULLIS_TEST_CHROMIUM", "Chromium")?;
    let playwright = service_url("PORTCULLIS_TEST_PLAYWRIGHT", "Playwright")?;
    Some((chromium, playwright))
}

/// Runs a browser script (`node <script> <args...>`, Playwright from `playwright`'s
/// `node_modules`) for at most three minutes, prints its report, and asserts that every one of
/// its `checks` checks ran and held.
pub async fn browser_checks(script: &str, args: &[&str], playwright: &str, checks: usize) {
    let run = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .env("NODE_PATH", playwright)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within three minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "a browser check failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), checks, "every check ran:\n{stdout}");
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    service_url("PORTCULLIS_TEST_POSTGRES_URL", "PostgreSQL")
}

/// The Redis server to test against, if any.
pub fn redis_url() -> Option<String> {
    service_url("PORTCULLIS_TEST_REDIS_URL", "Redis")
}

/// The SMTP sink to send to (`host:port`) and the maildir it delivers into, if any.
pub fn smtp_sink() -> Option<(String, std::path::PathBuf)> {
    let address = service_url("PORTCULLIS_TEST_SMTP", "an SMTP sink")?;
    let maildir = service_url("PORTCULLIS_TEST_SMTP_MAILDIR", "an SMTP sink")?;
    Some((address, maildir.into()))
}

/// A key prefix no other test uses, in one hash slot.
pub fn redis_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{{test-{}-{}-{}}}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    )
}

/// Deletes every key under `prefix` (a test's own keys) from the Redis server at `url`.
pub async fn redis_delete_prefix(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!(
        "{}*",
        prefix
            .replace('[', "\\[")
            .replace('{', "\\{")
            .replace('}', "\\}")
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// A fresh, empty schema on the test server, so tests running at once never see each other.
/// Dropped (with everything in it) when the value is.
pub struct PgSchema {
    pub url: String,
    pub name: String,
    server: String,
}

impl PgSchema {
    pub async fn create(server: &str) -> PgSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000
        );
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
        PgSchema {
            url,
            name,
            server: server.to_owned(),
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with a
        // runtime of its own.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&server)
                    .await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A TCP proxy in front of a real service, to cut and restore the network in a test.
pub struct Proxy {
    pub address: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    open: std::sync::atomic::AtomicBool,
    connections: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Proxy {
    /// Forwards a local port to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(ProxyState {
            open: std::sync::atomic::AtomicBool::new(true),
            connections: std::sync::Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !shared.open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                shared.connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { address, state }
    }

    /// Breaks every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.open.store(false, Ordering::SeqCst);
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (credentials, _) = authority
            .rsplit_once('@')
            .map_or(("", authority), |(c, h)| (c, h));
        let at = if credentials.is_empty() { "" } else { "@" };
        format!("{scheme}://{credentials}{at}{}/{path}", self.address)
    }
}

/// The `host:port` of a service URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

/// `user` signed in with a password at `auth`'s now: what a password sign-in hands to
/// `Sessions::start` and `RefreshTokens::issue`.
pub fn password_sign_in(
    auth: &portcullis::Auth,
    user: &portcullis::store::User,
) -> portcullis::sign_in::Authenticated {
    portcullis::sign_in::Authenticated::new(
        user.clone(),
        portcullis::assurance::Factor::Password,
        auth.now(),
    )
}

/// A running OpenID Connect provider (`tests/oidc/provider.mjs`), stopped when dropped.
pub struct OidcProvider {
    /// Its issuer identifier, `http://127.0.0.1:PORT`.
    pub issuer: String,
    _process: tokio::process::Child,
}

/// Starts an OpenID Connect provider with one client, `client_id` / `client_secret`, allowed
/// to be called back at `redirect_uri`; `None` (skipped) outside CI when it is not installed.
pub async fn oidc_provider(
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
) -> Option<OidcProvider> {
    use tokio::io::AsyncBufReadExt;
    let modules = service_url(
        "PORTCULLIS_TEST_OIDC_PROVIDER",
        "an OpenID Connect provider",
    )?;
    // The script sits in the repository's tests/, above whichever package runs the test.
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest
        .ancestors()
        .map(|dir| dir.join("tests/oidc/provider.mjs"))
        .find(|script| script.exists())
        .expect("tests/oidc/provider.mjs in the repository");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut process = tokio::process::Command::new("node")
        .arg(script)
        .args([&port.to_string(), client_id, client_secret, redirect_uri])
        .env("NODE_PATH", modules)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("listening on ") {
                return issuer.to_owned();
            }
        }
        panic!("the OpenID Connect provider exited before it listened");
    });
    let issuer = ready.await.expect("the provider listens within 30 s");
    // Read on, so that the provider never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(OidcProvider {
        issuer,
        _process: process,
    })
}

impl OidcProvider {
    /// An ID token for `login` issued to `client_id`, obtained as a browser-side client
    /// would (a PKCE round trip of its own through the login and consent pages), for the
    /// flows that take a bare ID token (Google One Tap).
    pub async fn id_token(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        login: &str,
    ) -> String {
        use base64::Engine as _;
        let verifier = "a-pkce-verifier-of-the-tests-own-choosing-0123456789";
        let digest = portcullis::token::TokenDigest::of(verifier);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_bytes());
        let redirect = percent_encode(redirect_uri);
        let authorize = format!(
            "{}/auth?client_id={client_id}&response_type=code&scope=openid%20email%20profile\
             &redirect_uri={redirect}&state=s&nonce=n&code_challenge={challenge}\
             &code_challenge_method=S256",
            self.issuer
        );
        let callback = self.sign_in(&authorize, login).await;
        let code = between(&format!("{callback}&"), "code=", "&").expect("a code");
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={verifier}"
        );
        let tokens: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client_id, Some(client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens["id_token"].as_str().expect("an ID token").to_owned()
    }

    /// Goes through the provider's development login and consent pages as `login` from
    /// `authorize_url`, as a browser would (cookies kept, forms posted), and returns the URL
    /// the provider sends the browser back to (`redirect_uri?code=…&state=…`), unfollowed.
    pub async fn sign_in(&self, authorize_url: &str, login: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut cookies: std::collections::BTreeMap<String, String> = Default::default();
        let mut next = (reqwest::Method::GET, authorize_url.to_owned(), Vec::new());
        for _ in 0..12 {
            let (method, url, form) = next;
            let cookie = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut request = client.request(method, &url).header("cookie", cookie);
            if !form.is_empty() {
                let body: String = form
                    .iter()
                    .map(|(name, value): &(String, String)| {
                        format!("{name}={}", percent_encode(value))
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
            }
            let response = request.send().await.unwrap();
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((name, value)) = pair.split_once('=') {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            if let Some(location) = response.headers().get("location") {
                let location = location.to_str().unwrap();
                let location = if location.starts_with('/') {
                    format!("{}{location}", self.issuer)
                } else {
                    location.to_owned()
                };
                if !location.starts_with(&self.issuer) {
                    return location;
                }
                next = (reqwest::Method::GET, location, Vec::new());
                continue;
            }
            // A page with a form: the login (fill it in) or the consent (agree).
            let page = response.text().await.unwrap();
            let action = between(&page, "action=\"", "\"").expect("a form on the provider's page");
            let mut form: Vec<(String, String)> = page
                .split("<input type=\"hidden\"")
                .skip(1)
                .filter_map(|input| {
                    Some((
                        between(input, "name=\"", "\"")?,
                        between(input, "value=\"", "\"")?,
                    ))
                })
                .collect();
            if page.contains("name=\"login\"") {
                form.push(("login".into(), login.into()));
                form.push(("password".into(), "any password".into()));
            }
            next = (reqwest::Method::POST, action, form);
        }
        panic!("the provider never sent the browser back");
    }
}

/// The text of `text` between the first `start` and the next `end`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

/// `value` percent-encoded for a form body.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
