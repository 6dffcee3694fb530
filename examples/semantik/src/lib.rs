//! The Semantik service: configuration, state, routes.

mod api;
mod auth_routes;
mod cli;
mod collections;
mod config;
mod db;
mod internal;
mod key_ids;
mod keys;
mod limits;
mod openapi;
mod webui;
mod ws;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use portcullis::flows::PasswordLogin;
use portcullis::guard::RequireLayer;
use portcullis::source::{Bearer, InternalKey};
use portcullis::token::TokenFormat;
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::{
    AccessTokens, ApiKeys, Auth, AuthLayer, JsonErrors, JwtConfig, PasswordPolicy, Passwords,
    RefreshTokens, TokenPairs,
};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use cli::{CreateUser, USAGE, create_user};
pub use config::{Config, ConfigError};

/// Permissions an API key may be limited to.
pub const PERMISSIONS: [&str; 3] = ["collections:read", "collections:write", "keys:manage"];

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub auth: Auth,
    pub login: PasswordLogin,
    /// Completes sign-ins and refreshes with an access and a refresh token.
    pub tokens: TokenPairs,
    pub api_keys: ApiKeys,
    pub db: db::Database,
    pub client_ip: portcullis::ratelimit::ClientIp,
    /// How recent a sign-in must be to create an API key.
    pub key_creation_max_auth_age: Duration,
    /// How often an open WebSocket re-checks its token.
    pub ws_recheck: Duration,
    /// Which browser origins may open a WebSocket.
    pub ws_origins: ws::AllowedOrigins,
    /// Whether the first registrant becomes superuser.
    pub first_user_is_superuser: bool,
}

/// Opens the database and builds the router.
pub async fn build(config: &Config) -> Result<(Router, AppState), ConfigError> {
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
    let db = connected.database;

    let limits = limits::build(config)?;
    let passwords = Passwords::new(PasswordPolicy::default().min_length(8));
    let login = PasswordLogin::new(&auth, &passwords).throttle(limits.throttle);
    let keys = JwtKeys::new(JwtKey::hs256(config.jwt_secret.as_bytes()).map_err(ConfigError::Key)?)
        .map_err(ConfigError::Key)?;
    let access = AccessTokens::new(
        &auth,
        keys,
        JwtConfig::new("semantik", "semantik-api").ttl(config.access_token_ttl),
    );
    let refresh = RefreshTokens::new(&auth, format("smtr_"), Duration::from_secs(30 * 86_400));
    let api_keys = ApiKeys::new(&auth, format("smtk_"))
        .default_ttl(Some(Duration::from_secs(365 * 86_400)))
        .max_active_per_user(keys::MAX_ACTIVE_KEYS);

    let authentication = AuthLayer::builder()
        .source(Bearer::new(api_keys.clone()))
        .source(Bearer::new(access.clone()))
        .source(
            InternalKey::new("semantik-internal", &config.internal_api_key)
                .map_err(|_| ConfigError::InternalKeyTooShort)?,
        )
        .renderer(JsonErrors::new("semantik"))
        .build();

    let state = AppState {
        auth,
        login,
        tokens: TokenPairs::new(access, refresh),
        api_keys,
        db,
        client_ip: limits.client_ip,
        key_creation_max_auth_age: config.key_creation_max_auth_age,
        ws_recheck: config.ws_recheck,
        ws_origins: ws::AllowedOrigins::new(&config.cors_origins),
        first_user_is_superuser: config.first_user_is_superuser,
    };
    let pages = match &config.webui_dir {
        Some(dir) => webui::routes(dir)?,
        None => Router::new(),
    };
    let router = pages
        .route(
            "/api/auth/register",
            post(auth_routes::register).layer(limits.register),
        )
        .route(
            "/api/auth/login",
            post(auth_routes::login).layer(limits.login),
        )
        .route(
            "/api/auth/refresh",
            post(auth_routes::refresh).layer(limits.refresh),
        )
        // Ending sessions, and the interactive channel, are for a person's credential: an
        // API key, whatever its permissions, is a program's.
        .route(
            "/api/auth/logout",
            post(auth_routes::logout).layer(RequireLayer::signed_in()),
        )
        .route("/api/auth/me", get(auth_routes::me))
        .route(
            "/api/v2/api-keys",
            post(keys::create)
                .layer::<_, std::convert::Infallible>(limits.key_create)
                .merge(get(keys::list).layer(limits.key_read.clone()))
                .layer(RequireLayer::scope("keys:manage")),
        )
        .route(
            "/api/v2/api-keys/{key_id}",
            get(keys::get_one)
                .layer::<_, std::convert::Infallible>(limits.key_read)
                .merge(patch(keys::update).layer(limits.key_update))
                .layer(RequireLayer::scope("keys:manage")),
        )
        .route(
            "/api/collections",
            post(collections::create)
                .layer(RequireLayer::scope("collections:write"))
                .merge(get(collections::list).layer(RequireLayer::scope("collections:read"))),
        )
        .route(
            "/api/collections/{id}",
            get(collections::get_one).layer(RequireLayer::scope("collections:read")),
        )
        .nest(
            "/api/internal",
            internal::routes().layer(RequireLayer::service()),
        )
        // Authenticated in the handshake, so that refusals are close codes a browser can read.
        .route("/ws/operations", get(ws::operations))
        .route("/openapi.json", get(openapi::document))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(limits.api)
        .layer(authentication)
        .layer(limits.auth_failures)
        .layer(cors(&config.cors_origins))
        .with_state(state.clone());
    Ok((router, state))
}

