//! The in-process backend: one [`governor`] keyed GCRA limiter per policy.
//!
//! Keys are hashed once with a per-process random key (SipHash) into a `u64`, so a bucket
//! costs a fixed few dozen bytes whatever the key's length, and the hash map needs no second
//! hash. Buckets that have fully refilled are indistinguishable from new ones and are dropped
//! by a janitor every few seconds, which bounds memory by the keys seen within one window.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, QuantaClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::policy::{Decision, Limit, Policy, RequestKey};

/// The `u64` keys are already uniformly random (keyed SipHash): hash them as themselves.
#[derive(Clone, Copy, Debug, Default)]
struct PreHashed;

#[derive(Default)]
struct PreHashedHasher(u64);

impl Hasher for PreHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in for completeness.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl BuildHasher for PreHashed {
    type Hasher = PreHashedHasher;

    fn build_hasher(&self) -> PreHashedHasher {
        PreHashedHasher::default()
    }
}

/// One policy's limiter, whatever its clock.
pub(crate) trait KeyedLimiter: Send + Sync {
    /// The decision on one request. A counting limiter charges an admitted request at once; a
    /// deferred one only decides, and is charged by [`charge`](Self::charge).
    fn check(&self, key: u64) -> Decision;
    /// Charges one request after its answer (deferred limiters only).
    fn charge(&self, key: u64) {
        let _ = key;
    }
    fn retain_recent(&self);
    fn len(&self) -> usize;
}

/// GCRA charged after the fact ([`Charge::FailedAuthentication`](super::Charge)): `check`
/// looks without consuming, `charge` consumes, and may overdraw (the theoretical arrival time
/// moves past the tolerance), which later requests pay for by waiting. Buckets live in a
/// bounded cache: under a flood of distinct keys the oldest are forgotten, never the memory
/// bound.
struct Deferred<C: Clock> {
    /// Theoretical arrival time per key, in nanoseconds since `origin`.
    buckets: quick_cache::sync::Cache<u64, Arc<std::sync::atomic::AtomicU64>>,
    clock: C,
    origin: C::Instant,
    limit: Limit,
}

/// The most keys a deferred limiter remembers.
const DEFERRED_CAPACITY: usize = 100_000;

impl<C: Clock> Deferred<C> {
    fn new(limit: Limit, clock: C) -> Self {
        Self {
            buckets: quick_cache::sync::Cache::new(DEFERRED_CAPACITY),
            origin: clock.now(),
            clock,
            limit,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.origin).as_u64()
    }

    fn nanos(duration: Duration) -> u64 {
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl<C> KeyedLimiter for Deferred<C>
where
    C: Clock + Send + Sync,
    C::Instant: Reference + Send + Sync,
{
    fn check(&self, key: u64) -> Decision {
        let now = self.now();
        let interval = Self::nanos(self.limit.emission_interval());
        let burst = self.limit.max_burst();
        let tolerance = interval.saturating_mul(u64::from(burst - 1));
        let tat = self
            .buckets
            .get(&key)
            .map_or(now, |tat| tat.load(std::sync::atomic::Ordering::Acquire))
            .max(now);
        let allow_at = tat.saturating_sub(tolerance);
        if now < allow_at {
            let retry_after = Duration::from_nanos(allow_at - now);
            return Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset: Duration::from_nanos(tat - now),
                retry_after,
            };
        }
        let spare = (now + tolerance - tat) / interval.max(1) + 1;
        Decision {
            allowed: true,
            limit: burst,
            remaining: u32::try_from(spare).unwrap_or(burst).min(burst),
            reset: Duration::from_nanos(tat - now),
            retry_after: Duration::ZERO,
        }
    }

    fn charge(&self, key: u64) {
        let now = self.now();
        let interval = Self::nanos(self.limit.emission_interval());
        let bucket = self
            .buckets
            .get_or_insert_with(&key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(std::sync::atomic::AtomicU64::new(now)))
            })
            .unwrap_or_else(|never| match never {});
        let _ = bucket.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |tat| Some(tat.max(now).saturating_add(interval)),
        );
    }

    fn retain_recent(&self) {}

    fn len(&self) -> usize {
        self.buckets.len()
    }
}

struct Governed<C: Clock> {
    limiter: RateLimiter<u64, DashMapStateStore<u64, PreHashed>, C, StateInformationMiddleware>,
    limit: Limit,
}

impl<C> KeyedLimiter for Governed<C>
where
    C: Clock + Send + Sync,
    C::Instant: Reference + Send + Sync,
{
    fn check(&self, key: u64) -> Decision {
        let interval = self.limit.emission_interval();
        let burst = self.limit.max_burst();
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(burst);
                Decision {
                    allowed: true,
                    limit: burst,
                    remaining,
                    reset: interval * (burst - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    limit: burst,
                    remaining: 0,
                    reset: retry_after + interval * (burst - 1),
                    retry_after,
                }
            }
        }
    }

    fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }
}

