//! The credential cache: resolved credentials keyed by the SHA-256 of the presented secret.
//!
//! A cached API key, session id or repeated JWT costs one hash and one lookup instead of a
//! store query or a signature check (DESIGN §2, §3). Positive entries live for a short TTL,
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
//! Invalidation is exact and cheap on the hot path: every invalidation (a user changed, a
//! session ended, a key was revoked) appends to a short log and bumps an epoch. An entry
//! remembers the epoch it was checked at; a hit whose epoch is current costs one atomic load,
//! and only after an invalidation does it scan the log for a change that concerns it. Because a
//! loader records the epoch *before* it reads the store, an invalidation that races a load
//! still reaches the entry it produced.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use quick_cache::sync::Cache;

use crate::clock::{Clock, micros};
use crate::error::{AuthError, InvalidToken};
use crate::identity::Identity;
use crate::store::{FamilyId, TokenId, UserId};
use crate::token::TokenDigest;

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
    capacity: u64,
    positive_ttl: Duration,
    negative_ttl: Duration,
    invalidation_log: usize,
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

/// Which resolver a cache entry belongs to, so that the same string presented to two resolvers
/// can never share an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Domain {
    ApiKey,
    AccessToken,
    /// Browser session ids (`c` for cookie on the bus: `s` names session families there).
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    domain: Domain,
    digest: TokenDigest,
}

impl CacheKey {
    pub(crate) fn new(domain: Domain, digest: TokenDigest) -> Self {
        Self { domain, digest }
    }

    pub(crate) fn domain(&self) -> Domain {
        self.domain
    }

    pub(crate) fn digest(&self) -> &TokenDigest {
        &self.digest
    }
}

/// What the cache remembers about a presented credential.
#[derive(Clone, Debug)]
pub(crate) enum Cached {
    Found(Arc<Resolved>),
    /// A permanent rejection: unknown, revoked or expired never becomes valid again.
    Rejected(InvalidToken),
}

/// A credential resolved to an identity.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) identity: Identity,
    pub(crate) family: Option<FamilyId>,
    pub(crate) token_id: Option<TokenId>,
    /// Microseconds since the epoch; `i64::MAX` for credentials that do not expire.
    pub(crate) expires_at: i64,
    /// Microseconds of the last use recorded for write-behind (see `usage`).
    pub(crate) last_use: AtomicI64,
    /// For credentials that lapse when unused (browser sessions).
    pub(crate) idle: Option<IdleTimeout>,
    checked_at_epoch: AtomicU64,
}

/// An inactivity limit (OWASP ASVS 5.0 V7.3.1): the credential lapses when it has not been
/// seen for `timeout` microseconds.
#[derive(Debug)]
pub(crate) struct IdleTimeout {
    timeout: i64,
    /// When this instance last saw the credential, to the second.
    seen: AtomicI64,
}

impl IdleTimeout {
    /// Noting every use would write one shared cache line per request; to the second is
    /// precise enough for timeouts counted in minutes.
    const PRECISION: i64 = 1_000_000;

    pub(crate) fn new(timeout: i64, last_seen: i64) -> Self {
        Self {
            timeout,
            seen: AtomicI64::new(last_seen),
        }
    }

    /// Whether the credential is still live at `now`; if so, notes the use.
    pub(crate) fn admit(&self, now: i64) -> bool {
        let seen = self.seen.load(Ordering::Relaxed);
        let idle = now.saturating_sub(seen);
        if idle >= self.timeout {
            return false;
        }
        if idle >= Self::PRECISION {
            self.seen.fetch_max(now, Ordering::Relaxed);
        }
        true
    }
}

impl Resolved {
    pub(crate) fn new(
        identity: Identity,
        family: Option<FamilyId>,
        token_id: Option<TokenId>,
        expires_at: i64,
        last_use: i64,
        epoch: u64,
    ) -> Self {
        Self {
            identity,
            family,
            token_id,
            expires_at,
            last_use: AtomicI64::new(last_use),
            idle: None,
            checked_at_epoch: AtomicU64::new(epoch),
        }
    }

