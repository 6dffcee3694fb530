//! The [`CounterStore`] trait: windowed counters for quotas.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Consumption, StoreError};

/// Counters that survive restarts and are shared by every instance, for quotas such as a daily
/// message allowance (`ratelimit::QuotaLayer`, feature `ratelimit`).
#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Atomically adds `amount` to the counter `key` in the window that starts at `window`
    /// unless that would take it past `limit`, for quotas that must survive restarts (e.g. a
    /// daily message allowance). Each key keeps only its newest window: a newer `window`
    /// starts again from zero, and an older one (a clock running behind) counts in the newer.
    /// Counters saturate at `i64::MAX`.
    async fn consume(
        &self,
        key: &str,
        window: OffsetDateTime,
        amount: u64,
        limit: u64,
    ) -> Result<Consumption, StoreError>;

    /// The counter `key` in the window that starts at `window` (zero if it has none yet).
    async fn counter(&self, key: &str, window: OffsetDateTime) -> Result<u64, StoreError>;
}