fn quota(limit: Limit) -> Quota {
    // `with_period` only refuses a zero period, which `Limit` never has.
    Quota::with_period(limit.emission_interval())
        .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
        .allow_burst(limit.burst_nonzero())
}

/// In-process limits for every policy of a layer.
pub(crate) struct MemoryLimits {
    limiters: Vec<Arc<dyn KeyedLimiter>>,
    hasher: RandomState,
    janitor: std::sync::Once,
    sweep_every: Duration,
}

impl MemoryLimits {
    pub(crate) fn new(policies: &[Policy]) -> Self {
        Self::with_clock(policies, QuantaClock::default())
    }

    pub(crate) fn with_clock<C>(policies: &[Policy], clock: C) -> Self
    where
        C: Clock + Clone + Send + Sync + 'static,
        C::Instant: Reference + Send + Sync,
    {
        let limiters = policies
            .iter()
            .map(|policy| {
                if policy.is_deferred() {
                    return Arc::new(Deferred::new(policy.limit(), clock.clone()))
                        as Arc<dyn KeyedLimiter>;
                }
                let limiter = RateLimiter::dashmap_with_clock_and_hasher(
                    quota(policy.limit()),
                    clock.clone(),
                    PreHashed,
                )
                .with_middleware::<StateInformationMiddleware>();
                Arc::new(Governed {
                    limiter,
                    limit: policy.limit(),
                }) as Arc<dyn KeyedLimiter>
            })
            .collect();
        Self {
            limiters,
            hasher: RandomState::new(),
            janitor: std::sync::Once::new(),
            sweep_every: Self::SWEEP_EVERY,
        }
    }

    /// How often the janitor drops refilled buckets.
    const SWEEP_EVERY: Duration = Duration::from_secs(5);

    #[cfg(test)]
    fn sweeping_every(mut self, interval: Duration) -> Self {
        self.sweep_every = interval;
        self
    }

    pub(crate) fn check(&self, policy: usize, key: &RequestKey) -> Decision {
        self.start_janitor();
        let hashed = self.hasher.hash_one(key);
        self.limiters[policy].check(hashed)
    }

    /// Charges a deferred policy for one request after its answer.
    pub(crate) fn charge(&self, policy: usize, key: &RequestKey) {
        let hashed = self.hasher.hash_one(key);
        self.limiters[policy].charge(hashed);
    }

    /// Buckets currently held (all policies).
    pub(crate) fn len(&self) -> usize {
        self.limiters.iter().map(|limiter| limiter.len()).sum()
    }

    /// Drops every bucket that has refilled completely.
    pub(crate) fn retain_recent(&self) {
        for limiter in &self.limiters {
            limiter.retain_recent();
        }
    }

    fn start_janitor(&self) {
        self.janitor.call_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let limiters: Vec<Weak<dyn KeyedLimiter>> =
                self.limiters.iter().map(Arc::downgrade).collect();
            let sweep_every = self.sweep_every;
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(sweep_every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let mut alive = false;
                    for limiter in limiters.iter().filter_map(Weak::upgrade) {
                        alive = true;
                        limiter.retain_recent();
                    }
                    if !alive {
                        break;
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::ratelimit::KeyBy;

    #[test]
    fn pre_hashed_keys_hash_as_themselves() {
        assert_eq!(
            PreHashed.hash_one(0x1234_5678_9abc_def0_u64),
            0x1234_5678_9abc_def0
        );
        // Other inputs still spread out, though the limiters only ever hash `u64`s.
        assert_ne!(PreHashed.hash_one("a"), PreHashed.hash_one("b"));
        assert_ne!(PreHashed.hash_one("ab"), PreHashed.hash_one("ba"));
    }

    #[tokio::test]
    async fn the_janitor_drops_refilled_buckets_on_its_own() {
        let clock = FakeRelativeClock::default();
        let policy = Policy::new("ip", Limit::per_second(1), KeyBy::ClientIp).unwrap();
        let limits = MemoryLimits::with_clock(&[policy], clock.clone())
            .sweeping_every(Duration::from_millis(10));
        // Twice: the janitor keeps sweeping while the limits are alive.
        for round in 0..2u8 {
            for n in 1..=10u8 {
                let key = RequestKey::Ip(Some(std::net::IpAddr::from([192, 0, round, n])));
                assert!(limits.check(0, &key).allowed);
            }
            assert_eq!(limits.len(), 10);
            clock.advance(Duration::from_secs(2));
            // No call to `retain_recent`: the janitor started by the first check sweeps.
            let mut waited = 0;
            while limits.len() > 0 {
                assert!(
                    waited < 500,
                    "round {round}: the janitor left {}",
                    limits.len()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += 1;
            }
        }
    }
}