    /// Makes the credential lapse after `idle` of disuse.
    pub(crate) fn idle_timeout(mut self, idle: IdleTimeout) -> Self {
        self.idle = Some(idle);
        self
    }

    fn user_id(&self) -> Option<UserId> {
        self.identity.user_id()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    User(UserId),
    Family(FamilyId),
    Key(CacheKey),
    Domain(Domain),
    Everything,
}

impl Target {
    fn concerns(&self, key: &CacheKey, entry: &Resolved) -> bool {
        match self {
            Self::User(id) => entry.user_id() == Some(*id),
            Self::Family(family) => entry.family.as_ref() == Some(family),
            Self::Key(k) => k == key,
            Self::Domain(domain) => key.domain == *domain,
            Self::Everything => true,
        }
    }
}

#[derive(Debug)]
struct InvalidationLog {
    epoch: AtomicU64,
    recent: RwLock<VecDeque<(u64, Target)>>,
    capacity: usize,
}

impl InvalidationLog {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn push(&self, target: Target) {
        let mut recent = self.recent.write().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch.load(Ordering::Relaxed) + 1;
        recent.push_back((epoch, target));
        while recent.len() > self.capacity {
            recent.pop_front();
        }
        // Published after the entry is in the log, so a reader that sees the new epoch also
        // finds the entry that explains it.
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Whether anything logged after epoch `since` concerns this entry. When the log no longer
    /// reaches back to `since`, the answer is conservatively yes.
    fn touched_since(&self, since: u64, key: &CacheKey, entry: &Resolved) -> bool {
        let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
        match recent.front() {
            Some((oldest, _)) if *oldest > since + 1 => true,
            None => false,
            Some(_) => recent
                .iter()
                .rev()
                .take_while(|(epoch, _)| *epoch > since)
                .any(|(_, target)| target.concerns(key, entry)),
        }
    }
}

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
            clock,
            positive_ttl: micros(config.positive_ttl),
            negative_ttl: micros(config.negative_ttl),
            inflight: Mutex::new(HashMap::new()),
            log: InvalidationLog {
                epoch: AtomicU64::new(0),
                recent: RwLock::new(VecDeque::new()),
                capacity: config.invalidation_log.max(1),
            },
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
    }

