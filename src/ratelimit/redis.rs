//! The shared backend: GCRA in a Redis Lua script, so that several instances share one limit.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::policy::{Decision, Policy, RequestKey};

/// Rate limits shared by every instance through one Redis server.
///
/// Each check is one atomic script run on Redis's clock: concurrent requests on any number of
/// instances never admit more than the policy allows.
///
/// ```no_run
/// use portcullis::ratelimit::{RedisLimits, WhenRedisDown};
///
/// let shared = RedisLimits::open("redis://127.0.0.1:6379", WhenRedisDown::FailOpen)?;
/// # Ok::<(), portcullis::ratelimit::RedisLimitsError>(())
/// ```
pub struct RedisLimits {
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    when_down: WhenRedisDown,
    script: redis::Script,
    outage: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .field("when_down", &self.when_down)
            .finish_non_exhaustive()
    }
}

/// What to do with requests while Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenRedisDown {
    /// Let requests through unlimited (availability first).
    FailOpen,
    /// Refuse requests with `503` (protection first).
    FailClosed,
}

/// What one script run does with a bucket.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Decide and, when admitted, charge.
    Check,
    /// Decide only (a deferred policy before the answer).
    Peek,
    /// Charge only, past the tolerance if need be (a deferred policy after a failure).
    Charge,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Peek => "peek",
            Self::Charge => "charge",
        }
    }
}

/// The Redis URL could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct RedisLimitsError(#[from] redis::RedisError);

impl RedisLimits {
    /// Limits in the Redis server at `url`; nothing connects until the first request.
    pub fn open(url: &str, when_down: WhenRedisDown) -> Result<Self, RedisLimitsError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: tokio::sync::OnceCell::new(),
            prefix: "{portcullis}:rl:".to_owned(),
            when_down,
            script: redis::Script::new(include_str!("gcra.lua")),
            outage: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Prefixes every bucket key (default `{portcullis}:rl:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub(crate) fn when_down(&self) -> WhenRedisDown {
        self.when_down
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
    }

    /// Checks one request against `policy` for `key` (a deferred policy only looks); `None`
    /// when Redis cannot answer.
    pub(crate) async fn check(&self, policy: &Policy, key: &RequestKey) -> Option<Decision> {
        let mode = if policy.is_deferred() {
            Mode::Peek
        } else {
            Mode::Check
        };
        self.answer(self.run(policy, key, mode).await)
    }

    /// Charges a deferred policy for one request after its answer.
    pub(crate) async fn charge(&self, policy: &Policy, key: &RequestKey) {
        let _ = self.answer(self.run(policy, key, Mode::Charge).await);
    }

    fn answer(&self, result: Result<Decision, redis::RedisError>) -> Option<Decision> {
        match result {
            Ok(decision) => {
                if self.outage.swap(false, std::sync::atomic::Ordering::AcqRel) {
                    tracing::info!("Redis rate limiting is back");
                }
                Some(decision)
            }
            Err(error) => {
                if !self.outage.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    tracing::error!(%error, policy = ?self.when_down, "Redis rate limiting is down");
                }
                None
            }
        }
    }

    async fn run(
        &self,
        policy: &Policy,
        key: &RequestKey,
        mode: Mode,
    ) -> Result<Decision, redis::RedisError> {
        // A request never waits long on a struggling Redis: past the timeout it is down.
        let script = self.run_script(policy, key, mode);
        match tokio::time::timeout(Duration::from_millis(500), script).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "Redis did not answer within 500 ms",
            ))),
        }
    }

    async fn run_script(
        &self,
        policy: &Policy,
        key: &RequestKey,
        mode: Mode,
    ) -> Result<Decision, redis::RedisError> {
        let limit = policy.limit();
        let interval = u64::try_from(limit.emission_interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let bucket = format!("{}{}:{key}", self.prefix, policy.name());
        let mut connection = self.connection().await?;
        let (allowed, remaining, retry_after, reset): (i64, i64, i64, i64) = self
            .script
            .key(bucket)
            .arg(interval)
            .arg(limit.max_burst())
            .arg(mode.as_str())
            .invoke_async(&mut connection)
            .await?;
        let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: limit.max_burst(),
            remaining: u32::try_from(remaining).unwrap_or(0).min(limit.max_burst()),
            reset: micros(reset),
            retry_after: micros(retry_after),
        })
    }
}
