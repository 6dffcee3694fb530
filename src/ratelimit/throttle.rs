//! [`LoginThrottle`]: back-off after failed logins, per account and per client IP.
//!
//! # The policy
//!
//! * **Per client IP**: the first 20 failures (any accounts) are free; after that, each attempt
//!   must wait `1 s × 2^(failures − 20)` after the previous failure, at most 15 minutes. This
//!   slows credential stuffing from one address to a crawl.
//! * **Per account**: the first 5 failures (from any address) are free; after that the same
//!   doubling back-off applies, at most 15 minutes: password guessing against one account,
//!   even from many addresses, gets at most a few dozen attempts an hour.
//! * **A soft lock, never a hard one**: the account back-off does not apply from an address
//!   that logged into that account successfully in the last 30 days, so an attacker cannot
//!   lock the owner out by failing on purpose; and every wait is capped, so nobody waits more
//!   than 15 minutes for the next attempt.
//! * Failures are forgotten an hour after the last one; a successful login clears the
//!   account's failures (not the address's: a valid login must not reset a stuffing run).
//!
//! Throttled attempts are answered before the password is checked, identically for existing
//! and unknown accounts, so the throttle reveals nothing about which accounts exist.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock, micros};

/// The numbers of the throttling policy; the defaults are described in the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures per account before back-off starts (default 5).
    pub account_free: u32,
    /// Failures per client address before back-off starts (default 20).
    pub address_free: u32,
    /// The first wait (default 1 s); each further failure doubles it.
    pub base: Duration,
    /// The longest wait (default 15 min).
    pub cap: Duration,
    /// Failures are forgotten this long after the last one (default 1 h).
    pub forget_after: Duration,
    /// A successful address is exempt from the account back-off for this long (default 30 d).
    pub trust_known_address_for: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free: 5,
            address_free: 20,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
            trust_known_address_for: Duration::from_secs(30 * 86_400),
        }
    }
}

impl ThrottlePolicy {
    /// The wait after `failures` failures, `free` of which cost nothing.
    fn wait(&self, failures: u32, free: u32) -> Duration {
        if failures < free {
            return Duration::ZERO;
        }
        let doublings = (failures - free).min(30);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

/// A login attempt that must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many failed login attempts; retry in {retry_after:?}")]
pub struct Throttled {
    /// How long until the next attempt is accepted.
    pub retry_after: Duration,
}

/// Failures recorded for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Failures {
    count: u32,
    /// Microseconds since the epoch.
    last: i64,
}

/// Where the failure counts live.
enum State {
    /// Entries past their lifetime are ignored when read and eventually evicted; the capacity
    /// bounds memory however many accounts and addresses an attacker cycles through.
    Memory {
        failures: quick_cache::sync::Cache<String, Failures>,
        /// Until when (microseconds) an address that logged in is trusted for the account.
        known: quick_cache::sync::Cache<String, i64>,
    },
    #[cfg(feature = "redis")]
    Redis(redis_state::RedisState),
}

/// Back-off for failed logins; see the [module docs](self) for the policy.
///
/// ```
/// use portcullis::ratelimit::LoginThrottle;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let throttle = LoginThrottle::in_memory();
/// let ip = Some("203.0.113.9".parse().unwrap());
/// throttle.check("ada", ip).await?;          // before checking the password
/// throttle.failed("ada", ip).await;          // the password was wrong
/// # Ok::<(), portcullis::ratelimit::Throttled>(())
/// # }).unwrap();
/// ```
pub struct LoginThrottle {
    state: State,
    policy: ThrottlePolicy,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The most failure counters (and, separately, trusted addresses) kept in memory.
const MEMORY_CAPACITY: usize = 200_000;

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_ascii_lowercase())
}

fn address_key(address: IpAddr) -> String {
    format!("address:{address}")
}

fn known_key(account: &str, address: IpAddr) -> String {
    format!("known:{}:{address}", account.to_ascii_lowercase())
}

impl LoginThrottle {
    /// A throttle in this process's memory, with the default policy.
    pub fn in_memory() -> Self {
        Self::in_memory_with(ThrottlePolicy::default())
    }

