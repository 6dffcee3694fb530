//! Browser sessions end to end over HTTP: a small cookie-login app served on 127.0.0.1 and
//! driven by a real HTTP client, against SQLite, PostgreSQL and sessions kept in Redis.
//!
//! The client handles cookies by hand, as an attacker would: every test says which cookie it
//! sends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::session_app::{self, COOKIE, PASSWORD};
use portcullis::clock::ManualClock;
use portcullis::session::Sessions;
use portcullis::store::{
    PostgresStore, RedisSessions, SqliteStore, Stores, TokenKind, TokenRecord, UserId, UserUpdate,
};
use portcullis::token::{TokenDigest, TokenFormat};
use portcullis::{ApiKeys, Auth, AuthError, NewApiKey};
use serde_json::json;

/// One store to run the tests against, and whatever must live as long as it.
struct Backend {
    name: &'static str,
    store: Stores,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    Backend {
        name: "sqlite",
        store: Stores::new(SqliteStore::connect(&url).await.unwrap()),
        _keep: Box::new(dir),
    }
}

async fn backends() -> Vec<Backend> {
    let mut backends = vec![sqlite().await];
    if let Some(server) = common::postgres_url() {
        let schema = common::PgSchema::create(&server).await;
        backends.push(Backend {
            name: "postgres",
            store: Stores::new(PostgresStore::connect(&schema.url).await.unwrap()),
            _keep: Box::new(schema),
        });
    }
    if let Some(url) = common::redis_url() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("users.db").display());
        let prefix = common::redis_prefix();
        let sqlite = SqliteStore::connect(&db).await.unwrap();
        let redis = RedisSessions::new(sqlite.clone(), &url)
            .unwrap()
            .prefix(prefix.clone());
        let mut store = Stores::new(sqlite);
        store.tokens = Arc::new(redis);
        backends.push(Backend {
            name: "redis sessions",
            store,
            _keep: Box::new((dir, RedisCleanup { url, prefix })),
        });
    }
    backends
}

struct RedisCleanup {
    url: String,
    prefix: String,
}

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(common::redis_delete_prefix(&url, &prefix));
        })
        .join();
    }
}

/// The app under test and a client for it.
struct Site {
    backend: &'static str,
    base: String,
    http: reqwest::Client,
    auth: Auth,
    clock: Arc<ManualClock>,
    sessions: Sessions,
    api_keys: ApiKeys,
    _backend: Backend,
}

async fn site(backend: Backend) -> Site {
    let app = session_app::serve(backend.store.clone()).await;
    Site {
        backend: backend.name,
        base: app.base,
        http: reqwest::Client::new(),
        auth: app.auth,
        clock: app.clock,
        sessions: app.sessions,
        api_keys: app.api_keys,
        _backend: backend,
    }
}

