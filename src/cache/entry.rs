//! What the cache keeps: keys (a resolver's domain and a digest) and resolved credentials.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::error::InvalidToken;
use crate::identity::Identity;
use crate::store::{FamilyId, TokenId, UserId};
use crate::token::TokenDigest;

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
    pub(super) checked_at_epoch: AtomicU64,
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

    pub(super) fn user_id(&self) -> Option<UserId> {
        self.identity.user_id()
    }
}