    /// A throttle in memory with another policy.
    pub fn in_memory_with(policy: ThrottlePolicy) -> Self {
        Self {
            state: State::Memory {
                failures: quick_cache::sync::Cache::new(MEMORY_CAPACITY),
                known: quick_cache::sync::Cache::new(MEMORY_CAPACITY),
            },
            policy,
            clock: Arc::new(SystemClock),
        }
    }

    /// A throttle shared by every instance through Redis.
    #[cfg(feature = "redis")]
    pub fn redis(
        url: &str,
        policy: ThrottlePolicy,
        when_down: super::WhenRedisDown,
    ) -> Result<Self, super::RedisLimitsError> {
        Ok(Self {
            state: State::Redis(redis_state::RedisState::open(url, when_down)?),
            policy,
            clock: Arc::new(SystemClock),
        })
    }

    /// Prefixes the throttle's Redis keys (default `{portcullis}:throttle:`).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        if let State::Redis(redis) = &mut self.state {
            redis.prefix = prefix.into();
        }
        self
    }

    /// Replaces the clock (tests use [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// Whether an attempt for `account` from `address` may be checked now.
    pub async fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        let now = self.clock.now_micros();
        let (by_address, by_account, known) = match self.read(account, address).await {
            Some(read) => read,
            None => return self.when_unavailable(),
        };
        let mut wait = Duration::ZERO;
        if let Some(failures) = by_address {
            wait = wait.max(self.remaining(failures, self.policy.address_free, now));
        }
        if let Some(failures) = by_account.filter(|_| !known) {
            wait = wait.max(self.remaining(failures, self.policy.account_free, now));
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Throttled { retry_after: wait })
        }
    }

    fn remaining(&self, failures: Failures, free: u32, now: i64) -> Duration {
        let wait = self.policy.wait(failures.count, free);
        let waited = Duration::from_micros(u64::try_from(now - failures.last).unwrap_or(0));
        wait.saturating_sub(waited)
    }

    /// Records a failed attempt.
    pub async fn failed(&self, account: &str, address: Option<IpAddr>) {
        let now = self.clock.now_micros();
        let mut keys = vec![account_key(account)];
        keys.extend(address.map(address_key));
        match &self.state {
            State::Memory { failures, .. } => {
                for key in keys {
                    let previous = self.recent(failures.get(&key), now).unwrap_or_default();
                    failures.insert(
                        key,
                        Failures {
                            count: previous.count.saturating_add(1),
                            last: now,
                        },
                    );
                }
            }
            #[cfg(feature = "redis")]
            State::Redis(redis) => redis.failed(&keys, now, self.policy.forget_after).await,
        }
    }

    /// Records a successful login: the account's failures are cleared and the address is
    /// trusted for it.
    pub async fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        match &self.state {
            State::Memory { failures, known } => {
                failures.remove(&account_key(account));
                if let Some(address) = address {
                    let trusted_until = self
                        .clock
                        .now_micros()
                        .saturating_add(micros(self.policy.trust_known_address_for));
                    known.insert(known_key(account, address), trusted_until);
                }
            }
            #[cfg(feature = "redis")]
            State::Redis(redis) => {
                let known = address.map(|address| known_key(account, address));
                redis
                    .succeeded(
                        &account_key(account),
                        known.as_deref(),
                        self.policy.trust_known_address_for,
                    )
                    .await;
            }
        }
    }

    async fn read(
        &self,
        account: &str,
        address: Option<IpAddr>,
    ) -> Option<(Option<Failures>, Option<Failures>, bool)> {
        match &self.state {
            State::Memory { failures, known } => {
                let now = self.clock.now_micros();
                Some((
                    address.and_then(|a| self.recent(failures.get(&address_key(a)), now)),
                    self.recent(failures.get(&account_key(account)), now),
                    address.is_some_and(|a| {
                        known
                            .get(&known_key(account, a))
                            .is_some_and(|trusted_until| now < trusted_until)
                    }),
                ))
            }
            #[cfg(feature = "redis")]
            State::Redis(redis) => {
                let known = address.map(|a| known_key(account, a));
                redis
                    .read(
                        address.map(address_key).as_deref(),
                        &account_key(account),
                        known.as_deref(),
                    )
                    .await
            }
        }
    }

    /// `failures`, unless the last one is older than the policy remembers.
    fn recent(&self, failures: Option<Failures>, now: i64) -> Option<Failures> {
        failures.filter(|f| now.saturating_sub(f.last) < micros(self.policy.forget_after))
    }

    fn when_unavailable(&self) -> Result<(), Throttled> {
        match &self.state {
            State::Memory { .. } => Ok(()),
            #[cfg(feature = "redis")]
            State::Redis(redis) => match redis.when_down {
                super::WhenRedisDown::FailOpen => Ok(()),
                super::WhenRedisDown::FailClosed => Err(Throttled {
                    retry_after: Duration::from_secs(1),
                }),
            },
        }
    }
}