    /// Drops every entry of one resolver kind (a JWT key set was replaced).
    pub(crate) fn invalidate_domain(&self, domain: Domain) {
        self.log.push(Target::Domain(domain));
    }

    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AuthMethod, Scopes};
    use crate::store::{TokenId, User};
    use std::sync::atomic::AtomicUsize;

    fn user(id: i64) -> User {
        User {
            id: UserId(id),
            username: format!("user{id}"),
            email: None,
            full_name: None,
            password_hash: None,
            roles: vec![],
            is_active: true,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            last_login: None,
        }
    }

    fn found(user_id: i64, family: Option<&str>, epoch: u64) -> Cached {
        let identity = Identity::user(
            user(user_id),
            AuthMethod::Jwt {
                jti: None,
                sid: None,
            },
            Scopes::Unrestricted,
        );
        Cached::Found(Arc::new(Resolved::new(
            identity,
            family.map(FamilyId::new),
            None,
            i64::MAX,
            0,
            epoch,
        )))
    }

    use crate::clock::ManualClock;

    fn system() -> Arc<dyn Clock> {
        Arc::new(crate::clock::SystemClock)
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::new(Domain::ApiKey, TokenDigest::from_bytes([n; 32]))
    }

    /// Distinct keys beyond the 256 of [`key`], in `series` so that two series never meet.
    fn numbered(series: u8, n: u32) -> CacheKey {
        let mut bytes = [series; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        CacheKey::new(Domain::ApiKey, TokenDigest::from_bytes(bytes))
    }

    struct Counted {
        loads: AtomicUsize,
    }

    impl Counted {
        fn new() -> Self {
            Self {
                loads: AtomicUsize::new(0),
            }
        }

        async fn load(
            &self,
            user_id: i64,
            family: Option<&str>,
            epoch: u64,
        ) -> Result<Cached, AuthError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(found(user_id, family, epoch))
        }

        fn loads(&self) -> usize {
            self.loads.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_hit_does_not_load_again() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let counted = Counted::new();
        for _ in 0..3 {
            cache
                .get_or_load(key(1), |epoch| counted.load(1, None, epoch))
                .await
                .unwrap();
        }
        assert_eq!(counted.loads(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_for_one_key_load_once() {
        let cache = Arc::new(CredentialCache::new(&CacheConfig::default(), system()));
        let counted = Arc::new(Counted::new());
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    cache
                        .get_or_load(key(9), |epoch| {
                            let counted = Arc::clone(&counted);
                            async move {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                counted.load(1, None, epoch).await
                            }
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(counted.loads(), 1);
    }

    #[tokio::test]
    async fn a_load_abandoned_by_its_request_leaves_nothing_behind() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let counted = Counted::new();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            cache.get_or_load(key(3), |epoch| {
                let counted = &counted;
                async move {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    counted.load(1, None, epoch).await
                }
            }),
        )
        .await;
        assert!(
            abandoned.is_err(),
            "the slow load should have been cancelled"
        );
        assert!(cache.inflight.lock().unwrap().is_empty());
        cache
            .get_or_load(key(3), |epoch| counted.load(1, None, epoch))
            .await
            .unwrap();
        assert_eq!(counted.loads(), 1);
        assert!(cache.inflight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalidating_a_user_reloads_only_that_users_entries() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let counted = Counted::new();
        cache
            .get_or_load(key(1), |e| counted.load(1, None, e))
            .await
            .unwrap();
        cache
            .get_or_load(key(2), |e| counted.load(2, None, e))
            .await
            .unwrap();
        cache.invalidate_user(UserId(1));
        cache
            .get_or_load(key(1), |e| counted.load(1, None, e))
            .await
            .unwrap();
        cache
            .get_or_load(key(2), |e| counted.load(2, None, e))
            .await
            .unwrap();
        assert_eq!(counted.loads(), 3, "user 1 reloaded, user 2 still cached");
    }

    #[tokio::test]
    async fn invalidating_a_family_reloads_its_entries() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let counted = Counted::new();
        cache
            .get_or_load(key(1), |e| counted.load(1, Some("f1"), e))
            .await
            .unwrap();
        cache
            .get_or_load(key(2), |e| counted.load(1, Some("f2"), e))
            .await
            .unwrap();
        cache.invalidate_family(&FamilyId::new("f1"));
        cache
            .get_or_load(key(1), |e| counted.load(1, Some("f1"), e))
            .await
            .unwrap();
        cache
            .get_or_load(key(2), |e| counted.load(1, Some("f2"), e))
            .await
            .unwrap();
        assert_eq!(counted.loads(), 3);
    }

    #[tokio::test]
    async fn an_invalidation_racing_a_load_still_reaches_its_entry() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let counted = Counted::new();
        // The first load reads the store, then an invalidation lands before it is cached.
        let first = std::sync::atomic::AtomicBool::new(true);
        cache
            .get_or_load(key(1), |epoch| {
                if first.swap(false, Ordering::SeqCst) {
                    cache.invalidate_user(UserId(1));
                }
                counted.load(1, None, epoch)
            })
            .await
            .unwrap();
        assert_eq!(counted.loads(), 2, "the stale load was replaced at once");
        cache
            .get_or_load(key(1), |e| counted.load(1, None, e))
            .await
            .unwrap();
        assert_eq!(counted.loads(), 3, "the stale entry was not served");
    }

    #[tokio::test]
    async fn an_overflowing_log_invalidates_conservatively() {
        let config = CacheConfig {
            invalidation_log: 2,
            ..CacheConfig::default()
        };
        let cache = CredentialCache::new(&config, system());
        let counted = Counted::new();
        cache
            .get_or_load(key(1), |e| counted.load(1, None, e))
            .await
            .unwrap();
        for other in 100..110 {
            cache.invalidate_user(UserId(other));
        }
        cache
            .get_or_load(key(1), |e| counted.load(1, None, e))
            .await
            .unwrap();
        assert_eq!(counted.loads(), 2);
    }

    #[tokio::test]
    async fn rejections_are_cached_and_errors_are_not() {
        let cache = CredentialCache::new(&CacheConfig::default(), system());
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            let answer = cache
                .get_or_load(key(3), |_| async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(Cached::Rejected(InvalidToken::Unknown))
                })
                .await
                .unwrap();
            assert!(matches!(answer, Cached::Rejected(InvalidToken::Unknown)));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        for _ in 0..3 {
            let answer = cache
                .get_or_load(key(4), |_| async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Err(AuthError::from(crate::store::StoreError::Corrupt(
                        "down".into(),
                    )))
                })
                .await;
            assert!(matches!(answer, Err(AuthError::Unavailable(_))));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            4,
            "every failed load is retried"
        );
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Clone, Debug)]
        enum Op {
            Get(u8),
            InvalidateUser(i64),
            InvalidateFamily(u8),
            InvalidateKey(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0u8..8).prop_map(Op::Get),
                1 => (0i64..3).prop_map(Op::InvalidateUser),
                1 => (0u8..2).prop_map(Op::InvalidateFamily),
                1 => (0u8..8).prop_map(Op::InvalidateKey),
            ]
        }

        // Key k belongs to user k % 3 and family k % 2.
        fn owner(k: u8) -> i64 {
            i64::from(k % 3)
        }

        fn family(k: u8) -> String {
            format!("f{}", k % 2)
        }

        proptest! {
            /// Against a model: a lookup reloads exactly when something concerning its key was
            /// invalidated since the entry was loaded, and otherwise serves the cached entry.
            #[test]
            fn lookups_reload_exactly_after_a_relevant_invalidation(ops in proptest::collection::vec(op(), 1..60)) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(async {
                    let cache = CredentialCache::new(&CacheConfig::default(), system());
                    let mut stale: HashMap<u8, bool> = HashMap::new();
                    let mut loaded: HashMap<u8, i64> = HashMap::new();
                    let mut stamp = 0i64;
                    for op in ops {
                        match op {
                            Op::Get(k) => {
                                let next = stamp + 1;
                                let answer = cache
                                    .get_or_load(key(k), |epoch| async move {
                                        let identity = Identity::user(user(owner(k)), AuthMethod::Jwt { jti: None, sid: None }, Scopes::Unrestricted);
                                        Ok(Cached::Found(Arc::new(Resolved::new(
                                            identity, Some(FamilyId::new(family(k))), Some(TokenId(next)), i64::MAX, 0, epoch,
                                        ))))
                                    })
                                    .await
                                    .unwrap();
                                let Cached::Found(entry) = answer else { unreachable!() };
                                let got = entry.token_id.unwrap().0;
                                let must_reload = stale.get(&k).copied().unwrap_or(true);
                                if must_reload {
                                    prop_assert_eq!(got, next, "key {} should have been reloaded", k);
                                    stamp = next;
                                } else {
                                    prop_assert_eq!(Some(&got), loaded.get(&k), "key {} should have been a hit", k);
                                }
                                loaded.insert(k, got);
                                stale.insert(k, false);
                            }
                            Op::InvalidateUser(u) => {
                                cache.invalidate_user(UserId(u));
                                for k in (0..8).filter(|k| owner(*k) == u) { stale.insert(k, true); }
                            }
                            Op::InvalidateFamily(f) => {
                                cache.invalidate_family(&FamilyId::new(format!("f{f}")));
                                for k in (0..8).filter(|k| k % 2 == f) { stale.insert(k, true); }
                            }
                            Op::InvalidateKey(k) => {
                                cache.invalidate_key(key(k));
                                stale.insert(k, true);
                            }
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let ttl = Duration::from_secs(30);
        let config = CacheConfig::default()
            .positive_ttl(ttl)
            .negative_ttl(ttl * 2);
        let clock = Arc::new(ManualClock::starting_now());
        let cache = CredentialCache::new(&config, clock.clone());
        let counted = Counted::new();
        let rejected = AtomicUsize::new(0);
        let reject = |_epoch| async {
            rejected.fetch_add(1, Ordering::SeqCst);
            Ok(Cached::Rejected(InvalidToken::Unknown))
        };
        cache
            .get_or_load(key(1), |epoch| counted.load(1, None, epoch))
            .await
            .unwrap();
        cache.get_or_load(key(2), reject).await.unwrap();
        clock.advance(ttl - Duration::from_micros(1));
        assert!(cache.peek(&key(1), clock.now_micros()).is_some());
        clock.advance(Duration::from_micros(1));
        assert!(
            cache.peek(&key(1), clock.now_micros()).is_none(),
            "positive entry outlived its TTL"
        );
        assert!(
            cache.peek(&key(2), clock.now_micros()).is_some(),
            "negative TTL is separate"
        );
        clock.advance(ttl);
        assert!(
            cache.peek(&key(2), clock.now_micros()).is_none(),
            "negative entry outlived its TTL"
        );
        cache
            .get_or_load(key(1), |epoch| counted.load(1, None, epoch))
            .await
            .unwrap();
        cache.get_or_load(key(2), reject).await.unwrap();
        assert_eq!(counted.loads(), 2);
        assert_eq!(rejected.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_zero_ttl_stores_nothing_and_loads_every_time() {
        let config = CacheConfig::default().positive_ttl(Duration::ZERO);
        let clock = Arc::new(ManualClock::starting_now());
        let cache = CredentialCache::new(&config, clock.clone());
        let counted = Counted::new();
        for _ in 0..3 {
            cache
                .get_or_load(key(1), |epoch| counted.load(1, None, epoch))
                .await
                .unwrap();
        }
        assert_eq!(counted.loads(), 3);
        assert_eq!(
            cache.entry_count(),
            0,
            "a stale-on-arrival entry was stored"
        );
        cache
            .get_or_load(key(2), |_epoch| async {
                Ok(Cached::Rejected(InvalidToken::Unknown))
            })
            .await
            .unwrap();
        assert_eq!(cache.entry_count(), 1, "the negative TTL still applies");
    }

    #[tokio::test]
    async fn a_clock_stepped_back_before_an_entry_was_stored_voids_it() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = CredentialCache::new(&CacheConfig::default(), clock.clone());
        let counted = Counted::new();
        cache
            .get_or_load(key(1), |epoch| counted.load(1, None, epoch))
            .await
            .unwrap();
        let stored = clock.now();
        clock.set(stored - time::Duration::hours(1));
        assert!(cache.peek(&key(1), clock.now_micros()).is_none());
    }

    #[tokio::test]
    async fn a_flood_of_unknown_tokens_does_not_evict_the_hot_entries() {
        let cache = CredentialCache::new(&CacheConfig::default().capacity(1_000), system());
        let counted = Counted::new();
        let hot: Vec<CacheKey> = (0..500u32).map(|n| numbered(0, n)).collect();
        for _ in 0..2 {
            for &k in &hot {
                cache
                    .get_or_load(k, |epoch| counted.load(1, None, epoch))
                    .await
                    .unwrap();
            }
        }
        for n in 0..50_000u32 {
            cache
                .get_or_load(numbered(1, n), |_| async {
                    Ok(Cached::Rejected(InvalidToken::Unknown))
                })
                .await
                .unwrap();
        }
        let now = crate::clock::SystemClock.now_micros();
        let survivors = hot.iter().filter(|k| cache.peek(k, now).is_some()).count();
        assert!(
            survivors >= 450,
            "only {survivors} of 500 hot entries survived"
        );
        assert!(cache.entry_count() <= 1_100);
    }

    #[tokio::test]
    async fn capacity_bounds_the_number_of_entries() {
        let cache = CredentialCache::new(&CacheConfig::default().capacity(100), system());
        for n in 0..2_000u32 {
            let digest = TokenDigest::of(&n.to_string());
            cache
                .get_or_load(CacheKey::new(Domain::ApiKey, digest), |_| async {
                    Ok(Cached::Rejected(InvalidToken::Unknown))
                })
                .await
                .unwrap();
        }
        assert!(cache.entry_count() <= 100);
    }
}
