//! Rate limiting: GCRA policies in memory or on Redis, as a tower layer.
//!
//! ```text
//! request ─▶ AuthLayer ─▶ RateLimitLayer: each policy's key ─▶ bucket ─▶ 429 or on
//! ```
//!
//! * [`Limit`]: a rate and a burst; [`Policy`]: a named limit on a [`KeyBy`] (client IP,
//!   user, API key, route, your own key). Policies stack: `10/s per key` and `1000/day per user`
//!   both apply, in order, and the request is refused if either refuses; a refused request is
//!   not charged to the policies after the one that refused it. A policy can count failed
//!   authentications only ([`Charge::FailedAuthentication`]), in front of authentication.
//! * [`ClientIp`]: the socket peer, or the rightmost untrusted hop of the one forwarding header
//!   ([`ForwardedHeader`]) your trusted proxies write; forwarding headers are never trusted by
//!   default, and IPv6 clients are counted per /64.
//! * Backends: in memory ([`governor`](https://docs.rs/governor)'s GCRA, bounded by a janitor)
//!   or [`RedisLimits`] (one Lua script per check, shared by every instance), with a choice of
//!   [`WhenRedisDown`].

mod client_ip;
mod headers;
mod layer;
mod memory;
mod policy;
mod quota;
#[cfg(feature = "redis")]
mod redis;
#[cfg(test)]
mod tests;
pub mod throttle;

pub use client_ip::{
    ClientIp, DEFAULT_IPV6_PREFIX, ForwardedHeader, InvalidProxy, PeerAddress, client_network,
};
pub use layer::{AuthenticationFailed, RateLimitLayer, RateLimitService, ResponseFuture};
pub use policy::{Charge, Decision, InvalidPolicyName, KeyBy, KeyFn, Limit, Policy};
pub use quota::{QuotaLayer, QuotaService};
#[cfg(feature = "redis")]
pub use redis::{RedisLimits, RedisLimitsError, WhenRedisDown};
pub use throttle::{Attempt, LoginThrottle, ThrottlePolicy, Throttled};

use layer::{Backend, Limits};
use memory::MemoryLimits;

/// Configures a [`RateLimitLayer`].
#[derive(Debug, Default)]
pub struct RateLimitLayerBuilder {
    policies: Vec<Policy>,
    client_ip: Option<ClientIp>,
    #[cfg(feature = "redis")]
    redis: Option<RedisLimits>,
}

/// Why a rate limit layer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    /// No policy was added.
    #[error("a rate limit layer needs at least one policy")]
    NoPolicy,
    /// Two policies share a name.
    #[error("two rate limit policies are named {0:?}")]
    DuplicateName(String),
    /// More than 64 policies in one layer.
    #[error("a rate limit layer takes at most 64 policies")]
    TooManyPolicies,
    /// A policy keys by client IP but no [`ClientIp`] was configured.
    #[error("policy {0:?} keys by client IP: configure `client_ip`")]
    NoClientIp(String),
}

impl RateLimitLayer {
    /// Starts configuring a layer.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::default()
    }
}

impl RateLimitLayerBuilder {
    /// Adds a policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policies.push(policy);
        self
    }

    /// How to find the client's address (needed by [`KeyBy::ClientIp`] policies).
    #[must_use]
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = Some(client_ip);
        self
    }

    /// Keeps the buckets in Redis, shared by every instance (default: in this process).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(mut self, redis: RedisLimits) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Builds the layer.
    pub fn build(self) -> Result<RateLimitLayer, RateLimitConfigError> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis {
            let rest = Self {
                redis: None,
                ..self
            };
            return rest.build_with(Backend::Redis(Box::new(redis)));
        }
        let memory = MemoryLimits::new(&self.policies);
        self.build_with(Backend::Memory(memory))
    }

    fn build_with(self, backend: Backend) -> Result<RateLimitLayer, RateLimitConfigError> {
        if self.policies.is_empty() {
            return Err(RateLimitConfigError::NoPolicy);
        }
        if self.policies.len() > 64 {
            return Err(RateLimitConfigError::TooManyPolicies);
        }
        for (index, policy) in self.policies.iter().enumerate() {
            if self.policies[..index]
                .iter()
                .any(|p| p.name() == policy.name())
            {
                return Err(RateLimitConfigError::DuplicateName(
                    policy.name().to_owned(),
                ));
            }
            if matches!(policy.key_by(), KeyBy::ClientIp) && self.client_ip.is_none() {
                return Err(RateLimitConfigError::NoClientIp(policy.name().to_owned()));
            }
        }
        Ok(RateLimitLayer::from_limits(Limits {
            headers: headers::PolicyHeaders::new(&self.policies),
            policies: self.policies,
            client_ip: self.client_ip,
            backend,
        }))
    }

    #[cfg(test)]
    pub(crate) fn build_with_clock<C>(
        self,
        clock: C,
    ) -> Result<RateLimitLayer, RateLimitConfigError>
    where
        C: governor::clock::Clock + Clone + Send + Sync + 'static,
        C::Instant: governor::clock::Reference + Send + Sync,
    {
        let memory = MemoryLimits::with_clock(&self.policies, clock);
        self.build_with(Backend::Memory(memory))
    }
}