/// A response's status, `Set-Cookie` header and body.
struct Answer {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

impl Answer {
    /// The session id the response sets, if any (`Some("")` for a removal).
    fn session(&self) -> Option<String> {
        let header = self.set_cookie.as_deref()?;
        let pair = header.split(';').next()?;
        let value = pair.strip_prefix(&format!("{COOKIE}="))?;
        Some(value.to_owned())
    }
}

impl Site {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status,
            set_cookie,
            body: response.text().await.unwrap(),
        }
    }

    fn get(&self, path: &str, session: Option<&str>) -> reqwest::RequestBuilder {
        self.with_cookie(self.http.get(format!("{}{path}", self.base)), session)
    }

    fn post(&self, path: &str, session: Option<&str>) -> reqwest::RequestBuilder {
        self.with_cookie(self.http.post(format!("{}{path}", self.base)), session)
    }

    fn with_cookie(
        &self,
        request: reqwest::RequestBuilder,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match session {
            Some(id) => request.header("cookie", format!("theme=dark; {COOKIE}={id}")),
            None => request,
        }
    }

    /// A login request for `username` with `password`, presenting no cookie.
    fn login_request(&self, username: &str, password: &str) -> reqwest::RequestBuilder {
        self.post("/login", None)
            .json(&json!({ "username": username, "password": password }))
    }

    /// Logs `username` in from a browser that presents `planted` (if any); returns the new id.
    async fn log_in_with(&self, username: &str, planted: Option<&str>) -> String {
        let answer = self
            .send(
                self.post("/login", planted)
                    .header("sec-fetch-site", "same-origin")
                    .json(&json!({ "username": username, "password": PASSWORD })),
            )
            .await;
        assert_eq!(answer.status, 200, "{}: {}", self.backend, answer.body);
        answer.session().expect("login sets the session cookie")
    }

    async fn log_in(&self, username: &str) -> String {
        self.log_in_with(username, None).await
    }

    /// Who `/public` thinks the browser presenting `session` is.
    async fn whoami(&self, session: Option<&str>) -> String {
        let answer = self.send(self.get("/public", session)).await;
        assert_eq!(answer.status, 200, "{}: {}", self.backend, answer.body);
        answer.body
    }

    /// A new API key of `username`.
    async fn api_key(&self, username: &str) -> String {
        let user = self
            .auth
            .users()
            .user_by_username(username)
            .await
            .unwrap()
            .unwrap();
        let created = self.api_keys.create(&user, NewApiKey::named("cli")).await;
        created.unwrap().secret.into_exposed()
    }

    /// What the store keeps of session `id`.
    async fn stored_session(&self, id: &str) -> TokenRecord {
        let digest = TokenDigest::of(id);
        let stored = self
            .auth
            .tokens()
            .token_by_digest(TokenKind::Session, &digest);
        stored.await.unwrap().expect("the session is stored")
    }

    async fn user_id(&self, username: &str) -> UserId {
        self.auth
            .users()
            .user_by_username(username)
            .await
            .unwrap()
            .unwrap()
            .id
    }
}

async fn each_site<F, Fut>(test: F)
where
    F: Fn(Site) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends().await {
        test(site(backend).await).await;
    }
}

