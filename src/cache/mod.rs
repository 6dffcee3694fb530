//! The credential cache: resolved credentials keyed by the SHA-256 of the presented secret.
//!
//! A cached API key, session id or repeated JWT costs one hash and one lookup instead of a
//! store query or a signature check. Positive entries live for a short TTL,
//! negative ones (unknown, revoked or expired digests) for their own TTL, measured on the
//! [`Auth`](crate::Auth)'s clock (the one expiry is checked against, so a hit reads the clock
//! once). An entry is trusted only between the instant it was stored and its TTL later, so a
//! wall clock stepped backwards can stretch an entry's life by less than one TTL, never more. The map is `quick_cache`'s S3-FIFO cache: a key must be seen twice to reach
//! the protected part, so a flood of random tokens cycles through the probationary part without
//! evicting the hot entries, and the capacity bounds memory. Concurrent misses for one key share
//! a single load.
//!
//! A hit is synchronous ([`CredentialCache::peek`]): the request path needs no `await` and no
//! allocation for a cached credential. The map was chosen by measurement
//! (`peers/benches/cache_map.rs`):
//! a hit costs about a fifth of a `moka` hit, whose per-read bookkeeping dominated the request
//! path.
//!
//! The owners of cached credentials are cached beside them, one shared `Arc<User>` per user:
//! a user's API keys, sessions and tokens hold the same record, and a token seen for the
//! first time whose owner is cached needs no store query at all. An owner entry lives as long
//! as a positive entry and is invalidated with the user's credentials.
//!
//! Invalidation is exact and cheap on the hot path: every invalidation (a user changed, a
//! session ended, a key was revoked) appends to a short log and bumps an epoch. An entry
//! remembers the epoch it was checked at; a hit whose epoch is current costs one atomic load,
//! and only after an invalidation does it scan the log for a change that concerns it. Because a
//! loader records the epoch *before* it reads the store, an invalidation that races a load
//! still reaches the entry it produced.

mod config;
mod entry;
mod invalidation;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use quick_cache::sync::Cache;

pub use config::CacheConfig;
pub(crate) use entry::{CacheKey, Cached, Domain, IdleTimeout, Resolved};
use invalidation::{InvalidationLog, Target};

use crate::clock::{Clock, micros};
use crate::error::AuthError;
use crate::store::{FamilyId, User, UserId};

/// A cached answer and the window (microseconds on the [`Clock`]) in which it is trusted.
#[derive(Clone, Debug)]
struct Entry {
    answer: Cached,
    stored_at: i64,
    fresh_until: i64,
}

impl Entry {
    fn is_fresh(&self, now: i64) -> bool {
        (self.stored_at..self.fresh_until).contains(&now)
    }
}

/// A cached credential owner, and the window in which it is trusted.
#[derive(Debug)]
struct Owner {
    user: Arc<User>,
    stored_at: i64,
    fresh_until: i64,
    checked_at_epoch: std::sync::atomic::AtomicU64,
}

/// A load in flight, shared by every request that missed the same key meanwhile.
type Inflight = Arc<tokio::sync::OnceCell<Result<Cached, AuthError>>>;

/// One request's share in a load in flight. Dropping it (the load finished, or the request
/// was cancelled mid-load) retires the shared load, so the map never outgrows the loads
/// actually running.
struct Flight<'a> {
    cache: &'a CredentialCache,
    key: CacheKey,
    cell: Inflight,
}

impl<'a> Flight<'a> {
    fn join(cache: &'a CredentialCache, key: CacheKey) -> Self {
        let mut inflight = cache.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let cell = Arc::clone(inflight.entry(key).or_default());
        Self { cache, key, cell }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut inflight = self
            .cache
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if inflight
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.cell))
        {
            inflight.remove(&self.key);
        }
    }
}

/// See the module documentation.
pub(crate) struct CredentialCache {
    entries: Cache<CacheKey, Entry>,
    owners: Cache<UserId, Arc<Owner>>,
    clock: Arc<dyn Clock>,
    positive_ttl: i64,
    negative_ttl: i64,
    /// Loads in flight, so that concurrent misses for one key cause one store query.
    inflight: Mutex<HashMap<CacheKey, Inflight>>,
    log: InvalidationLog,
    /// Set while cached answers must not be trusted (the invalidation bus is down and the
    /// policy is to fail closed): every lookup loads from the store and nothing is cached.
    bypass: AtomicBool,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.entries.len())
            .field("epoch", &self.log.epoch())
            .finish()
    }
}

impl CredentialCache {
    pub(crate) fn new(config: &CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let capacity = usize::try_from(config.capacity).unwrap_or(usize::MAX);
        Self {
            entries: Cache::new(capacity),
            owners: Cache::new(capacity),
            clock,
            positive_ttl: micros(config.positive_ttl),
            negative_ttl: micros(config.negative_ttl),
            inflight: Mutex::new(HashMap::new()),
            log: InvalidationLog::new(config.invalidation_log),
            bypass: AtomicBool::new(false),
        }
    }

    /// Stops (or resumes) trusting and filling the cache.
    pub(crate) fn set_bypass(&self, bypass: bool) {
        self.bypass.store(bypass, Ordering::Release);
    }

    /// The current invalidation epoch; loaders pass it to [`Resolved::new`].
    pub(crate) fn epoch(&self) -> u64 {
        self.log.epoch()
    }

