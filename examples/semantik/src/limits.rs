//! Rate limits and login throttling. The API-key limits are upstream's; Semantik documents no
//! others, so the rest are conservative defaults for an internet-facing auth API:
//!
//! | route | limit | key |
//! |---|---|---|
//! | `POST /api/auth/login` | 10 per minute | client address |
//! | `POST /api/auth/register` | 20 per hour | client address |
//! | `POST /api/auth/refresh` | 60 per minute | client address |
//! | `POST /api/v2/api-keys` | 5 per hour (`API_KEY_CREATE_RATE_LIMIT`) | user |
//! | `PATCH /api/v2/api-keys/{id}` | 30 per minute (`API_KEY_UPDATE_RATE_LIMIT`) | user |
//! | `GET /api/v2/api-keys[/{id}]` | 60 per minute (`API_KEY_LIST_RATE_LIMIT`) | user |
//! | every authenticated request | 600 per minute | user |
//! | every request answered 401 (a bad or missing credential) | 30 per minute | client address |
//!
//! plus failed-login back-off per account and per address ([`LoginThrottle`]). The failure
//! limit runs in front of authentication, so guessing the internal key or flooding random
//! API keys is slowed before any store is asked (`AUTH_FAILURES_PER_MINUTE` changes it). With
//! `REDIS_URL` the buckets and the throttle are shared by every instance; while Redis is down
//! requests are let through (`RATE_LIMIT_WHEN_REDIS_DOWN=open`, the default) or refused with
//! 503 (`closed`). `REDIS_PREFIX` (default `{semantik}:`) namespaces the keys when deployments
//! share a Redis. `TRUSTED_PROXIES` lists the proxies (addresses or CIDR blocks) whose
//! forwarding header is believed, and `FORWARDED_HEADER` names the header they write:
//! `x-forwarded-for` (the default), `forwarded` (RFC 7239), or another such as `x-real-ip`.
//! IPv6 clients are counted per /64.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use portcullis::ratelimit::{
    Charge, ClientIp, ForwardedHeader, KeyBy, Limit, LoginThrottle, Policy, RateLimitLayer,
    RedisLimits, ThrottlePolicy, WhenRedisDown,
};

use super::{AppState, Config, ConfigError};

/// The default of `AUTH_FAILURES_PER_MINUTE`.
pub const AUTH_FAILURES_PER_MINUTE: u32 = 30;

pub struct Limits {
    /// In front of authentication: failed authentications per client address.
    pub auth_failures: RateLimitLayer,
    pub login: RateLimitLayer,
    pub register: RateLimitLayer,
    pub refresh: RateLimitLayer,
    pub api: RateLimitLayer,
    pub key_create: RateLimitLayer,
    pub key_update: RateLimitLayer,
    pub key_read: RateLimitLayer,
    pub throttle: LoginThrottle,
    pub client_ip: ClientIp,
}

fn invalid(name: &'static str, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(name, error.to_string())
}

fn client_ip(config: &Config) -> Result<ClientIp, ConfigError> {
    ClientIp::new(|parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
    })
    .trust_proxies(&config.trusted_proxies)
    .map(|client_ip| client_ip.header(config.forwarded_header.clone()))
    .map_err(|error| invalid("TRUSTED_PROXIES", error))
}

fn layer(config: &Config, policy: Policy) -> Result<RateLimitLayer, ConfigError> {
    let mut builder = RateLimitLayer::builder()
        .policy(policy)
        .client_ip(client_ip(config)?);
    if let Some(url) = &config.redis_url {
        let redis = RedisLimits::open(url, config.when_redis_down)
            .map_err(|e| invalid("REDIS_URL", e))?
            .prefix(format!("{}rl:", config.redis_prefix));
        builder = builder.redis(redis);
    }
    builder
        .build()
        .map_err(|error| invalid("rate limits", error))
}

fn policy(name: &str, limit: Limit, key: KeyBy) -> Result<Policy, ConfigError> {
    Policy::new(name, limit, key).map_err(|error| invalid("rate limits", error))
}

pub fn build(config: &Config) -> Result<Limits, ConfigError> {
    let throttle = match &config.redis_url {
        Some(url) => LoginThrottle::redis(url, ThrottlePolicy::default(), config.when_redis_down)
            .map_err(|e| invalid("REDIS_URL", e))?
            .prefix(format!("{}throttle:", config.redis_prefix)),
        None => LoginThrottle::in_memory(),
    };
    let keys = config.api_key_limits;
    let failures = Limit::per_minute(config.auth_failures_per_minute);
    let failures =
        policy("auth-failures", failures, KeyBy::ClientIp)?.charge(Charge::FailedAuthentication);
    Ok(Limits {
        auth_failures: layer(config, failures)?,
        login: layer(
            config,
            policy("login", Limit::per_minute(10), KeyBy::ClientIp)?,
        )?,
        register: layer(
            config,
            policy("register", Limit::per_hour(20), KeyBy::ClientIp)?,
        )?,
        refresh: layer(
            config,
            policy("refresh", Limit::per_minute(60), KeyBy::ClientIp)?,
        )?,
        api: layer(config, policy("api", Limit::per_minute(600), KeyBy::User)?)?,
        key_create: layer(
            config,
            policy(
                "api-key-create",
                Limit::per_hour(keys.creates_per_hour),
                KeyBy::User,
            )?,
        )?,
        key_update: layer(
            config,
            policy(
                "api-key-update",
                Limit::per_minute(keys.updates_per_minute),
                KeyBy::User,
            )?,
        )?,
        key_read: layer(
            config,
            policy(
                "api-key-list",
                Limit::per_minute(keys.reads_per_minute),
                KeyBy::User,
            )?,
        )?,
        throttle,
        client_ip: client_ip(config)?,
    })
}

pub fn forwarded_header(value: Option<String>) -> Result<ForwardedHeader, ConfigError> {
    let Some(name) = value.map(|name| name.trim().to_ascii_lowercase()) else {
        return Ok(ForwardedHeader::XForwardedFor);
    };
    match name.as_str() {
        "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
        "forwarded" => Ok(ForwardedHeader::Forwarded),
        other => http::HeaderName::from_bytes(other.as_bytes())
            .map(ForwardedHeader::Named)
            .map_err(|error| invalid("FORWARDED_HEADER", error)),
    }
}

pub fn when_redis_down(value: Option<String>) -> Result<WhenRedisDown, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("open") => Ok(WhenRedisDown::FailOpen),
        Some("closed") => Ok(WhenRedisDown::FailClosed),
        Some(other) => Err(invalid(
            "RATE_LIMIT_WHEN_REDIS_DOWN",
            format!("{other:?} is not open or closed"),
        )),
    }
}

/// The client's address, as the rate limits see it.
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.client_ip.of(parts)))
    }
}