#[tokio::test]
async fn owasp_asvs_v3_3_login_sets_a_host_prefixed_http_only_secure_same_site_cookie() {
    each_site(|site| async move {
        let answer = site.send(site.login_request("ada", PASSWORD)).await;
        assert_eq!(answer.status, 200, "{}", site.backend);
        let header = answer.set_cookie.clone().unwrap();
        let id = answer.session().unwrap();
        assert!(id.starts_with("pcs_"), "{header}");
        assert_eq!(
            header,
            format!("{COOKIE}={id}; Path=/; Max-Age=43200; HttpOnly; Secure; SameSite=Lax")
        );
        assert_eq!(site.whoami(Some(&id)).await, "ada");
        let me = site.send(site.get("/me", Some(&id))).await;
        assert_eq!(me.status, 200);
        assert_eq!(me.body, r#"{"roles":[],"username":"ada"}"#);
        // Only the digest is stored.
        let record = site.stored_session(&id).await;
        assert_eq!(record.user_id, site.user_id("ada").await);
    })
    .await;
}

#[tokio::test]
async fn login_csrf_a_cross_site_login_post_is_refused_before_the_password_is_checked() {
    each_site(|site| async move {
        // Another site posting Mallory's credentials from Ada's browser would log Ada into
        // Mallory's account, where whatever she saves is Mallory's to read.
        let forged = site
            .send(
                site.login_request("mallory", PASSWORD)
                    .header("sec-fetch-site", "cross-site")
                    .header("origin", "https://evil.example"),
            )
            .await;
        assert_eq!(forged.status, 403, "{}", site.backend);
        assert_eq!(forged.body, r#"{"detail":"Cross-site request refused"}"#);
        assert_eq!(forged.set_cookie, None);
        let old_browser = site
            .send(
                site.login_request("mallory", PASSWORD)
                    .header("origin", "https://evil.example"),
            )
            .await;
        assert_eq!(old_browser.status, 403);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_sets_no_cookie() {
    each_site(|site| async move {
        let answer = site
            .send(site.login_request("ada", "wrong password!"))
            .await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.set_cookie, None);
    })
    .await;
}

#[tokio::test]
async fn owasp_asvs_v7_2_4_session_fixation_login_issues_a_fresh_id_and_revokes_the_planted_one() {
    each_site(|site| async move {
        // Mallory logs in and plants her own session cookie in Ada's browser.
        let planted = site.log_in("mallory").await;
        let ada = site.log_in_with("ada", Some(&planted)).await;
        assert_ne!(ada, planted, "{}", site.backend);
        assert_eq!(site.whoami(Some(&ada)).await, "ada");
        // The planted id never becomes Ada's, and is revoked by her login.
        assert_eq!(site.whoami(Some(&planted)).await, "anonymous");
        let record = site.stored_session(&planted).await;
        assert!(record.revoked_at.is_some());

        // An id the attacker made up is never adopted either.
        let invented = TokenFormat::new("pcs_").unwrap().generate().unwrap();
        let invented = invented.secret().expose();
        let grace = site.log_in_with("grace", Some(invented)).await;
        assert_ne!(grace, invented);
        assert_eq!(site.whoami(Some(invented)).await, "anonymous");
    })
    .await;
}

#[tokio::test]
async fn csrf_a_cross_site_post_with_the_cookie_is_refused_with_403() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        let settings = |fetch_site: Option<&str>, origin: Option<&str>| {
            let mut request = site.post("/settings", Some(&id));
            if let Some(value) = fetch_site {
                request = request.header("sec-fetch-site", value);
            }
            if let Some(value) = origin {
                request = request.header("origin", value);
            }
            request
        };
        let own_origin = site.base.clone();
        for (fetch_site, origin, expected) in [
            (Some("cross-site"), Some("https://evil.example"), 403),
            (Some("same-site"), Some("https://sub.evil.example"), 403),
            (None, Some("https://evil.example"), 403),
            (None, Some("null"), 403),
            (Some("same-origin"), Some(own_origin.as_str()), 200),
            (Some("none"), None, 200),
            (None, Some(own_origin.as_str()), 200),
            // Not a browser: a browser always sends one of the two headers.
            (None, None, 200),
        ] {
            let answer = site.send(settings(fetch_site, origin)).await;
            assert_eq!(
                answer.status, expected,
                "{}: {fetch_site:?} {origin:?}",
                site.backend
            );
            if expected == 403 {
                assert_eq!(answer.body, r#"{"detail":"Cross-site request refused"}"#);
            }
        }
        // Reading is not a state change: a cross-site GET is answered.
        let read = site
            .send(
                site.get("/me", Some(&id))
                    .header("sec-fetch-site", "cross-site"),
            )
            .await;
        assert_eq!(read.status, 200);
        // Except a WebSocket handshake: another site opening one with the cookie is
        // cross-site WebSocket hijacking.
        let hijack = site
            .send(
                site.get("/me", Some(&id))
                    .header("upgrade", "websocket")
                    .header("sec-fetch-site", "cross-site")
                    .header("origin", "https://evil.example"),
            )
            .await;
        assert_eq!(hijack.status, 403);

        // Bearer credentials are exempt: a browser never attaches them on its own.
        let key = site.api_key("ada").await;
        let with_key = site
            .send(
                site.post("/settings", None)
                    .bearer_auth(&key)
                    .header("sec-fetch-site", "cross-site"),
            )
            .await;
        assert_eq!(with_key.status, 200);
    })
    .await;
}

#[tokio::test]
async fn owasp_asvs_v7_4_1_logout_revokes_the_server_record_and_clears_the_cookie() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        let out = site
            .send(
                site.post("/logout", Some(&id))
                    .header("sec-fetch-site", "same-origin"),
            )
            .await;
        assert_eq!(out.status, 204, "{}: {}", site.backend, out.body);
        assert_eq!(
            out.set_cookie.as_deref(),
            Some("__Host-session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
        );
        // Replaying the old cookie gets nothing.
        assert_eq!(site.whoami(Some(&id)).await, "anonymous");
        let me = site.send(site.get("/me", Some(&id))).await;
        assert_eq!(me.status, 401);
        assert_eq!(me.body, r#"{"detail":"Not authenticated"}"#);
        let record = site.stored_session(&id).await;
        assert!(record.revoked_at.is_some());

        // Logging out without a session answers the same way.
        let again = site.send(site.post("/logout", None)).await;
        assert_eq!(again.status, 204);
        assert_eq!(again.session().as_deref(), Some(""));
    })
    .await;
}

#[tokio::test]
async fn owasp_asvs_v7_3_sessions_end_after_the_idle_and_the_absolute_timeout() {
    each_site(|site| async move {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        // Idle: 29 minutes apart is fine, 30 minutes of silence is not.
        let id = site.log_in("ada").await;
        for _ in 0..3 {
            site.clock.advance(minutes(29));
            assert_eq!(site.whoami(Some(&id)).await, "ada", "{}", site.backend);
        }
        site.clock.advance(minutes(30));
        assert_eq!(site.whoami(Some(&id)).await, "anonymous");
        // And it stays ended once used again.
        assert_eq!(site.whoami(Some(&id)).await, "anonymous");

        // Absolute: 12 hours after login, however busy the session is.
        let busy = site.log_in("ada").await;
        for _ in 0..(12 * 60 / 20 - 1) {
            site.clock.advance(minutes(20));
            assert_eq!(site.whoami(Some(&busy)).await, "ada");
        }
        site.clock.advance(minutes(20));
        assert_eq!(site.whoami(Some(&busy)).await, "anonymous");
    })
    .await;
}

#[tokio::test]
async fn another_instance_sees_the_uses_recorded_by_this_one() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        site.clock.advance(Duration::from_secs(25 * 60));
        assert_eq!(site.whoami(Some(&id)).await, "ada");
        site.auth.flush_last_used().await.unwrap();
        site.clock.advance(Duration::from_secs(25 * 60));
        // A second instance (its own cache) over the same store: 50 minutes since login, 25
        // since the last use recorded by the first.
        let other = Auth::builder(site._backend.store.clone())
            .shared_clock(site.clock.clone())
            .build();
        let sessions = Sessions::new(&other, TokenFormat::new("pcs_").unwrap());
        let identity = sessions.resolve(&id).await;
        assert_eq!(identity.unwrap().name(), "ada", "{}", site.backend);
        site.clock.advance(Duration::from_secs(6 * 60));
        let fresh = Auth::builder(site._backend.store.clone())
            .shared_clock(site.clock.clone())
            .build();
        let sessions = Sessions::new(&fresh, TokenFormat::new("pcs_").unwrap());
        assert!(sessions.resolve(&id).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn owasp_asvs_v7_2_4_a_privilege_change_rotates_the_id_and_keeps_the_absolute_expiry() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        site.clock.advance(Duration::from_secs(600));
        let answer = site
            .send(
                site.post("/elevate", Some(&id))
                    .header("sec-fetch-site", "same-origin"),
            )
            .await;
        assert_eq!(answer.status, 204, "{}: {}", site.backend, answer.body);
        let rotated = answer.session().unwrap();
        assert_ne!(rotated, id);
        assert!(
            answer.set_cookie.unwrap().contains("Max-Age=42600;"),
            "the absolute expiry is not extended"
        );
        let me = site.send(site.get("/me", Some(&rotated))).await;
        assert_eq!(me.body, r#"{"roles":["admin"],"username":"ada"}"#);
        assert_eq!(site.whoami(Some(&id)).await, "anonymous");
        let old = site.stored_session(&rotated).await;
        assert_eq!(
            old.expires_at.unwrap() - old.created_at,
            time::Duration::seconds(42600)
        );
    })
    .await;
}