fn format(prefix: &'static str) -> TokenFormat {
    match TokenFormat::new(prefix) {
        Ok(format) => format,
        Err(error) => unreachable!("constant prefix {prefix:?} is valid: {error}"),
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    use http::{Method, header};
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::PATCH])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|origin| origin == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let origins = origins.iter().filter_map(|origin| origin.parse().ok());
    layer
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
}

/// Serves on an already bound listener until the future completes (tests) or forever.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the server described by `config`.
pub async fn run(config: Config) -> Result<(), ConfigError> {
    let (router, state) = build(&config).await?;
    let listener = TcpListener::bind(&config.bind)
        .await
        .map_err(|error| ConfigError::Bind(config.bind.clone(), error.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|error| ConfigError::Bind(config.bind.clone(), error.to_string()))?;
    println!("listening on http://{address}");
    // After the address line, which tools (and the tests) read first.
    warn_while_ownerless(&state).await;
    // Rotated refresh tokens are kept for a refresh-token lifetime, so reuse is still caught.
    let purger = tokio::spawn(purge_dead_tokens(
        state.auth.clone(),
        state.tokens.refresh_tokens().ttl(),
    ));
    let served = serve(listener, router).await;
    purger.abort();
    served.map_err(|error| ConfigError::Bind(config.bind.clone(), error.to_string()))?;
    if let Err(error) = state.auth.flush_last_used().await {
        tracing::warn!(%error, "could not record the last API key uses on shutdown");
    }
    Ok(())
}

/// Warns at start-up while no account exists: with the first-registrant rule on, whoever
/// reaches `/api/auth/register` first owns the instance.
async fn warn_while_ownerless(state: &AppState) {
    match state.auth.users().count_users().await {
        Ok(0) if state.first_user_is_superuser => tracing::warn!(
            "no user exists yet: the first account registered at /api/auth/register becomes \
             superuser. Create it first with `semantik create-user --username U --email E \
             --password P --superuser`, or set FIRST_USER_IS_SUPERUSER=false"
        ),
        Ok(0) => tracing::warn!(
            "no user exists yet; create the superuser with `semantik create-user --username U \
             --email E --password P --superuser`"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not count the users"),
    }
}

/// Deletes dead tokens (expired or revoked more than `retention` ago) at start-up and hourly.
async fn purge_dead_tokens(auth: Auth, retention: Duration) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match auth.purge_tokens(retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged dead tokens"),
            Err(error) => tracing::warn!(%error, "could not purge dead tokens; will retry"),
        }
    }
}
