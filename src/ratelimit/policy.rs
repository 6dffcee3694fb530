//! What to limit: a rate ([`Limit`]), who it applies to ([`KeyBy`]), under a name ([`Policy`]).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::identity::{AuthMethod, Identity};

/// A GCRA rate: `count` requests per `period`, with bursts of up to `burst` (default `count`).
///
/// GCRA spaces requests one *emission interval* (`period / count`) apart and tolerates
/// `burst - 1` of them arriving early: `Limit::per_minute(60)` admits 60 at once, then one per
/// second as the bucket refills.
///
/// ```
/// use std::time::Duration;
/// use portcullis::ratelimit::Limit;
///
/// let limit = Limit::per_second(10).burst(20);
/// assert_eq!(limit.emission_interval(), Duration::from_millis(100));
/// assert_eq!(limit.max_burst(), 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl Limit {
    /// `count` requests per `period` (both at least 1; zero is raised to one).
    pub fn new(count: u32, period: Duration) -> Self {
        let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
        Self {
            count,
            period: period.max(Duration::from_micros(1)),
            burst: count,
        }
    }

    /// `count` per second.
    pub fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Self {
        Self::new(count, Duration::from_secs(3600))
    }

    /// `count` per day.
    pub fn per_day(count: u32) -> Self {
        Self::new(count, Duration::from_secs(86_400))
    }

    /// Allows bursts of `burst` requests (at least 1).
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// The time one request "costs": `period / count`.
    pub fn emission_interval(&self) -> Duration {
        (self.period / self.count.get()).max(Duration::from_nanos(1))
    }

    /// The largest burst admitted at once.
    pub fn max_burst(&self) -> u32 {
        self.burst.get()
    }

    pub(crate) fn burst_nonzero(&self) -> NonZeroU32 {
        self.burst
    }

    /// How long an empty bucket takes to refill completely: the policy's window.
    pub fn window(&self) -> Duration {
        self.emission_interval() * self.burst.get()
    }
}

/// A custom key function: the key for a request, or `None` to exempt it.
pub type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Whom a policy counts requests of.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client's IP address (see [`ClientIp`](super::ClientIp)), IPv6 clients per /64 by
    /// default. Requests whose address is unknown share one bucket.
    ClientIp,
    /// The authenticated user; anonymous requests are not counted by this policy (pair it with
    /// a [`KeyBy::ClientIp`] policy). Needs the `AuthLayer` to run first.
    User,
    /// The API key; requests authenticated otherwise are not counted by this policy.
    ApiKey,
    /// One bucket for every request through the layer: a limit for the route as a whole.
    Route,
    /// Your own key; `None` exempts the request from this policy.
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientIp => "ClientIp",
            Self::User => "User",
            Self::ApiKey => "ApiKey",
            Self::Route => "Route",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// Which requests a policy counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Charge {
    /// Every request that passes (the default).
    #[default]
    EveryRequest,
    /// Only requests answered `401 Unauthorized`: failed authentications, a bad credential or
    /// none where one is required. Requests are let through while the budget lasts and refused
    /// once it is spent; the answer decides whether one is charged. Put the layer *in front of*
    /// the `AuthLayer` (add it with `.layer()` after it), keyed by client IP, so that guessing
    /// credentials costs the guesser before any store is asked.
    ///
    /// Requests in flight at once are each let through before any of them is charged, so a
    /// burst of `n` concurrent failures can overdraw the budget by up to `n`; the overdraft is
    /// paid back by waiting, so the long-run rate never exceeds the limit.
    FailedAuthentication,
}

/// A named limit on a key.
///
/// ```
/// use portcullis::ratelimit::{Charge, KeyBy, Limit, Policy};
///
/// let per_key = Policy::new("per-key", Limit::per_second(10), KeyBy::ApiKey)?;
/// let per_user = Policy::new("daily", Limit::per_day(1000), KeyBy::User)?;
/// let guesses = Policy::new("auth-failures", Limit::per_minute(30), KeyBy::ClientIp)?
///     .charge(Charge::FailedAuthentication);
/// # Ok::<(), portcullis::ratelimit::InvalidPolicyName>(())
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    name: String,
    limit: Limit,
    key: KeyBy,
    charge: Charge,
}

/// A policy name that is empty, longer than 32 bytes, or not lower-case letters, digits, `-`
/// and `_` (it appears in the `RateLimit-Policy` header).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate-limit policy name {0:?}: use 1 to 32 of a-z, 0-9, '-' and '_'")]
pub struct InvalidPolicyName(pub String);

impl Policy {
    /// A policy named `name` (1 to 32 of `a-z 0-9 - _`).
    pub fn new(
        name: impl Into<String>,
        limit: Limit,
        key: KeyBy,
    ) -> Result<Self, InvalidPolicyName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(InvalidPolicyName(name));
        }
        Ok(Self {
            name,
            limit,
            key,
            charge: Charge::EveryRequest,
        })
    }

    /// Counts only the requests `charge` names (default: every request).
    #[must_use]
    pub fn charge(mut self, charge: Charge) -> Self {
        self.charge = charge;
        self
    }

    /// Which requests the policy counts.
    pub fn charges(&self) -> Charge {
        self.charge
    }

    /// Whether the policy is charged after the answer rather than before.
    pub(crate) fn is_deferred(&self) -> bool {
        self.charge == Charge::FailedAuthentication
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rate.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Whom it counts.
    pub fn key_by(&self) -> &KeyBy {
        &self.key
    }
}

/// Whom one request is counted as under one policy: hashed as is for the in-memory backend
/// (no allocation), written out for Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RequestKey {
    Ip(Option<std::net::IpAddr>),
    User(crate::store::UserId),
    ApiKey(crate::store::TokenId),
    Route,
    Custom(String),
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(Some(ip)) => write!(f, "ip:{ip}"),
            Self::Ip(None) => f.write_str("ip:unknown"),
            Self::User(user) => write!(f, "user:{user}"),
            Self::ApiKey(key) => write!(f, "key:{key}"),
            Self::Route => f.write_str("route"),
            Self::Custom(key) => write!(f, "custom:{key}"),
        }
    }
}

/// The request's key under `key`, or `None` when the policy does not apply to it.
pub(crate) fn request_key(
    key: &KeyBy,
    request: &Parts,
    client_ip: impl FnOnce() -> Option<std::net::IpAddr>,
) -> Option<RequestKey> {
    let identity = || request.extensions.get::<Identity>();
    match key {
        KeyBy::ClientIp => Some(RequestKey::Ip(client_ip())),
        KeyBy::User => identity().and_then(Identity::user_id).map(RequestKey::User),
        KeyBy::ApiKey => match identity().map(Identity::method) {
            Some(AuthMethod::ApiKey { key_id }) => Some(RequestKey::ApiKey(*key_id)),
            _ => None,
        },
        KeyBy::Route => Some(RequestKey::Route),
        KeyBy::Custom(key) => key(request).map(RequestKey::Custom),
    }
}

/// One policy's verdict on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy's burst size (the header's quota, `q`).
    pub limit: u32,
    /// Requests still admitted right now (`r`).
    pub remaining: u32,
    /// Until the bucket is full again (`t`).
    pub reset: Duration,
    /// When refused: until a retry can succeed.
    pub retry_after: Duration,
}
