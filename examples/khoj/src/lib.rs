//! The Khoj service's authentication: configuration, state, routes.
//!
//! Khoj's authentication order (`UserAuthenticationBackend`): the session cookie, then a
//! `kk-` API key as `Authorization: Bearer`, then a client application (`client_id` in the
//! query, its secret as the bearer token, the user by `phone_number`); in anonymous mode,
//! every request is the default user and `/auth/*` is not served.

#![forbid(unsafe_code)]
// A handler's refusal is the response it answers with, built once on the refused path:
// boxing it would cost every refusal an allocation to save stack on the success path.
#![allow(clippy::result_large_err)]

mod api;
mod cli;
mod config;
mod db;
mod magic;
mod oidc;
mod openapi;
mod pages;
mod session;
mod tokens;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::{get, post};
use portcullis::flows::{Allowance, MagicLinks, OidcConfig, OidcSignIn};
use portcullis::mail::{LogMailer, MailBranding, MessageKind, Outbox, SmtpMailer};
use portcullis::ratelimit::{
    ClientIp, KeyBy, Limit, Policy, RateLimitLayer, RedisLimits, WhenRedisDown,
};
use portcullis::redirect::LoginRedirect;
use portcullis::session::{SessionCookieConfig, Sessions};
use portcullis::source::{Bearer, ClientApplication, SessionCookie, SingleUser};
use portcullis::store::NewUser;
use portcullis::token::{CodeKey, TokenFormat};
use portcullis::{ApiKeys, Auth, AuthLayer, JsonErrors, OneTimeSecrets};
use tokio::net::TcpListener;

pub use cli::{CreateClient, USAGE, create_client};
pub use config::{Config, ConfigError, Limits, OidcSettings};

/// The version `/api/v1/user` reports as `khoj_version`.
pub const KHOJ_VERSION: &str = concat!(
    env!("CARGO_PKG_NAME"),
    "-portcullis-",
    env!("CARGO_PKG_VERSION")
);

/// The user every request is in anonymous mode, as Khoj names it.
pub const DEFAULT_USERNAME: &str = "default";
/// The default user's address, which Khoj's clients read as "anonymous mode".
pub const DEFAULT_EMAIL: &str = "default@example.com";

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub auth: Auth,
    pub sessions: Sessions,
    pub api_keys: ApiKeys,
    pub magic: MagicLinks,
    /// Sign-in with Google or another OpenID Connect provider, when configured.
    pub oidc: Option<OidcSignIn>,
    /// Whether a sign-in may create an account (`KHOJ_AUTO_CREATE_USERS`).
    pub auto_create_users: bool,
    pub anonymous_mode: bool,
}

fn format(prefix: &'static str) -> TokenFormat {
    match TokenFormat::new(prefix) {
        Ok(format) => format,
        Err(error) => unreachable!("constant prefix {prefix:?} is valid: {error}"),
    }
}

/// The prefix of client applications' secrets: not `kk-`, so that a client's secret is
/// never taken for an API key.
pub fn client_secret_format() -> TokenFormat {
    format("kcs_")
}

