//! [`LoginThrottle`]: back-off after failed logins, per account and per client IP.
//!
//! # The policy
//!
//! * **Per client IP**: the first 20 failures (any accounts) are free; after that, each attempt
//!   must wait `1 s × 2^(failures − 20)` after the previous failure, at most 15 minutes. This
//!   slows credential stuffing from one address to a crawl. IPv6 clients are counted per /64
//!   ([`ThrottlePolicy::ipv6_prefix`]): one subscriber's network is one client.
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
//! # Attempts are reserved, not reported
//!
//! [`LoginThrottle::attempt`] decides and counts in one atomic step (one Lua script on Redis):
//! an admitted attempt is recorded as a failure *before* the password is checked, and
//! [`Attempt::succeeded`] takes it back. So guesses sent at once cannot all pass a check made
//! before the first of them failed, and an attempt whose client hung up mid-check (its future
//! dropped) still counts.
//!
//! Throttled attempts are answered before the password is checked, identically for existing
//! and unknown accounts, so the throttle reveals nothing about which accounts exist. Accounts
//! are keyed by a digest of their normalised name, so a key's size never depends on what a
//! client sent.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::client_ip::{DEFAULT_IPV6_PREFIX, client_network};
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
    /// IPv6 clients are counted per network of this prefix length (default 64).
    pub ipv6_prefix: u8,
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
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
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

/// The throttle's keys for one attempt: fixed-size, whatever the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Keys {
    account: String,
    address: Option<String>,
    known: Option<String>,
}

impl Keys {
    fn new(account: &str, address: Option<IpAddr>, ipv6_prefix: u8) -> Self {
        // 128 bits of SHA-256 of the name as the stores compare it (ASCII case ignored).
        let digest = Sha256::digest(account.to_ascii_lowercase().as_bytes());
        let account: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let network = address.map(|address| client_network(address, ipv6_prefix));
        Self {
            known: network.map(|network| format!("known:{account}:{network}")),
            address: network.map(|network| format!("address:{network}")),
            account: format!("account:{account}"),
        }
    }
}

/// Where the failure counts live.
enum State {
    /// Entries past their lifetime are ignored when read and eventually evicted; the capacity
    /// bounds memory however many accounts and addresses an attacker cycles through.
    Memory {
        failures: quick_cache::sync::Cache<String, Failures>,
        /// Until when (microseconds) an address that logged in is trusted for the account.
        known: quick_cache::sync::Cache<String, i64>,
        /// Makes deciding and counting one step.
        reserving: Mutex<()>,
    },
    #[cfg(feature = "redis")]
    Redis(Box<redis_state::RedisState>),
}

/// Back-off for failed logins; see the [module docs](self) for the policy.
///
/// ```
/// use portcullis::ratelimit::LoginThrottle;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let throttle = LoginThrottle::in_memory();
/// let ip = Some("203.0.113.9".parse().unwrap());
/// let attempt = throttle.attempt("ada", ip).await?; // before checking the password
/// // … the password was right:
/// attempt.succeeded().await;
/// // … had it been wrong: `attempt.failed()`, or just drop it.
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

/// An admitted login attempt, already counted as a failure. Dropping it (or calling
/// [`failed`](Self::failed)) keeps it counted; [`succeeded`](Self::succeeded) and
/// [`refund`](Self::refund) take it back.
#[must_use = "an attempt counts as failed unless `succeeded` or `refund` is called"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: Keys,
    /// Whether the attempt was recorded (not when a fail-open Redis could not be reached).
    recorded: bool,
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("recorded", &self.recorded)
            .finish_non_exhaustive()
    }
}

