//! Rate limits and login throttling. Semantik documents none, so these are conservative
//! defaults for an internet-facing auth API:
//!
//! | route | limit | key |
//! |---|---|---|
//! | `POST /api/auth/login` | 10 per minute | client address |
//! | `POST /api/auth/register` | 20 per hour | client address |
//! | `POST /api/auth/refresh` | 60 per minute | client address |
//! | every authenticated request | 600 per minute | user |
//!
//! plus failed-login back-off per account and per address ([`LoginThrottle`]). With
//! `REDIS_URL` the buckets and the throttle are shared by every instance; while Redis is down
//! requests are let through (`RATE_LIMIT_WHEN_REDIS_DOWN=open`, the default) or refused with
//! 503 (`closed`). `REDIS_PREFIX` (default `{semantik}:`) namespaces the keys when deployments
//! share a Redis. `TRUSTED_PROXIES` lists the proxies (addresses or CIDR blocks) whose
//! `X-Forwarded-For` / `Forwarded` headers are believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use portcullis::ratelimit::{
    ClientIp, KeyBy, Limit, LoginThrottle, Policy, RateLimitLayer, RedisLimits, ThrottlePolicy,
    WhenRedisDown,
};

use super::{AppState, Config, ConfigError};

pub struct Limits {
    pub login: RateLimitLayer,
    pub register: RateLimitLayer,
    pub refresh: RateLimitLayer,
    pub api: RateLimitLayer,
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
    Ok(Limits {
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
        throttle,
        client_ip: client_ip(config)?,
    })
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