    /// The cached answer for `key` at `now` (microseconds on the clock), if there is a
    /// current one: the synchronous hot path.
    pub(crate) fn peek(&self, key: &CacheKey, now: i64) -> Option<Cached> {
        if self.bypass.load(Ordering::Acquire) {
            return None;
        }
        let hit = self.entries.get(key)?;
        if hit.is_fresh(now) && self.is_current(key, &hit.answer) {
            return Some(hit.answer);
        }
        self.entries.remove(key);
        None
    }

    /// Whether owners are cached at all (not with a positive TTL of zero, nor while the cache
    /// is bypassed): when not, nothing can be resolved from a cached owner.
    pub(crate) fn keeps_owners(&self) -> bool {
        self.positive_ttl > 0 && !self.bypass.load(Ordering::Acquire)
    }

    /// The cached owner `user`, if a current record is cached at `now`.
    pub(crate) fn owner(&self, user: UserId, now: i64) -> Option<Arc<User>> {
        if self.bypass.load(Ordering::Acquire) {
            return None;
        }
        let owner = self.owners.get(&user)?;
        let current = self.log.epoch();
        let seen = owner.checked_at_epoch.load(Ordering::Acquire);
        let fresh = (owner.stored_at..owner.fresh_until).contains(&now);
        if fresh && (seen == current || !self.log.user_touched_since(seen, user)) {
            // Only after an invalidation elsewhere: a current entry is read, never written.
            if seen != current {
                owner.checked_at_epoch.fetch_max(current, Ordering::AcqRel);
            }
            return Some(Arc::clone(&owner.user));
        }
        self.owners.remove(&user);
        None
    }

    /// Caches `user` as a credential owner, read from the store after `epoch` was current
    /// (so that an invalidation racing the read is found).
    pub(crate) fn remember_owner(&self, user: &Arc<User>, epoch: u64) {
        if !self.keeps_owners() {
            return;
        }
        let stored_at = self.clock.now_micros();
        self.owners.insert(
            user.id,
            Arc::new(Owner {
                user: Arc::clone(user),
                stored_at,
                fresh_until: stored_at.saturating_add(self.positive_ttl),
                checked_at_epoch: std::sync::atomic::AtomicU64::new(epoch),
            }),
        );
    }

    /// Caches `answer` for `key` as a load that started at `epoch` would, and returns whether
    /// it is still current: the synchronous counterpart of [`get_or_load`](Self::get_or_load).
    pub(crate) fn remember_current(&self, key: CacheKey, answer: &Cached) -> bool {
        if self.bypass.load(Ordering::Acquire) {
            return true;
        }
        self.remember(key, answer);
        if self.is_current(&key, answer) {
            return true;
        }
        self.entries.remove(&key);
        false
    }

    fn remember(&self, key: CacheKey, answer: &Cached) {
        let ttl = match answer {
            Cached::Found(_) => self.positive_ttl,
            Cached::Rejected(_) => self.negative_ttl,
        };
        if ttl <= 0 {
            // Caching switched off for this kind of answer: an entry would only be stale on
            // arrival, and would evict a live one.
            return;
        }
        let stored_at = self.clock.now_micros();
        self.entries.insert(
            key,
            Entry {
                answer: answer.clone(),
                stored_at,
                fresh_until: stored_at.saturating_add(ttl),
            },
        );
    }

    /// Returns the cached answer for `key`, or runs `load` (once, however many tasks ask
    /// concurrently) and caches its answer. Errors (e.g. store unavailable) are not cached.
    pub(crate) async fn get_or_load<F, Fut>(
        &self,
        key: CacheKey,
        load: F,
    ) -> Result<Cached, AuthError>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<Cached, AuthError>>,
    {
        if self.bypass.load(Ordering::Acquire) {
            return load(self.epoch()).await;
        }
        if let Some(hit) = self.peek(&key, self.clock.now_micros()) {
            return Ok(hit);
        }
        let flight = Flight::join(self, key);
        let loaded = flight
            .cell
            .get_or_init(|| async {
                let loaded = load(self.epoch()).await;
                if let Ok(answer) = &loaded {
                    self.remember(key, answer);
                }
                loaded
            })
            .await
            .clone();
        drop(flight);
        let loaded = loaded?;
        if self.is_current(&key, &loaded) {
            return Ok(loaded);
        }
        // Invalidated while it was being loaded: answer from a fresh load and let the next
        // request cache it.
        self.entries.remove(&key);
        load(self.epoch()).await
    }

    fn is_current(&self, key: &CacheKey, cached: &Cached) -> bool {
        let Cached::Found(entry) = cached else {
            return true;
        };
        let now = self.log.epoch();
        let seen = entry.checked_at_epoch.load(Ordering::Acquire);
        if seen == now {
            return true;
        }
        if self.log.touched_since(seen, key, entry) {
            return false;
        }
        entry.checked_at_epoch.fetch_max(now, Ordering::AcqRel);
        true
    }

    /// Drops every entry of `user` (deactivation, role or password change).
    pub(crate) fn invalidate_user(&self, user: UserId) {
        self.log.push(Target::User(user));
        self.owners.remove(&user);
    }

    /// Drops every entry of a session family (logout, refresh-token reuse).
    pub(crate) fn invalidate_family(&self, family: &FamilyId) {
        self.log.push(Target::Family(family.clone()));
    }

    /// Drops one credential (an API key was revoked).
    pub(crate) fn invalidate_key(&self, key: CacheKey) {
        self.log.push(Target::Key(key));
        self.entries.remove(&key);
    }

    /// Drops everything (the invalidation bus reconnected: messages may have been missed).
    pub(crate) fn invalidate_everything(&self) {
        self.log.push(Target::Everything);
        self.entries.clear();
        self.owners.clear();
    }

    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }
}
