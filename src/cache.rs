//! The credential cache: resolved credentials keyed by the SHA-256 of the presented secret.
//!
//! A cached API key, session id or repeated JWT costs one hash and one lookup instead of a
//! store query or a signature check (DESIGN §2, §3). Positive entries live for a short TTL,
//! negative ones (unknown, revoked or expired digests) for their own TTL; moka's TinyLFU
//! admission keeps a flood of random tokens from evicting the hot entries, and the capacity
//! bounds memory. Concurrent misses for one key share a single load.
//!
//! Invalidation is exact and cheap on the hot path: every invalidation (a user changed, a
//! session ended, a key was revoked) appends to a short log and bumps an epoch. An entry
//! remembers the epoch it was checked at; a hit whose epoch is current costs one atomic load,
//! and only after an invalidation does it scan the log for a change that concerns it. Because a
//! loader records the epoch *before* it reads the store, an invalidation that races a load
//! still reaches the entry it produced.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

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
    checked_at_epoch: AtomicU64,
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
            checked_at_epoch: AtomicU64::new(epoch),
        }
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

struct TtlPolicy {
    positive: Duration,
    negative: Duration,
}

impl Expiry<CacheKey, Cached> for TtlPolicy {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Cached::Found(_) => self.positive,
            Cached::Rejected(_) => self.negative,
        })
    }
}

/// See the module documentation.
pub(crate) struct CredentialCache {
    entries: Cache<CacheKey, Cached>,
    log: InvalidationLog,
    /// Set while cached answers must not be trusted (the invalidation bus is down and the
    /// policy is to fail closed): every lookup loads from the store and nothing is cached.
    bypass: AtomicBool,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.entries.entry_count())
            .field("epoch", &self.log.epoch())
            .finish()
    }
}

impl CredentialCache {
    pub(crate) fn new(config: &CacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.capacity)
            .expire_after(TtlPolicy {
                positive: config.positive_ttl,
                negative: config.negative_ttl,
            })
            .build();
        Self {
            entries,
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
        if let Some(hit) = self.entries.get(&key).await {
            if self.is_current(&key, &hit) {
                return Ok(hit);
            }
            self.entries.invalidate(&key).await;
        }
        let loaded = self
            .entries
            .try_get_with(key, async { load(self.epoch()).await })
            .await
            .map_err(|error| (*error).clone())?;
        if self.is_current(&key, &loaded) {
            return Ok(loaded);
        }
        // Invalidated while it was being loaded (or a stale twin raced in): answer from a
        // fresh load and let the next request cache it.
        self.entries.invalidate(&key).await;
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
    pub(crate) async fn invalidate_key(&self, key: CacheKey) {
        self.log.push(Target::Key(key));
        self.entries.invalidate(&key).await;
    }

    /// Like [`invalidate_key`](Self::invalidate_key), from synchronous code: the next lookup
    /// reloads, and the stale entry is replaced then or expires.
    pub(crate) fn invalidate_key_later(&self, key: CacheKey) {
        self.log.push(Target::Key(key));
    }

    /// Drops everything (the invalidation bus reconnected: messages may have been missed).
    pub(crate) fn invalidate_everything(&self) {
        self.log.push(Target::Everything);
        self.entries.invalidate_all();
    }

    /// Drops every entry of one resolver kind (a JWT key set was replaced).
    pub(crate) fn invalidate_domain(&self, domain: Domain) {
        self.log.push(Target::Domain(domain));
    }

    #[cfg(test)]
    pub(crate) async fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
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

    fn key(n: u8) -> CacheKey {
        CacheKey::new(Domain::ApiKey, TokenDigest::from_bytes([n; 32]))
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
        let cache = CredentialCache::new(&CacheConfig::default());
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
        let cache = Arc::new(CredentialCache::new(&CacheConfig::default()));
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
    async fn invalidating_a_user_reloads_only_that_users_entries() {
        let cache = CredentialCache::new(&CacheConfig::default());
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
        let cache = CredentialCache::new(&CacheConfig::default());
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
        let cache = CredentialCache::new(&CacheConfig::default());
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
        let cache = CredentialCache::new(&config);
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
        let cache = CredentialCache::new(&CacheConfig::default());
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
                    let cache = CredentialCache::new(&CacheConfig::default());
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
                                cache.invalidate_key(key(k)).await;
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
    async fn capacity_bounds_the_number_of_entries() {
        let cache = CredentialCache::new(&CacheConfig::default().capacity(100));
        for n in 0..2_000u32 {
            let digest = TokenDigest::of(&n.to_string());
            cache
                .get_or_load(CacheKey::new(Domain::ApiKey, digest), |_| async {
                    Ok(Cached::Rejected(InvalidToken::Unknown))
                })
                .await
                .unwrap();
        }
        assert!(cache.entry_count().await <= 100);
    }
}
