//! The invalidation log: every invalidation bumps an epoch and is remembered for a while, so a
//! cache hit checks one atomic, and scans the log only when something changed since its entry
//! was last checked.

use std::collections::VecDeque;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::entry::{CacheKey, Resolved};
use crate::store::{FamilyId, UserId};

/// What one invalidation drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    User(UserId),
    Family(FamilyId),
    Key(CacheKey),
    Everything,
}

impl Target {
    fn concerns(&self, key: &CacheKey, entry: &Resolved) -> bool {
        match self {
            Self::User(id) => entry.user_id() == Some(*id),
            Self::Family(family) => entry.family.as_ref() == Some(family),
            Self::Key(k) => k == key,
            Self::Everything => true,
        }
    }

    fn concerns_user(&self, user: UserId) -> bool {
        matches!(self, Self::User(id) if *id == user) || matches!(self, Self::Everything)
    }
}

#[derive(Debug)]
pub(super) struct InvalidationLog {
    epoch: AtomicU64,
    recent: RwLock<VecDeque<(u64, Target)>>,
    capacity: usize,
}

impl InvalidationLog {
    /// A log that remembers the last `capacity` invalidations (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            recent: RwLock::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(super) fn push(&self, target: Target) {
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
    pub(super) fn touched_since(&self, since: u64, key: &CacheKey, entry: &Resolved) -> bool {
        self.any_since(since, |target| target.concerns(key, entry))
    }

    /// Whether anything logged after epoch `since` concerns `user`'s record.
    pub(super) fn user_touched_since(&self, since: u64, user: UserId) -> bool {
        self.any_since(since, |target| target.concerns_user(user))
    }

    fn any_since(&self, since: u64, concerns: impl Fn(&Target) -> bool) -> bool {
        let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
        match recent.front() {
            Some((oldest, _)) if *oldest > since + 1 => true,
            None => false,
            Some(_) => recent
                .iter()
                .rev()
                .take_while(|(epoch, _)| *epoch > since)
                .any(|(_, target)| concerns(target)),
        }
    }
}
