//! The credential cache's behaviour: hits, TTLs, invalidation, single-flight loads, bounds.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::*;
use crate::error::InvalidToken;
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::store::{TokenId, User};
use crate::token::TokenDigest;

fn found(user_id: i64, family: Option<&str>, epoch: u64) -> Cached {
    let identity = Identity::user(
        User::fixture(user_id),
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
                                    let identity = Identity::user(User::fixture(owner(k)), AuthMethod::Jwt { jti: None, sid: None }, Scopes::Unrestricted);
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

fn owner(id: i64) -> Arc<User> {
    Arc::new(User::fixture(id))
}

#[test]
fn an_owner_is_shared_until_its_user_is_invalidated() {
    let cache = CredentialCache::new(&CacheConfig::default(), system());
    let ada = owner(1);
    cache.remember_owner(&ada, cache.epoch());
    cache.remember_owner(&owner(2), cache.epoch());
    let now = cache.clock.now_micros();
    assert!(Arc::ptr_eq(&cache.owner(UserId(1), now).unwrap(), &ada));
    // Another user's invalidation leaves the record current; its own drops it.
    cache.invalidate_user(UserId(2));
    assert!(cache.owner(UserId(1), now).is_some());
    assert!(cache.owner(UserId(2), now).is_none());
    cache.invalidate_user(UserId(1));
    assert!(cache.owner(UserId(1), now).is_none());
}

#[test]
fn an_owner_read_before_an_invalidation_is_never_cached_past_it() {
    let cache = CredentialCache::new(&CacheConfig::default(), system());
    // A loader noted the epoch and read the user; the user changed before it cached the read.
    let epoch = cache.epoch();
    cache.invalidate_user(UserId(1));
    cache.remember_owner(&owner(1), epoch);
    assert!(cache.owner(UserId(1), cache.clock.now_micros()).is_none());
    // Everything invalidated (the bus reconnected) drops every owner.
    cache.remember_owner(&owner(3), cache.epoch());
    cache.invalidate_everything();
    assert!(cache.owner(UserId(3), cache.clock.now_micros()).is_none());
}

#[test]
fn an_owner_lives_one_positive_ttl_and_not_at_all_without_one() {
    let clock = Arc::new(ManualClock::starting_now());
    let config = CacheConfig::default().positive_ttl(Duration::from_secs(30));
    let cache = CredentialCache::new(&config, clock.clone());
    cache.remember_owner(&owner(1), cache.epoch());
    clock.advance(Duration::from_secs(29));
    assert!(cache.owner(UserId(1), clock.now_micros()).is_some());
    clock.advance(Duration::from_secs(2));
    assert!(cache.owner(UserId(1), clock.now_micros()).is_none());

    let uncached = CacheConfig::default().positive_ttl(Duration::ZERO);
    let cache = CredentialCache::new(&uncached, clock.clone());
    cache.remember_owner(&owner(1), cache.epoch());
    assert!(cache.owner(UserId(1), clock.now_micros()).is_none());
}
