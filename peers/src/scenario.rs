//! [`Scenario`]: one job (authenticate an API key, check a JWT, limit a rate, …) done by
//! portcullis, by a peer, or not at all (the baseline), as an axum router.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::handler::Handler;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Request, header};
use portcullis::guard::RequireLayer;
use portcullis::ratelimit::{ClientIp, KeyBy, Limit, Policy, RateLimitLayer};
use portcullis::source::InternalKey;
use portcullis::store::{MemoryStore, SqliteStore};
use portcullis::{AuthLayer, CacheConfig};
use tower::ServiceBuilder;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::hand_rolled;
use crate::sessions;
use crate::setup::fixture;

/// What a scenario's layer does for the request.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Job {
    /// Nothing: the baselines every other figure is read against.
    Baseline,
    /// Compare a fixed shared secret (a service-to-service key).
    StaticSecret,
    /// Resolve a per-user API key to its owner.
    ApiKey,
    /// Verify a JWT access token.
    Jwt,
    /// Resolve a browser session cookie to its user.
    Session,
    /// Authenticate, then require a role.
    RoleGuard,
    /// Count the request against a per-client rate limit.
    RateLimit,
}

/// Who does the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Who {
    /// Nobody (a baseline).
    Baseline,
    /// portcullis.
    Portcullis,
    /// The crate, or hand-written middleware, a user would use instead.
    Peer,
}

/// One router to measure and the request that passes it.
pub struct Scenario {
    /// A short, unique, file-name-safe name (`portcullis_api_key_cached`).
    pub name: &'static str,
    /// What the layer does.
    pub job: Job,
    /// Who does it.
    pub who: Who,
    /// One line on what exactly is measured.
    pub about: &'static str,
    /// The application: `GET /` answers `"ok"` once the layer lets the request through.
    pub router: Router,
    /// Headers a client sends with every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("job", &self.job)
            .field("who", &self.who)
            .finish_non_exhaustive()
    }
}

/// Rows measured in process only (`benches/matrix.rs`), because a loopback client cannot
/// send each request with a token never seen before: name, job, who, what.
pub const IN_PROCESS_ONLY: &[(&str, Job, Who, &str)] = &[(
    "portcullis_jwt_hs256_first_seen",
    Job::Jwt,
    Who::Portcullis,
    "AuthLayer(Bearer<AccessTokens>) + RequireLayer::authenticated(), a new HS256 token on every request (signature check, claims, user lookup in MemoryStore, cache insert)",
)];

/// The client address every in-process request comes from.
pub const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)),
    40_000,
);

impl Scenario {
    /// A request that passes this scenario's layer, carrying the peer address as
    /// `axum::serve(.. into_make_service_with_connect_info ..)` would.
    pub fn request(&self) -> Request<Body> {
        let mut request = Request::get("/");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::empty()).expect("a valid request");
        request.extensions_mut().insert(ConnectInfo(CLIENT));
        request
    }
}

/// Where the scenarios that need outside resources find them.
#[derive(Clone, Debug)]
pub struct Env {
    /// A PostgreSQL server (`postgres://…`) for the uncached PostgreSQL row; without one that
    /// row is left out.
    pub postgres_url: Option<String>,
    /// A directory for the SQLite database.
    pub data_dir: PathBuf,
}

fn hello() -> Router {
    Router::new().route("/", get(ok))
}

async fn ok() -> &'static str {
    "ok"
}

/// The shape the README teaches: the authentication layer on the router, the guard on the
/// handler (`get(handler.layer(guard))`), which axum wraps without boxing it again.
fn readme_shape(auth: AuthLayer) -> Router {
    Router::new()
        .route("/", get(ok.layer(RequireLayer::authenticated())))
        .layer(auth)
}

/// The guard on the method router instead (`get(handler).layer(guard)`): axum boxes the
/// route once more, and clones the box for every request.
fn method_guard(auth: AuthLayer) -> Router {
    Router::new()
        .route("/", get(ok).layer(RequireLayer::authenticated()))
        .layer(auth)
}

/// What the rows without a credential of their own send: every request carries one
/// credential-sized `Authorization` header, so what a row adds over bare axum is what its
/// middleware does, not the cost of building and parsing a header every client sends anyway.
fn unread_credential() -> (HeaderName, HeaderValue) {
    bearer("an-unread-credential-of-forty-three-bytes-!")
}

fn bearer(token: &str) -> (HeaderName, HeaderValue) {
    (
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header"),
    )
}

/// The client address from the connection, as both rate limiters see it.
fn peer_address() -> ClientIp {
    ClientIp::new(|parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
    })
}

