//! [`CacheConfig`]: the credential cache's size and lifetimes.

use std::time::Duration;

/// Sizes and lifetimes of the credential cache.
///
/// ```
/// use std::time::Duration;
/// use portcullis::CacheConfig;
///
/// let config = CacheConfig::default()
///     .capacity(50_000)
///     .positive_ttl(Duration::from_secs(10));
/// assert_eq!(config.max_entries(), 50_000);
/// ```
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub(super) capacity: u64,
    pub(super) positive_ttl: Duration,
    pub(super) negative_ttl: Duration,
    pub(super) invalidation_log: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            positive_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(60),
            invalidation_log: 4096,
        }
    }
}

impl CacheConfig {
    /// The most entries kept (default 100 000).
    #[must_use]
    pub fn capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// How long a resolved credential is trusted without asking the store again (default 30 s).
    /// This bounds how stale a cached credential can be if an invalidation is missed.
    #[must_use]
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// How long an unknown, revoked or expired credential is remembered (default 60 s).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The configured capacity.
    pub fn max_entries(&self) -> u64 {
        self.capacity
    }

    /// The configured positive TTL.
    pub fn positive(&self) -> Duration {
        self.positive_ttl
    }
}
