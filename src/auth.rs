//! [`Auth`]: the store, cache, clock and event sink that every portcullis service shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind, EventSink, TracingEvents};
use crate::cache::{CacheConfig, CacheKey, CredentialCache, Resolved};
use crate::clock::{Clock, SystemClock};
use crate::error::AuthError;
use crate::store::{FamilyId, StoreError, User, UserId, UserStore, UserUpdate};
use crate::usage::{UsageConfig, UsageRecorder};

/// The shared core of portcullis: one store, one credential cache, one clock, one event sink.
///
/// Build one per application and derive the services from it; they all see the same cache,
/// so revoking through one of them is seen by every credential source at once.
///
/// ```
/// use portcullis::{Auth, store::MemoryStore};
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn UserStore>,
    cache: CredentialCache,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    usage: UsageRecorder,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("cache", &self.inner.cache)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Configures an [`Auth`].
pub struct AuthBuilder {
    store: Arc<dyn UserStore>,
    cache: CacheConfig,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    usage: UsageConfig,
}

impl fmt::Debug for AuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("cache", &self.cache)
            .field("clock", &self.clock)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl AuthBuilder {
    /// Sets the credential cache's sizes and lifetimes.
    #[must_use]
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Replaces the clock (tests use [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the clock with a shared one.
    #[must_use]
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where audit events go (default: [`TracingEvents`]).
    #[must_use]
    pub fn events(mut self, sink: impl EventSink) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// How often queued `last_used_at` updates are written (default 10 s), and the smallest
    /// change worth writing (default 60 s).
    #[must_use]
    pub fn last_used(mut self, interval: Duration, granularity: Duration) -> Self {
        self.usage = UsageConfig {
            granularity,
            interval,
        };
        self
    }

    /// Builds the [`Auth`].
    pub fn build(self) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                cache: CredentialCache::new(&self.cache),
                usage: UsageRecorder::new(Arc::clone(&self.store), &self.usage),
                store: self.store,
                clock: self.clock,
                events: self.events,
            }),
        }
    }
}

impl Auth {
    /// Starts configuring an [`Auth`] over `store`.
    pub fn builder(store: impl UserStore) -> AuthBuilder {
        Self::builder_shared(Arc::new(store))
    }

    /// Like [`builder`](Self::builder), for a store the application also uses directly.
    pub fn builder_shared(store: Arc<dyn UserStore>) -> AuthBuilder {
        AuthBuilder {
            store,
            cache: CacheConfig::default(),
            clock: Arc::new(SystemClock),
            events: Arc::new(TracingEvents),
            usage: UsageConfig::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn UserStore {
        &*self.inner.store
    }

    /// The current time from the configured clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Records an audit event stamped with the current time.
    pub async fn audit(&self, kind: AuditKind, user_id: Option<UserId>) {
        let event = AuditEvent {
            at: self.now(),
            kind,
            user_id,
        };
        self.inner.events.record(event).await;
    }

    /// Changes a user and, when the change affects authentication (password, roles,
    /// activation), drops every cached credential of that user so that the next request sees
    /// the change. Returns `None` if there is no such user.
    ///
    /// Always change users through this method (not the store directly) while the application
    /// serves requests; otherwise cached credentials stay valid until their TTL passes.
    pub async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<User>, StoreError> {
        let affects_credentials = update.affects_credentials();
        let deactivated = update.is_active == Some(false);
        let updated = self.inner.store.update_user(id, update, self.now()).await?;
        if affects_credentials && updated.is_some() {
            self.inner.cache.invalidate_user(id);
            self.audit(AuditKind::UserUpdated { deactivated }, Some(id))
                .await;
        }
        Ok(updated)
    }

    /// Drops every cached credential of `user`.
    pub fn invalidate_user(&self, user: UserId) {
        self.inner.cache.invalidate_user(user);
    }

    /// Drops every cached credential of a session family.
    pub fn invalidate_family(&self, family: &FamilyId) {
        self.inner.cache.invalidate_family(family);
    }

    /// Writes every queued `last_used_at` update now (call on graceful shutdown).
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.inner.usage.flush().await
    }

    pub(crate) fn cache(&self) -> &CredentialCache {
        &self.inner.cache
    }

    pub(crate) async fn invalidate_key(&self, key: CacheKey) {
        self.inner.cache.invalidate_key(key).await;
    }

    /// Loads a user for a credential; a missing user is reported as `None`.
    pub(crate) async fn load_user(&self, id: UserId) -> Result<Option<User>, AuthError> {
        Ok(self.inner.store.user_by_id(id).await?)
    }

    /// The request-path check every cached credential passes: not expired, owner active, and
    /// the use noted for write-behind.
    pub(crate) fn admit(&self, entry: &Resolved) -> Result<crate::Identity, AuthError> {
        let now = self.inner.clock.now_micros();
        if entry.expires_at <= now {
            return Err(crate::InvalidToken::Expired.into());
        }
        if entry
            .identity
            .user_record()
            .is_some_and(|user| !user.is_active)
        {
            return Err(AuthError::InactiveUser);
        }
        self.inner.usage.touch(entry, now);
        Ok(entry.identity.clone())
    }
}