#[cfg(feature = "redis")]
mod redis_state {
    use std::time::Duration;

    use redis::AsyncCommands;
    use redis::aio::ConnectionManager;

    use super::Failures;
    use crate::ratelimit::{RedisLimitsError, WhenRedisDown};

    pub(super) struct RedisState {
        client: redis::Client,
        connection: tokio::sync::OnceCell<ConnectionManager>,
        pub(super) prefix: String,
        pub(super) when_down: WhenRedisDown,
        outage: std::sync::atomic::AtomicBool,
    }

    impl RedisState {
        pub(super) fn open(url: &str, when_down: WhenRedisDown) -> Result<Self, RedisLimitsError> {
            Ok(Self {
                client: redis::Client::open(url)?,
                connection: tokio::sync::OnceCell::new(),
                prefix: "{portcullis}:throttle:".to_owned(),
                when_down,
                outage: std::sync::atomic::AtomicBool::new(false),
            })
        }

        async fn connection(&self) -> Option<ConnectionManager> {
            let connect = self
                .connection
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()));
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(connection)) => Some(connection.clone()),
                _ => self.down("cannot connect"),
            }
        }

        fn down<T>(&self, why: &str) -> Option<T> {
            if !self.outage.swap(true, std::sync::atomic::Ordering::AcqRel) {
                tracing::error!(why, policy = ?self.when_down, "Redis login throttle is down");
            }
            None
        }

        fn up(&self) {
            if self.outage.swap(false, std::sync::atomic::Ordering::AcqRel) {
                tracing::info!("Redis login throttle is back");
            }
        }

        async fn timed<T>(
            &self,
            operation: impl std::future::Future<Output = redis::RedisResult<T>>,
        ) -> Option<T> {
            match tokio::time::timeout(Duration::from_millis(500), operation).await {
                Ok(Ok(value)) => {
                    self.up();
                    Some(value)
                }
                _ => self.down("request failed"),
            }
        }

        pub(super) async fn read(
            &self,
            address: Option<&str>,
            account: &str,
            known: Option<&str>,
        ) -> Option<(Option<Failures>, Option<Failures>, bool)> {
            let mut connection = self.connection().await?;
            let prefix = &self.prefix;
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET")
                .arg(format!("{prefix}{}", address.unwrap_or("-")))
                .arg("count")
                .arg("last")
                .cmd("HMGET")
                .arg(format!("{prefix}{account}"))
                .arg("count")
                .arg("last")
                .exists(format!("{prefix}{}", known.unwrap_or("-")));
            type Pair = (Option<u32>, Option<i64>);
            let (by_address, by_account, known_exists): (Pair, Pair, bool) =
                self.timed(pipe.query_async(&mut connection)).await?;
            let failures = |(count, last): Pair| {
                count.map(|count| Failures {
                    count,
                    last: last.unwrap_or(0),
                })
            };
            Some((
                address.and(failures(by_address)),
                failures(by_account),
                known.is_some() && known_exists,
            ))
        }

        pub(super) async fn failed(&self, keys: &[String], now: i64, forget_after: Duration) {
            let Some(mut connection) = self.connection().await else {
                return;
            };
            let ttl = i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX);
            let mut pipe = redis::pipe();
            pipe.atomic();
            for key in keys {
                let key = format!("{}{key}", self.prefix);
                pipe.hincr(&key, "count", 1).ignore();
                pipe.hset(&key, "last", now).ignore();
                pipe.pexpire(&key, ttl).ignore();
            }
            let _: Option<()> = self.timed(pipe.query_async(&mut connection)).await;
        }

        pub(super) async fn succeeded(
            &self,
            account: &str,
            known: Option<&str>,
            trust_for: Duration,
        ) {
            let Some(mut connection) = self.connection().await else {
                return;
            };
            let account = format!("{}{account}", self.prefix);
            let _: Option<()> = self.timed(connection.del(&account)).await;
            if let Some(known) = known {
                let key = format!("{}{known}", self.prefix);
                let seconds = trust_for.as_secs();
                let _: Option<()> = self.timed(connection.set_ex(&key, 1, seconds)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn throttle() -> (LoginThrottle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        (LoginThrottle::in_memory().clock(clock.clone()), clock)
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([203, 0, 113, n]))
    }

    #[tokio::test]
    async fn five_free_failures_then_a_doubling_back_off_capped_at_fifteen_minutes() {
        let (throttle, clock) = throttle();
        for _ in 0..5 {
            assert!(throttle.check("ada", ip(1)).await.is_ok());
            throttle.failed("ada", ip(1)).await;
        }
        // Sixth failure onwards: 1 s, 2 s, 4 s, … after the previous failure.
        let mut expected = Duration::from_secs(1);
        for _ in 0..15 {
            let Err(throttled) = throttle.check("ada", ip(1)).await else {
                panic!("must wait {expected:?}");
            };
            assert_eq!(
                throttled.retry_after,
                expected.min(Duration::from_secs(900))
            );
            clock.advance(throttled.retry_after);
            assert!(throttle.check("ada", ip(1)).await.is_ok());
            throttle.failed("ada", ip(1)).await;
            expected *= 2;
        }
    }

    #[tokio::test]
    async fn the_account_back_off_follows_the_account_across_addresses() {
        let (throttle, _clock) = throttle();
        for n in 0..5 {
            throttle.failed("ada", ip(n)).await;
        }
        assert!(
            throttle.check("ada", ip(99)).await.is_err(),
            "distributed guessing is slowed"
        );
        assert!(
            throttle.check("bob", ip(99)).await.is_ok(),
            "other accounts are not"
        );
        assert!(
            throttle.check("ADA", ip(99)).await.is_err(),
            "account names ignore ASCII case"
        );
    }

    #[tokio::test]
    async fn an_attacker_cannot_lock_the_owner_out_from_a_known_address() {
        let (throttle, _clock) = throttle();
        throttle.succeeded("ada", ip(7)).await;
        for _ in 0..50 {
            throttle.failed("ada", ip(66)).await;
        }
        assert!(
            throttle.check("ada", ip(66)).await.is_err(),
            "the attacker waits"
        );
        assert!(
            throttle.check("ada", ip(7)).await.is_ok(),
            "the owner's usual address does not"
        );
        throttle.succeeded("ada", ip(7)).await;
        assert!(
            throttle.check("ada", ip(88)).await.is_ok(),
            "success clears the account's failures"
        );
        assert!(
            throttle.check("ada", ip(66)).await.is_err(),
            "but not the attacker's address"
        );
    }

    #[tokio::test]
    async fn one_address_failing_on_many_accounts_is_slowed() {
        let (throttle, _clock) = throttle();
        for n in 0..20 {
            throttle.failed(&format!("user{n}"), ip(5)).await;
        }
        assert_eq!(
            throttle.check("someone-new", ip(5)).await,
            Err(Throttled {
                retry_after: Duration::from_secs(1)
            })
        );
        assert!(throttle.check("someone-new", ip(6)).await.is_ok());
    }

    #[tokio::test]
    async fn unknown_addresses_are_throttled_by_account_only() {
        let (throttle, _clock) = throttle();
        for _ in 0..30 {
            throttle.failed("ada", None).await;
        }
        assert!(throttle.check("ada", None).await.is_err());
        assert!(throttle.check("bob", None).await.is_ok());
    }
}