/// Opens the database and builds the router; `public_url` is where users reach the server
/// (the configured one, or the listening address).
pub async fn build(config: &Config, public_url: &str) -> Result<(Router, AppState), ConfigError> {
    let connected = db::connect(
        &config.database_url,
        config.redis_url.as_deref(),
        &config.redis_prefix,
    )
    .await?;
    let mut builder = Auth::builder(connected.store);
    if let Some(bus) = connected.bus {
        builder = builder.invalidation_bus(bus);
    }
    let auth = builder.build();

    let https = public_url.starts_with("https://");
    let cookie = if https {
        SessionCookieConfig::new().name("__Host-khoj")
    } else {
        SessionCookieConfig::new()
            .insecure_for_plain_http()
            .name("khoj_session")
    }
    .map_err(|error| ConfigError::Invalid("session cookie", error.to_string()))?;
    // Khoj keeps a sign-in for 14 days; a week without use ends it sooner.
    let sessions = Sessions::new(&auth, format("khs_"))
        .lifetime(Duration::from_secs(14 * 86_400))
        .idle_timeout(Some(Duration::from_secs(7 * 86_400)))
        .cookie(cookie);
    let api_keys = ApiKeys::new(&auth, format("kk-"));
    let code_key = CodeKey::new(config.secret_key.as_bytes())
        .map_err(|error| ConfigError::Invalid("KHOJ_DJANGO_SECRET_KEY", error.to_string()))?;
    let secrets = OneTimeSecrets::new(&auth, code_key);
    let branding = if config.no_https {
        MailBranding::plain_http("Khoj", public_url)?
    } else {
        MailBranding::new("Khoj", public_url)?
    }
    .subject(MessageKind::SignInCode, "Your login code to Khoj")
    .map_err(|error| ConfigError::Invalid("mail subject", error.to_string()))?;
    let outbox = match &config.smtp {
        Some(smtp) => Outbox::spawn(
            SmtpMailer::new(smtp.clone())
                .map_err(|error| ConfigError::Invalid("SMTP_URL", error.to_string()))?,
            1000,
        ),
        None => Outbox::spawn(LogMailer::new(), 1000),
    };
    let day = Duration::from_secs(86_400);
    let magic = MagicLinks::new(&auth, &secrets, outbox, branding)
        .path("/auth/magic")
        .lifetime(config.magic_link_lifetime)
        .create_users(config.auto_create_users)
        .request_limit(Allowance::new(config.limits.link_requests_per_day, day))
        .verification_limit(Allowance::new(config.limits.verifications_per_day, day));

    let oidc = match &config.oidc {
        Some(settings) if !config.anonymous_mode => {
            let redirect_url = format!("{}/auth/redirect", public_url.trim_end_matches('/'));
            let oidc_config = OidcConfig::new(
                &settings.issuer,
                &settings.client_id,
                settings.client_secret.clone(),
                redirect_url,
            );
            let discovered = OidcSignIn::discover(&auth, &secrets, oidc_config).await;
            Some(
                discovered
                    .map_err(|error| ConfigError::Invalid("OIDC_ISSUER", error.to_string()))?,
            )
        }
        _ => None,
    };
    let database = connected.database;
    let authentication = if config.anonymous_mode {
        AuthLayer::builder()
            .source(SingleUser::new(default_user(&auth).await?))
            .build()
    } else {
        AuthLayer::builder()
            .source(SessionCookie::new(sessions.clone()))
            .source(Bearer::new(api_keys.clone()))
            .source(ClientApplication::new(&auth, db::ClientTable(database)).create_users(true))
            .renderer(LoginRedirect::new("/login", JsonErrors::new("khoj")))
            .build()
    };
    let state = AppState {
        auth,
        sessions,
        api_keys,
        magic,
        oidc,
        auto_create_users: config.auto_create_users,
        anonymous_mode: config.anonymous_mode,
    };
    let mut router = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login))
        .route("/settings", get(pages::settings))
        .route("/settings/keys", post(pages::create_key))
        .route("/settings/keys/delete", post(pages::delete_key))
        .route("/api/v1/user", get(api::user))
        .route("/api/health", get(api::health))
        .route("/openapi.json", get(openapi::document));
    if !config.anonymous_mode {
        router = router.nest("/auth", auth_routes(config)?);
    }
    let router = router
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(authentication)
        .layer(api::cors(&config.cors_origins))
        .with_state(state.clone());
    Ok((router, state))
}

/// Khoj's `/auth` router: sign-in by mail, sign-out, API keys.
fn auth_routes(config: &Config) -> Result<Router<AppState>, ConfigError> {
    let per_address = rate_limit(config, "auth-magic", config.limits.auth_requests_per_hour)?;
    Ok(Router::new()
        .route(
            "/magic",
            post(magic::request).get(magic::verify).layer(per_address),
        )
        .route("/login", get(oidc::login).post(oidc::login))
        .route("/redirect", get(oidc::redirect).post(oidc::one_tap))
        .route("/logout", get(session::logout))
        .route("/oauth/metadata", get(session::oauth_metadata))
        .route(
            "/token",
            post(tokens::create)
                .get(tokens::list)
                .delete(tokens::delete),
        ))
}