#[tokio::test]
async fn owasp_asvs_v7_4_3_a_password_change_ends_every_other_session() {
    each_site(|site| async move {
        let laptop = site.log_in("ada").await;
        let phone = site.log_in("ada").await;
        let other_user = site.log_in("grace").await;
        let answer = site
            .send(
                site.post("/password", Some(&laptop))
                    .header("sec-fetch-site", "same-origin")
                    .json(&json!({ "new": "a brand new passphrase" })),
            )
            .await;
        assert_eq!(answer.status, 204, "{}: {}", site.backend, answer.body);
        let renewed = answer.session().unwrap();
        assert_eq!(site.whoami(Some(&renewed)).await, "ada");
        assert_eq!(site.whoami(Some(&laptop)).await, "anonymous");
        assert_eq!(site.whoami(Some(&phone)).await, "anonymous");
        assert_eq!(site.whoami(Some(&other_user)).await, "grace");
    })
    .await;
}

#[tokio::test]
async fn suspension_ends_access_at_once_even_from_the_cache() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        assert_eq!(site.whoami(Some(&id)).await, "ada");
        let ada = site.user_id("ada").await;
        site.auth
            .update_user(ada, UserUpdate::default().active(false))
            .await
            .unwrap();
        assert_eq!(site.whoami(Some(&id)).await, "anonymous");
        assert_eq!(site.send(site.get("/me", Some(&id))).await.status, 401);
        // And logging in is refused without a cookie.
        let login = site.send(site.login_request("ada", PASSWORD)).await;
        assert_eq!(login.status, 401);
        assert_eq!(login.set_cookie, None);
    })
    .await;
}