impl Attempt<'_> {
    /// The password was wrong: the attempt stays counted (the same as dropping it).
    pub fn failed(self) {}

    /// The login succeeded: the account's failures are cleared, this attempt is taken back
    /// from the address's count, and the address is trusted for the account.
    pub async fn succeeded(self) {
        self.throttle.settle(&self.keys, self.recorded, true).await;
    }

    /// The attempt said nothing about the password (the store failed, say): it is taken back
    /// from both counts.
    pub async fn refund(self) {
        self.throttle.settle(&self.keys, self.recorded, false).await;
    }
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
                reserving: Mutex::new(()),
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
            state: State::Redis(Box::new(redis_state::RedisState::open(url, when_down)?)),
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

    /// Admits an attempt for `account` from `address` and counts it as a failure, in one
    /// atomic step; or says how long to wait. Call it before checking the password.
    pub async fn attempt(
        &self,
        account: &str,
        address: Option<IpAddr>,
    ) -> Result<Attempt<'_>, Throttled> {
        let keys = Keys::new(account, address, self.policy.ipv6_prefix);
        let now = self.clock.now_micros();
        let wait = match &self.state {
            State::Memory {
                failures,
                known,
                reserving,
            } => {
                let _one_at_a_time = reserving.lock().unwrap_or_else(|p| p.into_inner());
                let wait = self.memory_wait(failures, known, &keys, now);
                if wait.is_zero() {
                    for key in std::iter::once(&keys.account).chain(&keys.address) {
                        let previous = self.recent(failures.get(key), now).unwrap_or_default();
                        failures.insert(
                            key.clone(),
                            Failures {
                                count: previous.count.saturating_add(1),
                                last: now,
                            },
                        );
                    }
                }
                Some(wait)
            }
            #[cfg(feature = "redis")]
            State::Redis(redis) => redis.reserve(&keys, now, &self.policy).await,
        };
        match wait {
            Some(wait) if wait.is_zero() => Ok(Attempt {
                throttle: self,
                keys,
                recorded: true,
            }),
            Some(retry_after) => Err(Throttled { retry_after }),
            None => self.when_unavailable().map(|()| Attempt {
                throttle: self,
                keys,
                recorded: false,
            }),
        }
    }

    fn memory_wait(
        &self,
        failures: &quick_cache::sync::Cache<String, Failures>,
        known: &quick_cache::sync::Cache<String, i64>,
        keys: &Keys,
        now: i64,
    ) -> Duration {
        let mut wait = Duration::ZERO;
        if let Some(address) = &keys.address
            && let Some(by_address) = self.recent(failures.get(address), now)
        {
            wait = wait.max(self.remaining(by_address, self.policy.address_free, now));
        }
        let is_known = keys.known.as_ref().is_some_and(|key| {
            known
                .get(key)
                .is_some_and(|trusted_until| now < trusted_until)
        });
        if !is_known && let Some(by_account) = self.recent(failures.get(&keys.account), now) {
            wait = wait.max(self.remaining(by_account, self.policy.account_free, now));
        }
        wait
    }

    fn remaining(&self, failures: Failures, free: u32, now: i64) -> Duration {
        let wait = self.policy.wait(failures.count, free);
        let waited = Duration::from_micros(u64::try_from(now - failures.last).unwrap_or(0));
        wait.saturating_sub(waited)
    }

    /// Takes a recorded attempt back; on success also clears the account and trusts the
    /// address.
    async fn settle(&self, keys: &Keys, recorded: bool, succeeded: bool) {
        match &self.state {
            State::Memory {
                failures,
                known,
                reserving,
            } => {
                let _one_at_a_time = reserving.lock().unwrap_or_else(|p| p.into_inner());
                let refund = |key: &String| {
                    if let Some(mut current) = failures.get(key) {
                        current.count = current.count.saturating_sub(1);
                        failures.insert(key.clone(), current);
                    }
                };
                if recorded {
                    keys.address.iter().for_each(refund);
                }
                if succeeded {
                    failures.remove(&keys.account);
                    if let Some(key) = &keys.known {
                        let trusted_until = self
                            .clock
                            .now_micros()
                            .saturating_add(micros(self.policy.trust_known_address_for));
                        known.insert(key.clone(), trusted_until);
                    }
                } else if recorded {
                    refund(&keys.account);
                }
            }
            #[cfg(feature = "redis")]
            State::Redis(redis) => {
                redis.settle(keys, recorded, succeeded, &self.policy).await;
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

    use redis::aio::ConnectionManager;

    use super::{Keys, ThrottlePolicy};
    use crate::clock::micros;
    use crate::ratelimit::{RedisLimitsError, WhenRedisDown};

    pub(super) struct RedisState {
        client: redis::Client,
        connection: tokio::sync::OnceCell<ConnectionManager>,
        pub(super) prefix: String,
        pub(super) when_down: WhenRedisDown,
        outage: std::sync::atomic::AtomicBool,
        reserve: redis::Script,
        settle: redis::Script,
    }

    impl RedisState {
        pub(super) fn open(url: &str, when_down: WhenRedisDown) -> Result<Self, RedisLimitsError> {
            Ok(Self {
                client: redis::Client::open(url)?,
                connection: tokio::sync::OnceCell::new(),
                prefix: "{portcullis}:throttle:".to_owned(),
                when_down,
                outage: std::sync::atomic::AtomicBool::new(false),
                reserve: redis::Script::new(include_str!("throttle_reserve.lua")),
                settle: redis::Script::new(include_str!("throttle_settle.lua")),
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

        /// The script's keys: account, address, known address (`-` when there is none).
        fn script_keys(&self, keys: &Keys) -> [String; 3] {
            let prefixed = |key: Option<&String>| match key {
                Some(key) => format!("{}{key}", self.prefix),
                None => format!("{}-", self.prefix),
            };
            [
                prefixed(Some(&keys.account)),
                prefixed(keys.address.as_ref()),
                prefixed(keys.known.as_ref()),
            ]
        }

        /// The wait, zero when the attempt was admitted and counted; `None` when Redis
        /// could not answer.
        pub(super) async fn reserve(
            &self,
            keys: &Keys,
            now: i64,
            policy: &ThrottlePolicy,
        ) -> Option<Duration> {
            let mut connection = self.connection().await?;
            let mut invocation = self.reserve.prepare_invoke();
            for key in self.script_keys(keys) {
                invocation.key(key);
            }
            invocation
                .arg(now)
                .arg(micros(policy.forget_after) / 1000)
                .arg(policy.account_free)
                .arg(policy.address_free)
                .arg(micros(policy.base))
                .arg(micros(policy.cap))
                .arg(u8::from(keys.address.is_some()))
                .arg(u8::from(keys.known.is_some()));
            let wait: i64 = self.timed(invocation.invoke_async(&mut connection)).await?;
            Some(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
        }

        pub(super) async fn settle(
            &self,
            keys: &Keys,
            recorded: bool,
            succeeded: bool,
            policy: &ThrottlePolicy,
        ) {
            let Some(mut connection) = self.connection().await else {
                return;
            };
            let mut invocation = self.settle.prepare_invoke();
            for key in self.script_keys(keys) {
                invocation.key(key);
            }
            invocation
                .arg(u8::from(recorded))
                .arg(u8::from(succeeded))
                .arg(u8::from(keys.address.is_some()))
                .arg(policy.trust_known_address_for.as_secs().max(1));
            let _: Option<()> = self.timed(invocation.invoke_async(&mut connection)).await;
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

    /// A wrong password: admitted, then left counted.
    async fn fail(throttle: &LoginThrottle, account: &str, address: Option<IpAddr>) {
        throttle.attempt(account, address).await.unwrap().failed();
    }

    async fn succeed(throttle: &LoginThrottle, account: &str, address: Option<IpAddr>) {
        throttle
            .attempt(account, address)
            .await
            .unwrap()
            .succeeded()
            .await;
    }

    #[tokio::test]
    async fn five_free_failures_then_a_doubling_back_off_capped_at_fifteen_minutes() {
        let (throttle, clock) = throttle();
        for _ in 0..5 {
            fail(&throttle, "ada", ip(1)).await;
        }
        // Sixth failure onwards: 1 s, 2 s, 4 s, … after the previous failure.
        let mut expected = Duration::from_secs(1);
        for _ in 0..15 {
            let Err(throttled) = throttle.attempt("ada", ip(1)).await else {
                panic!("must wait {expected:?}");
            };
            assert_eq!(
                throttled.retry_after,
                expected.min(Duration::from_secs(900))
            );
            clock.advance(throttled.retry_after);
            fail(&throttle, "ada", ip(1)).await;
            expected *= 2;
        }
    }

    #[tokio::test]
    async fn the_account_back_off_follows_the_account_across_addresses() {
        let (throttle, _clock) = throttle();
        for n in 0..5 {
            fail(&throttle, "ada", ip(n)).await;
        }
        assert!(
            throttle.attempt("ada", ip(99)).await.is_err(),
            "distributed guessing is slowed"
        );
        assert!(
            throttle.attempt("bob", ip(99)).await.is_ok(),
            "other accounts are not"
        );
        assert!(
            throttle.attempt("ADA", ip(99)).await.is_err(),
            "account names ignore ASCII case"
        );
    }

    #[tokio::test]
    async fn an_attacker_cannot_lock_the_owner_out_from_a_known_address() {
        let (throttle, _clock) = throttle();
        succeed(&throttle, "ada", ip(7)).await;
        for _ in 0..5 {
            fail(&throttle, "ada", ip(66)).await;
        }
        assert!(
            throttle.attempt("ada", ip(66)).await.is_err(),
            "the attacker waits"
        );
        succeed(&throttle, "ada", ip(7)).await;
        assert!(
            throttle.attempt("ada", ip(88)).await.is_ok(),
            "success clears the account's failures"
        );
    }

    #[tokio::test]
    async fn one_address_failing_on_many_accounts_is_slowed() {
        let (throttle, _clock) = throttle();
        for n in 0..20 {
            fail(&throttle, &format!("user{n}"), ip(5)).await;
        }
        assert_eq!(
            throttle.attempt("someone-new", ip(5)).await.unwrap_err(),
            Throttled {
                retry_after: Duration::from_secs(1)
            }
        );
        assert!(throttle.attempt("someone-new", ip(6)).await.is_ok());
    }

    #[tokio::test]
    async fn a_success_takes_its_own_attempt_back_from_the_address_but_keeps_the_rest() {
        let (throttle, _clock) = throttle();
        for n in 0..19 {
            fail(&throttle, &format!("user{n}"), ip(5)).await;
        }
        // Logins that succeed do not move the address towards its back-off …
        for _ in 0..10 {
            succeed(&throttle, "owner", ip(5)).await;
        }
        fail(&throttle, "user19", ip(5)).await;
        // … nor do they forgive the failures before them.
        assert!(throttle.attempt("user20", ip(5)).await.is_err());
    }

    #[tokio::test]
    async fn a_dropped_attempt_counts_as_a_failure_and_a_refunded_one_does_not() {
        let (throttle, _clock) = throttle();
        for _ in 0..5 {
            let cancelled = throttle.attempt("ada", ip(1)).await.unwrap();
            drop(cancelled);
        }
        assert!(throttle.attempt("ada", ip(2)).await.is_err());
        let (throttle, _clock) = self::throttle();
        for _ in 0..10 {
            throttle.attempt("bob", ip(1)).await.unwrap().refund().await;
        }
        assert!(throttle.attempt("bob", ip(2)).await.is_ok());
    }

    #[tokio::test]
    async fn unknown_addresses_are_throttled_by_account_only() {
        let (throttle, _clock) = throttle();
        for _ in 0..5 {
            fail(&throttle, "ada", None).await;
        }
        assert!(throttle.attempt("ada", None).await.is_err());
        assert!(throttle.attempt("bob", None).await.is_ok());
    }

    #[tokio::test]
    async fn failures_are_forgotten_an_hour_after_the_last_one() {
        let (throttle, clock) = throttle();
        for _ in 0..5 {
            fail(&throttle, "ada", ip(1)).await;
        }
        clock.advance(Duration::from_secs(3600));
        for _ in 0..5 {
            fail(&throttle, "ada", ip(1)).await;
        }
        assert!(throttle.attempt("ada", ip(1)).await.is_err());
    }

    #[test]
    fn keys_have_a_fixed_size_and_name_the_normalised_account() {
        let long = "x".repeat(100_000);
        let keys = Keys::new(&long, ip(1), 64);
        assert_eq!(keys.account.len(), "account:".len() + 32);
        assert_eq!(
            Keys::new("ADA", None, 64).account,
            Keys::new("ada", None, 64).account
        );
        assert_ne!(
            Keys::new("ada", None, 64).account,
            Keys::new("adb", None, 64).account
        );
        let v6 = Keys::new("ada", Some("2001:db8::1".parse().unwrap()), 64);
        assert_eq!(v6.address.as_deref(), Some("address:2001:db8::"));
    }
}