/// Every scenario, baselines first. Creates stores, users and credentials as it goes.
pub async fn scenarios(env: &Env) -> Vec<Scenario> {
    let mut all = Vec::new();
    let baseline = |name, about, router| Scenario {
        name,
        job: Job::Baseline,
        who: Who::Baseline,
        about,
        router,
        headers: vec![unread_credential()],
    };
    all.push(baseline("bare_axum", "no middleware", hello()));
    all.push(baseline(
        "axum_layer_floor",
        "a layer that does nothing: what `Router::layer` itself costs",
        hello().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
    ));

    // Shared secret.
    let secret = "a-shared-service-secret-of-32-bytes!";
    all.push(Scenario {
        name: "tower_http_bearer",
        job: Job::StaticSecret,
        who: Who::Peer,
        about: "tower-http ValidateRequestHeaderLayer::bearer (plain comparison)",
        // Deprecated upstream as "too basic to be useful in real applications"; still what
        // many services use for a shared secret, and the issue names it as the peer.
        #[allow(deprecated)]
        router: hello().layer(ValidateRequestHeaderLayer::bearer(secret)),
        headers: vec![bearer(secret)],
    });
    all.push(Scenario {
        name: "portcullis_internal_key",
        job: Job::StaticSecret,
        who: Who::Portcullis,
        about: "InternalKey source + RequireLayer::authenticated() (constant-time digest comparison)",
        router: hello().layer(
            ServiceBuilder::new()
                .layer(
                    AuthLayer::builder()
                        .source(InternalKey::new("worker", secret).expect("a long key"))
                        .build(),
                )
                .layer(RequireLayer::authenticated()),
        ),
        headers: vec![(
            HeaderName::from_static("x-internal-api-key"),
            HeaderValue::from_static(secret),
        )],
    });

    // API keys.
    let memory = fixture(MemoryStore::new(), CacheConfig::default()).await;
    all.push(Scenario {
        name: "hand_rolled_api_key",
        job: Job::ApiKey,
        who: Who::Peer,
        about: "middleware::from_fn: SHA-256 of the key, moka::future cache, HashMap as database",
        router: hand_rolled::api_key_router(hello(), &memory.api_key),
        headers: vec![bearer(&memory.api_key)],
    });
    all.push(Scenario {
        name: "portcullis_api_key_cached",
        job: Job::ApiKey,
        who: Who::Portcullis,
        about: "AuthLayer(Bearer<ApiKeys>) + RequireLayer::authenticated(), credential cached",
        router: hello().layer(memory.api_key_layers(RequireLayer::authenticated())),
        headers: vec![bearer(&memory.api_key)],
    });
    all.push(Scenario {
        name: "portcullis_api_key_readme",
        job: Job::ApiKey,
        who: Who::Portcullis,
        about: "as cached, written as the README writes it: Router::layer(AuthLayer) and get(handler.layer(RequireLayer::authenticated()))",
        router: readme_shape(memory.api_key_auth()),
        headers: vec![bearer(&memory.api_key)],
    });
    all.push(Scenario {
        name: "portcullis_api_key_method_guard",
        job: Job::ApiKey,
        who: Who::Portcullis,
        about: "as cached, with the guard on the method router: Router::layer(AuthLayer) and get(handler).layer(RequireLayer::authenticated())",
        router: method_guard(memory.api_key_auth()),
        headers: vec![bearer(&memory.api_key)],
    });
    let uncached = || {
        CacheConfig::default()
            .positive_ttl(Duration::ZERO)
            .negative_ttl(Duration::ZERO)
    };
    let sqlite_url = format!("sqlite://{}", env.data_dir.join("bench.db").display());
    let sqlite = fixture(
        SqliteStore::connect(&sqlite_url)
            .await
            .expect("a SQLite store"),
        uncached(),
    )
    .await;
    all.push(Scenario {
        name: "portcullis_api_key_sqlite",
        job: Job::ApiKey,
        who: Who::Portcullis,
        about: "as cached, but every request queries SQLite (cache TTL zero)",
        router: hello().layer(sqlite.api_key_layers(RequireLayer::authenticated())),
        headers: vec![bearer(&sqlite.api_key)],
    });
    if let Some(url) = &env.postgres_url {
        let postgres = fixture(crate::setup::postgres_store(url).await, uncached()).await;
        all.push(Scenario {
            name: "portcullis_api_key_postgres",
            job: Job::ApiKey,
            who: Who::Portcullis,
            about: "as cached, but every request queries PostgreSQL (cache TTL zero)",
            router: hello().layer(postgres.api_key_layers(RequireLayer::authenticated())),
            headers: vec![bearer(&postgres.api_key)],
        });
    }

    // JWTs.
    all.push(Scenario {
        name: "hand_rolled_jwt_hs256",
        job: Job::Jwt,
        who: Who::Peer,
        about: "middleware::from_fn: jsonwebtoken::decode (HS256, exp/iss/aud checked) on every request",
        router: hand_rolled::jwt_router(hello()),
        headers: vec![bearer(&hand_rolled::jwt_token())],
    });
    all.push(Scenario {
        name: "portcullis_jwt_hs256",
        job: Job::Jwt,
        who: Who::Portcullis,
        about: "AuthLayer(Bearer<AccessTokens>) + RequireLayer::authenticated(), repeated token (verified-token cache)",
        router: hello().layer(memory.jwt_layers(&memory.hs256, RequireLayer::authenticated())),
        headers: vec![bearer(&memory.hs256_token)],
    });
    all.push(Scenario {
        name: "portcullis_jwt_eddsa",
        job: Job::Jwt,
        who: Who::Portcullis,
        about: "as HS256, signed with Ed25519 (EdDSA)",
        router: hello().layer(memory.jwt_layers(&memory.eddsa, RequireLayer::authenticated())),
        headers: vec![bearer(&memory.eddsa_token)],
    });
    all.push(Scenario {
        name: "portcullis_jwt_hs256_readme",
        job: Job::Jwt,
        who: Who::Portcullis,
        about: "as HS256, written as the README writes it: Router::layer(AuthLayer) and get(handler.layer(RequireLayer::authenticated()))",
        router: readme_shape(memory.jwt_auth(&memory.hs256)),
        headers: vec![bearer(&memory.hs256_token)],
    });
    let first_seen = fixture(MemoryStore::new(), uncached()).await;
    all.push(Scenario {
        name: "portcullis_jwt_hs256_uncached",
        job: Job::Jwt,
        who: Who::Portcullis,
        about: "as HS256 with cache TTL zero: every request verifies the signature and loads the user, as for a first-seen token",
        router: hello().layer(first_seen.jwt_layers(&first_seen.hs256, RequireLayer::authenticated())),
        headers: vec![bearer(&first_seen.hs256_token)],
    });

    // Sessions.
    let (router, cookie) = sessions::axum_login_router(hello()).await;
    all.push(Scenario {
        name: "axum_login_session",
        job: Job::Session,
        who: Who::Peer,
        about: "axum-login 0.18 + tower-sessions 0.14 MemoryStore, login_required!",
        router,
        headers: vec![(header::COOKIE, cookie)],
    });
    all.push(Scenario {
        name: "portcullis_session",
        job: Job::Session,
        who: Who::Portcullis,
        about: "AuthLayer(SessionCookie) + RequireLayer::authenticated(), session cached (idle timeout on)",
        router: hello().layer(memory.session_layers(RequireLayer::authenticated())),
        headers: vec![(
            header::COOKIE,
            HeaderValue::from_str(&memory.session_cookie).expect("a valid cookie"),
        )],
    });

    all.push(Scenario {
        name: "portcullis_session_readme",
        job: Job::Session,
        who: Who::Portcullis,
        about: "as session, written as the README writes it: Router::layer(AuthLayer) and get(handler.layer(RequireLayer::authenticated()))",
        router: readme_shape(memory.session_auth()),
        headers: vec![(
            header::COOKIE,
            HeaderValue::from_str(&memory.session_cookie).expect("a valid cookie"),
        )],
    });

    // Roles.
    all.push(Scenario {
        name: "portcullis_role_guard",
        job: Job::RoleGuard,
        who: Who::Portcullis,
        about: "cached API key + RequireLayer::any_role([\"admin\"]) instead of RequireLayer::authenticated()",
        router: hello().layer(memory.api_key_layers(RequireLayer::any_role(["admin"]))),
        headers: vec![bearer(&memory.api_key)],
    });

    // Rate limits: one request per nanosecond with a burst of a billion (a full second of
    // tolerance) never refuses, so both limiters do their full bookkeeping (and headers) on
    // every request. With a burst of a million (a millisecond of tolerance) portcullis
    // refused one request in about 670 000 at 64 connections here.
    let limiter = RateLimitLayer::builder()
        .policy(
            Policy::new(
                "ip",
                Limit::new(1_000_000_000, Duration::from_secs(1)).burst(1_000_000_000),
                KeyBy::ClientIp,
            )
            .expect("a valid policy"),
        )
        .client_ip(peer_address())
        .build()
        .expect("a valid limiter");
    let governor = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000_000)
        .key_extractor(PeerIpKeyExtractor)
        .use_headers()
        .finish()
        .expect("a valid governor config");
    all.push(Scenario {
        name: "tower_governor",
        job: Job::RateLimit,
        who: Who::Peer,
        about: "tower_governor 0.8, per peer IP, headers on",
        router: hello().layer(GovernorLayer::new(governor)),
        headers: vec![unread_credential()],
    });
    all.push(Scenario {
        name: "portcullis_rate_limit",
        job: Job::RateLimit,
        who: Who::Portcullis,
        about: "RateLimitLayer in memory, per client IP, RateLimit headers on",
        router: hello().layer(limiter),
        headers: vec![unread_credential()],
    });
    all
}