#[tokio::test]
async fn stale_forged_or_ambiguous_cookies_are_anonymous_never_an_error() {
    each_site(|site| async move {
        let id = site.log_in("ada").await;
        let mut mangled = id.clone();
        let last = mangled.pop().unwrap();
        mangled.push(if last == 'a' { 'b' } else { 'a' });
        let unknown = TokenFormat::new("pcs_").unwrap().generate().unwrap();
        for cookie in [
            mangled.as_str(),
            unknown.secret().expose(),
            "",
            "pcs_",
            "' OR 1=1 --",
            &"A".repeat(8000),
        ] {
            let answer = site
                .send(
                    site.http
                        .get(format!("{}/public", site.base))
                        .header("cookie", format!("{COOKIE}={cookie}")),
                )
                .await;
            assert_eq!(answer.status, 200, "{}: {cookie:.40}", site.backend);
            assert_eq!(answer.body, "anonymous");
        }
        // Two session cookies (one planted by a sibling subdomain): neither is honoured.
        let mallory = site.log_in("mallory").await;
        let tossed = site
            .send(
                site.http
                    .get(format!("{}/public", site.base))
                    .header("cookie", format!("{COOKIE}={mallory}; {COOKIE}={id}")),
            )
            .await;
        assert_eq!(tossed.body, "anonymous");
        // A bad cookie does not hide a good bearer credential sent with it.
        let key = site.api_key("ada").await;
        let both = site
            .send(site.get("/me", Some(&mangled)).bearer_auth(&key))
            .await;
        assert_eq!(both.status, 200);
    })
    .await;
}

