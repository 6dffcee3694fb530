//! `last_used_at` bookkeeping, written behind and coalesced, never on the request path.
//!
//! A request that authenticates with a stored token notes the time in the cached entry. At most
//! once per `granularity` per token the use is queued; a background task writes the queue to
//! the store in one batch per `interval`. A request never waits for the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::Resolved;
use crate::clock::from_micros;
use crate::store::{StoreError, TokenId, TokenStore, TokenUse};

#[derive(Clone, Debug)]
pub(crate) struct UsageConfig {
    pub(crate) granularity: Duration,
    pub(crate) interval: Duration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            granularity: Duration::from_secs(60),
            interval: Duration::from_secs(10),
        }
    }
}

pub(crate) struct UsageRecorder {
    shared: Arc<Shared>,
    flusher_started: AtomicBool,
    granularity_micros: i64,
    interval: Duration,
}

struct Shared {
    pending: Mutex<HashMap<TokenId, i64>>,
    store: Arc<dyn TokenStore>,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl UsageRecorder {
    pub(crate) fn new(store: Arc<dyn TokenStore>, config: &UsageConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                pending: Mutex::new(HashMap::new()),
                store,
            }),
            flusher_started: AtomicBool::new(false),
            granularity_micros: crate::clock::micros(config.granularity),
            interval: config.interval,
        }
    }

    /// Notes a use of the credential at `now` (microseconds). Cheap when the last recorded use
    /// is recent: one atomic load.
    pub(crate) fn touch(&self, entry: &Resolved, now: i64) {
        let Some(id) = entry.token_id else {
            return;
        };
        let last = entry.last_use.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.granularity_micros {
            return;
        }
        if entry
            .last_use
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request is recording this use
        }
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let at = pending.entry(id).or_insert(now);
            *at = (*at).max(now);
        }
        self.start_flusher();
    }

    /// The newest use of `id` noted here but not written to the store yet.
    pub(crate) fn unwritten_use(&self, id: TokenId) -> Option<i64> {
        let pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pending.get(&id).copied()
    }

    fn start_flusher(&self) {
        if self.flusher_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: uses are written by an explicit `flush`
        };
        if self.flusher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        let interval = self.interval;
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                // Ends once the owning `Auth` is dropped.
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                if let Err(error) = shared.flush().await {
                    tracing::warn!(%error, "could not record token last-use times; will retry");
                }
            }
        });
    }

    /// Writes every queued use now.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        self.shared.flush().await
    }
}

impl Shared {
    async fn flush(&self) -> Result<(), StoreError> {
        let batch: Vec<TokenUse> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .drain()
                .map(|(id, at)| TokenUse {
                    id,
                    at: from_micros(at),
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.store.record_token_use(&batch).await;
        if result.is_err() {
            // Keep the uses for the next attempt rather than losing them.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for usage in batch {
                let micros = crate::clock::to_micros(usage.at);
                let at = pending.entry(usage.id).or_insert(micros);
                *at = (*at).max(micros);
            }
        }
        result
    }
}