fn rate_limit(config: &Config, name: &str, per_hour: u32) -> Result<RateLimitLayer, ConfigError> {
    let invalid =
        |error: &dyn std::fmt::Display| ConfigError::Invalid("rate limits", error.to_string());
    let client_ip = ClientIp::new(|parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
    })
    .trust_proxies(&config.trusted_proxies)
    .map_err(|error| ConfigError::Invalid("TRUSTED_PROXIES", error.to_string()))?;
    let policy =
        Policy::new(name, Limit::per_hour(per_hour), KeyBy::ClientIp).map_err(|e| invalid(&e))?;
    let mut builder = RateLimitLayer::builder()
        .policy(policy)
        .client_ip(client_ip);
    if let Some(url) = &config.redis_url {
        let redis = RedisLimits::open(url, WhenRedisDown::FailOpen)
            .map_err(|error| ConfigError::Invalid("REDIS_URL", error.to_string()))?
            .prefix(format!("{}rl:", config.redis_prefix));
        builder = builder.redis(redis);
    }
    builder.build().map_err(|e| invalid(&e))
}

/// Khoj's default user, created on first start in anonymous mode.
async fn default_user(auth: &Auth) -> Result<portcullis::store::User, ConfigError> {
    let database = |error: portcullis::store::StoreError| ConfigError::Database(error.to_string());
    if let Some(user) = auth
        .users()
        .user_by_username(DEFAULT_USERNAME)
        .await
        .map_err(database)?
    {
        return Ok(user);
    }
    let new_user = NewUser::new(DEFAULT_USERNAME)
        .email(DEFAULT_EMAIL)
        .email_verified(true);
    match auth.users().create_user(new_user, auth.now()).await {
        Ok(user) => Ok(user),
        Err(portcullis::store::StoreError::Conflict(_)) => auth
            .users()
            .user_by_username(DEFAULT_USERNAME)
            .await
            .map_err(database)?
            .ok_or_else(|| ConfigError::Database("the default user vanished".into())),
        Err(error) => Err(database(error)),
    }
}

/// Serves on an already bound listener until Ctrl-C.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Runs the server described by `config`.
pub async fn run(config: Config) -> Result<(), ConfigError> {
    let bind_error =
        |error: std::io::Error| ConfigError::Bind(config.bind.clone(), error.to_string());
    let listener = TcpListener::bind(&config.bind).await.map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let (router, state) = build(&config, &public_url).await?;
    println!("listening on http://{address}");
    // After the address line, which tools (and the tests) read first.
    if config.no_https
        && !public_url.contains("://127.0.0.1")
        && !public_url.contains("://localhost")
    {
        tracing::warn!(
            "KHOJ_NO_HTTPS: sign-in links and session cookies cross the network in the clear; \
             serve Khoj behind HTTPS wherever others share the network"
        );
    }
    if config.smtp.is_none() {
        tracing::warn!(
            "SMTP_URL is not set: sign-in codes and links are written to this log, not mailed"
        );
    }
    if state.anonymous_mode {
        tracing::info!("anonymous mode: every request is the user {DEFAULT_USERNAME}");
    } else {
        tracing::info!("sign in at {public_url}/login");
    }
    let purger = tokio::spawn(purge_dead_tokens(state.auth.clone()));
    let served = serve(listener, router).await;
    purger.abort();
    served.map_err(bind_error)?;
    if let Err(error) = state.auth.flush_last_used().await {
        tracing::warn!(%error, "could not record the last API key uses on shutdown");
    }
    Ok(())
}

/// Deletes tokens dead for a day, at start-up and hourly.
async fn purge_dead_tokens(auth: Auth) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match auth.purge_tokens(Duration::from_secs(86_400)).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged dead tokens"),
            Err(error) => tracing::warn!(%error, "could not purge dead tokens; will retry"),
        }
    }
}