#[tokio::test]
async fn users_can_list_and_end_their_own_sessions_only() {
    each_site(|site| async move {
        let laptop = site.log_in("ada").await;
        let phone = site.log_in("ada").await;
        let grace = site.log_in("grace").await;
        let ada = site.user_id("ada").await;
        let listed = site.sessions.list(ada).await.unwrap();
        assert_eq!(listed.len(), 2, "{}", site.backend);
        let phone_record = listed
            .iter()
            .find(|s| s.digest == TokenDigest::of(&phone))
            .unwrap();
        // Ids are shared between kinds: an API key's revocation cannot reach a session, nor
        // the other way round.
        assert!(!site.api_keys.revoke(ada, phone_record.id).await.unwrap());
        assert_eq!(site.whoami(Some(&phone)).await, "ada");
        let key = site.api_key("ada").await;
        let key_id = site.api_keys.list(ada).await.unwrap()[0].id;
        assert!(!site.sessions.revoke(ada, key_id).await.unwrap());
        let with_key = site.send(site.get("/me", None).bearer_auth(&key)).await;
        assert_eq!(with_key.status, 200);
        // Grace cannot end Ada's session; Ada can.
        let grace_id = site.user_id("grace").await;
        assert!(
            !site
                .sessions
                .revoke(grace_id, phone_record.id)
                .await
                .unwrap()
        );
        assert_eq!(site.whoami(Some(&phone)).await, "ada");
        assert!(site.sessions.revoke(ada, phone_record.id).await.unwrap());
        assert_eq!(site.whoami(Some(&phone)).await, "anonymous");
        assert_eq!(site.whoami(Some(&laptop)).await, "ada");
        assert_eq!(site.sessions.end_all(ada).await.unwrap(), 1);
        assert_eq!(site.whoami(Some(&laptop)).await, "anonymous");
        assert_eq!(site.whoami(Some(&grace)).await, "grace");
        assert!(site.sessions.list(ada).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_idle_session_ends_even_while_its_cache_entry_is_fresh() {
    let backend = sqlite().await;
    let clock = Arc::new(ManualClock::starting_now());
    let auth = Auth::builder(backend.store.clone())
        .shared_clock(clock.clone())
        .cache(portcullis::CacheConfig::default().positive_ttl(Duration::from_secs(24 * 3600)))
        .build();
    let sessions = Sessions::new(&auth, TokenFormat::new("pcs_").unwrap())
        .idle_timeout(Some(Duration::from_secs(600)));
    let ada = auth
        .users()
        .create_user(portcullis::store::NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    let started = sessions
        .start(&common::password_sign_in(&auth, &ada), &HeaderMap::new())
        .await
        .unwrap();
    let id = started.secret.expose();
    assert!(sessions.resolve(id).await.is_ok());
    // Used every 9 minutes from the cache alone, the session stays.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(540));
        assert!(matches!(sessions.resolve_now(id), Some(Ok(_))));
    }
    clock.advance(Duration::from_secs(600));
    assert!(matches!(
        sessions.resolve_now(id),
        Some(Err(AuthError::InvalidToken(_)))
    ));
}

// CWE-601 (open redirect) and RFC 9700 §4.11: a login link carrying `next=<another site>` must
// land the signed-in user on this site. Browsers resolve `Location` by the WHATWG URL rules, so
// each answer is also resolved with them (the `url` crate) and its origin compared.
#[tokio::test]
async fn cwe_601_the_login_form_never_redirects_to_another_site() {
    let site = site(sqlite().await).await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = url::Url::parse(&format!("{}/signin", site.base)).unwrap();
    let sign_in = |next: &str| {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", "ada")
            .append_pair("password", PASSWORD)
            .append_pair("next", next)
            .finish();
        no_follow
            .post(base.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body)
    };
    let attacks = [
        "https://evil.example/",
        "http:evil.example",
        "https:/\\evil.example",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
        "/\u{3000}/evil.example",
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "evil.example",
        "",
    ];
    let local = [
        ("/documents?page=2#top", "/documents?page=2#top"),
        ("/café", "/caf%C3%A9"),
        ("/a/../b", "/a/../b"),
    ];
    let expected = attacks
        .iter()
        .map(|attack| (*attack, "/"))
        .chain(local.iter().copied());
    for (next, location) in expected {
        let response = sign_in(next).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        let header = response.headers()["location"].to_str().unwrap();
        assert_eq!(header, location, "{next:?}");
        let resolved = base.join(header).unwrap();
        assert_eq!(resolved.origin(), base.origin(), "{next:?} → {resolved}");
        assert!(
            response.headers().contains_key("set-cookie"),
            "{next:?}: signed in"
        );
    }
    // A failed login redirects nowhere.
    let body = "username=ada&password=wrong+password%21&next=%2Fdocuments";
    let refused = no_follow
        .post(base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(!refused.headers().contains_key("location"));
}
