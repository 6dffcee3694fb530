//! [`Auth`]: the store, cache, clock and event sink that every portcullis service shares.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind, EventSink, TracingEvents};
use crate::bus::heartbeat::{self, Liveness};
use crate::bus::{
    Body, CredentialKey, DEFAULT_HEARTBEAT, Invalidation, InvalidationBus, Message,
    PUBLISH_TIMEOUT, Subscriber, SubscriberSink, WhenBusDown,
};
use crate::cache::{CacheConfig, CacheKey, Cached, CredentialCache, Resolved};
use crate::clock::{Clock, SystemClock};
use crate::error::AuthError;
use crate::store::{
    CounterStore, FamilyId, RevokeReason, SecretStore, StoreError, Stores, TokenKind,
    TokenSelector, TokenStore, User, UserId, UserStore, UserUpdate,
};
use crate::usage::{UsageConfig, UsageRecorder};

/// Which of a user's credentials [`Auth::end_credentials`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// What a person signing in obtained: browser sessions and refresh-token families, and
    /// with them every access token issued in those sessions. API keys stay.
    SignIns,
    /// Sign-ins and API keys: every credential the user holds, after a suspected compromise.
    Everything,
}

impl Credentials {
    fn kinds(self) -> &'static [TokenKind] {
        match self {
            Self::SignIns => &[TokenKind::Session, TokenKind::Refresh],
            Self::Everything => &[TokenKind::Session, TokenKind::Refresh, TokenKind::ApiKey],
        }
    }
}

/// The shared core of portcullis: the stores, one credential cache, one clock, one event sink.
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
    stores: Stores,
    cache: CredentialCache,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    usage: UsageRecorder,
    bus: Option<BusLink>,
    /// Whether a credential's token and owner come in one query
    /// ([`TokenStore::token_and_owner`](crate::store::TokenStore::token_and_owner)): only when
    /// one store keeps both, and until it answers that it cannot.
    joined_lookup: AtomicBool,
}

/// This instance's connection to the invalidation bus.
struct BusLink {
    bus: Arc<dyn InvalidationBus>,
    /// Identifies this instance's own messages when they come back.
    origin: u64,
    policy: WhenBusDown,
    /// How often to publish a heartbeat; `None` trusts the transport to report every failure.
    heartbeat: Option<Duration>,
    started: AtomicBool,
    /// Set while a subscription is in place.
    connected: AtomicBool,
    /// Set while the bus is down, so that an outage is logged once.
    outage: AtomicBool,
    /// Dropped with the `Auth`, which stops the subscription task.
    shutdown: tokio::sync::watch::Sender<()>,
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
    stores: Stores,
    cache: CacheConfig,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    usage: UsageConfig,
    bus: Option<Arc<dyn InvalidationBus>>,
    when_bus_down: WhenBusDown,
    bus_heartbeat: Option<Duration>,
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

    /// Shares invalidations with the other instances of the application through `bus`
    /// (see [`bus`](crate::bus)). Without a bus, a change made on one instance reaches the
    /// others' caches only when their entries expire.
    #[must_use]
    pub fn invalidation_bus(mut self, bus: impl InvalidationBus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// What to do with the cache while the bus is down (default: bypass it).
    #[must_use]
    pub fn when_bus_down(mut self, policy: WhenBusDown) -> Self {
        self.when_bus_down = policy;
        self
    }

    /// Publishes a heartbeat on the bus every `interval` (default
    /// [`DEFAULT_HEARTBEAT`](crate::bus::DEFAULT_HEARTBEAT), 1 s) and counts the bus as down
    /// once nothing, this instance's own heartbeats included, has been heard for
    /// [`HEARTBEAT_MISSES`](crate::bus::HEARTBEAT_MISSES) intervals: a connection that died
    /// silently (a partition, a stopped server) is then noticed within about four intervals
    /// and [`when_bus_down`](Self::when_bus_down) applies. Each instance adds one small
    /// message per interval to the bus.
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    #[must_use]
    pub fn bus_heartbeat(mut self, interval: Duration) -> Self {
        assert!(
            !interval.is_zero(),
            "a bus heartbeat interval must be positive"
        );
        self.bus_heartbeat = Some(interval);
        self
    }

    /// Publishes no heartbeat, for a bus that does not deliver an instance's own messages back
    /// to it. A subscription is then treated as down only when the bus reports an error, so a
    /// silently dead connection goes unnoticed: prefer a bus that echoes.
    #[must_use]
    pub fn without_bus_heartbeat(mut self) -> Self {
        self.bus_heartbeat = None;
        self
    }

    /// Builds the [`Auth`]. With a bus, the subscription starts at once inside a tokio runtime,
    /// otherwise on first use.
    pub fn build(self) -> Auth {
        let cache = CredentialCache::new(&self.cache, Arc::clone(&self.clock));
        let bus = self.bus.map(|bus| {
            // Until the first subscription is in place, missed messages cannot be ruled out.
            cache.set_bypass(self.when_bus_down == WhenBusDown::BypassCache);
            BusLink {
                bus,
                origin: random_origin(),
                policy: self.when_bus_down,
                heartbeat: self.bus_heartbeat,
                started: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                outage: AtomicBool::new(false),
                shutdown: tokio::sync::watch::channel(()).0,
            }
        });
        // The token store's own users are the application's only if it is the user store.
        let one_store = std::ptr::addr_eq(
            Arc::as_ptr(&self.stores.tokens),
            Arc::as_ptr(&self.stores.users),
        );
        let auth = Auth {
            inner: Arc::new(Inner {
                joined_lookup: AtomicBool::new(one_store),
                cache,
                usage: UsageRecorder::new(Arc::clone(&self.stores.tokens), &self.usage),
                stores: self.stores,
                clock: self.clock,
                events: self.events,
                bus,
            }),
        };
        auth.start_bus();
        auth
    }
}

fn random_origin() -> u64 {
    use rand::TryRng;
    let mut bytes = [0u8; 8];
    // Collisions only make an instance ignore another's messages; fall back to the clock.
    match rand::rngs::SysRng.try_fill_bytes(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => SystemClock.now_micros().unsigned_abs(),
    }
}

impl Auth {
    /// Starts configuring an [`Auth`] over a [`Store`](crate::store::Store) that keeps every concern (owned, or an
    /// `Arc<dyn Store>` the application also uses directly), or over [`Stores`] that keep
    /// them in different places.
    pub fn builder(stores: impl Into<Stores>) -> AuthBuilder {
        AuthBuilder {
            stores: stores.into(),
            cache: CacheConfig::default(),
            clock: Arc::new(SystemClock),
            events: Arc::new(TracingEvents),
            usage: UsageConfig::default(),
            bus: None,
            when_bus_down: WhenBusDown::default(),
            bus_heartbeat: Some(DEFAULT_HEARTBEAT),
        }
    }

    /// The stores, one per concern.
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    /// The user accounts.
    pub fn users(&self) -> &dyn UserStore {
        &*self.inner.stores.users
    }

    /// The opaque tokens: API keys, refresh tokens, session ids.
    pub fn tokens(&self) -> &dyn TokenStore {
        &*self.inner.stores.tokens
    }

    /// The one-time secrets.
    pub fn secrets(&self) -> &dyn SecretStore {
        &*self.inner.stores.secrets
    }

    /// The quota counters.
    pub fn counters(&self) -> &dyn CounterStore {
        &*self.inner.stores.counters
    }

    /// The current time from the configured clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// `Ok` when `identity` signed in at most `max_age` ago by this `Auth`'s clock, otherwise
    /// [`AuthError::StaleAuthentication`] (RFC 9470: `401`, `insufficient_user_authentication`).
    /// Guards what a stolen access token alone must not be enough for: creating an API key,
    /// changing a password or an email address. A credential that carries no sign-in (an API
    /// key, a client application, the internal key) never passes.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::{sync::Arc, time::Duration};
    /// use portcullis::{Auth, AuthError, AuthMethod, Identity, Scopes, clock::ManualClock};
    /// use portcullis::assurance::Factor;
    /// use portcullis::store::{MemoryStore, NewUser, UserStore};
    ///
    /// let clock = Arc::new(ManualClock::new(time::OffsetDateTime::UNIX_EPOCH));
    /// let auth = Auth::builder(MemoryStore::new()).shared_clock(clock.clone()).build();
    /// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
    /// let method = AuthMethod::Jwt { jti: None, sid: None };
    /// let identity = Identity::user(ada, method, Scopes::Unrestricted)
    ///     .signed_in(auth.now(), Factor::Password.into());
    ///
    /// let fifteen_minutes = Duration::from_secs(15 * 60);
    /// assert!(auth.require_recent_sign_in(&identity, fifteen_minutes).is_ok());
    /// clock.advance(Duration::from_secs(16 * 60));
    /// assert!(matches!(
    ///     auth.require_recent_sign_in(&identity, fifteen_minutes),
    ///     Err(AuthError::StaleAuthentication { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn require_recent_sign_in(
        &self,
        identity: &crate::Identity,
        max_age: Duration,
    ) -> Result<(), AuthError> {
        let recent = identity
            .auth_time()
            .is_some_and(|at| self.now() <= crate::clock::add(at, max_age));
        if recent {
            Ok(())
        } else {
            Err(AuthError::StaleAuthentication { max_age })
        }
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
        let updated = self
            .inner
            .stores
            .users
            .update_user(id, update, self.now())
            .await?;
        if affects_credentials && updated.is_some() {
            self.invalidate(Invalidation::User(id)).await;
            self.audit(AuditKind::UserUpdated { deactivated }, Some(id))
                .await;
        }
        Ok(updated)
    }

    /// Ends `user`'s `credentials`: revokes them in the store, then drops every cached
    /// credential of the user here and, through the bus, on every instance, so that the next
    /// request anywhere is refused (access tokens included: they name their session, which is
    /// gone). Returns how many tokens were revoked. The one path behind suspension, password
    /// changes and resets, and "log out everywhere" (OWASP ASVS 5.0 V7.4.3, V7.4.5).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use portcullis::{ApiKeys, Auth, Credentials, NewApiKey, session::Sessions};
    /// use portcullis::{assurance::Factor, sign_in::Authenticated};
    /// use portcullis::source::TokenResolver;
    /// use portcullis::store::{MemoryStore, NewUser, RevokeReason, UserStore};
    /// use portcullis::token::TokenFormat;
    ///
    /// let auth = Auth::builder(MemoryStore::new()).build();
    /// let sessions = Sessions::new(&auth, TokenFormat::new("s_")?);
    /// let keys = ApiKeys::new(&auth, TokenFormat::new("k_")?);
    /// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
    /// let signed_in = Authenticated::new(ada.clone(), Factor::Password, auth.now());
    /// let session = sessions.start(&signed_in, &http::HeaderMap::new()).await?;
    /// let key = keys.create(&ada, NewApiKey::named("ci")).await?;
    ///
    /// auth.end_credentials(ada.id, Credentials::SignIns, RevokeReason::Logout).await?;
    /// assert!(sessions.resolve(session.secret.expose()).await.is_err());
    /// assert!(keys.resolve(key.secret.expose()).await.is_ok(), "API keys stay");
    /// auth.end_credentials(ada.id, Credentials::Everything, RevokeReason::Admin).await?;
    /// assert!(keys.resolve(key.secret.expose()).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn end_credentials(
        &self,
        user: UserId,
        credentials: Credentials,
        reason: RevokeReason,
    ) -> Result<usize, StoreError> {
        let now = self.now();
        let mut revoked = 0;
        for &kind in credentials.kinds() {
            let selector = TokenSelector::User {
                user,
                kind: Some(kind),
            };
            revoked += self
                .inner
                .stores
                .tokens
                .revoke_tokens(selector, reason, now)
                .await?
                .len();
        }
        // After the revocation: a request that reloads the user before it must not cache a
        // credential that is about to die.
        self.invalidate(Invalidation::User(user)).await;
        let api_keys = credentials == Credentials::Everything;
        self.audit(
            AuditKind::CredentialsEnded { revoked, api_keys },
            Some(user),
        )
        .await;
        Ok(revoked)
    }

    /// Suspends `user`: deactivates the account and ends its sign-ins, taking effect on the
    /// next request on every instance. Its API keys are kept but refused (`403`) while the
    /// account is inactive; [`unsuspend`](Self::unsuspend) brings them back, not the ended
    /// sign-ins. Returns `None` if there is no such user.
    pub async fn suspend(&self, user: UserId) -> Result<Option<User>, StoreError> {
        let Some(suspended) = self
            .update_user(user, UserUpdate::default().active(false))
            .await?
        else {
            return Ok(None);
        };
        self.end_credentials(user, Credentials::SignIns, RevokeReason::Admin)
            .await?;
        Ok(Some(suspended))
    }

    /// Reactivates a suspended `user` on every instance. Returns `None` if there is no such
    /// user.
    pub async fn unsuspend(&self, user: UserId) -> Result<Option<User>, StoreError> {
        self.update_user(user, UserUpdate::default().active(true))
            .await
    }

    /// Drops every cached credential of `user`, here and (through the bus) on every instance.
    pub async fn invalidate_user(&self, user: UserId) {
        self.invalidate(Invalidation::User(user)).await;
    }

    /// Drops every cached credential of a session family, here and on every instance.
    pub async fn invalidate_family(&self, family: &FamilyId) {
        self.invalidate(Invalidation::Session(family.clone())).await;
    }

    pub(crate) async fn invalidate_key(&self, key: CacheKey) {
        self.invalidate(Invalidation::Credential(CredentialKey(key)))
            .await;
    }

    /// Applies `invalidation` locally, then publishes it, for at most [`PUBLISH_TIMEOUT`]. A
    /// publishing failure is logged; the other instances' cache TTL (or their fail-closed
    /// policy) bounds the damage.
    async fn invalidate(&self, invalidation: Invalidation) {
        apply(&self.inner.cache, &invalidation);
        let Some(link) = &self.inner.bus else {
            return;
        };
        let message = Message {
            origin: link.origin,
            body: Body::Invalidate(invalidation),
        };
        let text = message.to_string();
        match tokio::time::timeout(PUBLISH_TIMEOUT, link.bus.publish(&text)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not publish a cache invalidation to the other instances");
            }
            Err(_) => tracing::warn!(
                timeout = ?PUBLISH_TIMEOUT,
                "gave up publishing a cache invalidation to the other instances: the bus is stalled"
            ),
        }
    }

    /// Whether the invalidation bus is subscribed: `None` without a bus. For health checks.
    pub fn bus_connected(&self) -> Option<bool> {
        self.start_bus();
        let link = self.inner.bus.as_ref()?;
        Some(link.connected.load(Ordering::Acquire))
    }

    /// Deletes the stored tokens that expired, or were revoked, more than `retention` ago
    /// (see [`TokenStore::purge_tokens`](crate::store::TokenStore::purge_tokens)); returns how many. Every login, refresh and session
    /// adds a row that is dead once it expires; run this now and then so that they do not
    /// accumulate. Keep `retention` at least as long as the refresh-token lifetime, so that a
    /// rotated refresh token presented again is still recognised as reuse.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(auth: portcullis::Auth) {
    /// let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    /// loop {
    ///     hourly.tick().await;
    ///     if let Err(error) = auth.purge_tokens(Duration::from_secs(30 * 86_400)).await {
    ///         tracing::warn!(%error, "could not purge dead tokens; will retry");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn purge_tokens(&self, retention: Duration) -> Result<u64, StoreError> {
        let before = crate::clock::sub(self.now(), retention);
        self.inner.stores.tokens.purge_tokens(before).await
    }

    /// Writes every queued `last_used_at` update now (call on graceful shutdown).
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.inner.usage.flush().await
    }

    pub(crate) fn cache(&self) -> &CredentialCache {
        self.start_bus();
        &self.inner.cache
    }

    /// Starts the bus subscription task, once, when a tokio runtime is available.
    fn start_bus(&self) {
        let Some(link) = &self.inner.bus else {
            return;
        };
        if link.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if link.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let shutdown = link.shutdown.subscribe();
        runtime.spawn(subscribe(
            Arc::downgrade(&self.inner),
            Arc::clone(&link.bus),
            (link.origin, link.heartbeat),
            shutdown,
        ));
    }

    /// When `token` was last used: the store's record, or a newer use this instance noted and
    /// has not written yet.
    pub(crate) fn last_use(&self, token: &crate::store::TokenRecord) -> OffsetDateTime {
        let stored = token.last_used_at.unwrap_or(token.created_at);
        match self.inner.usage.unwritten_use(token.id) {
            Some(unwritten) => stored.max(crate::clock::from_micros(unwritten)),
            None => stored,
        }
    }

    /// Revokes token `id` of `kind` if `owner` owns it and it is not revoked yet, and drops
    /// it from every instance's cache (under `domain`). Scoped to `kind`, so that one kind's
    /// revocation endpoint (say, deleting an API key) cannot reach another kind's tokens
    /// (a session, a refresh token) that share the table's id space.
    pub(crate) async fn revoke_owned(
        &self,
        owner: UserId,
        id: crate::store::TokenId,
        kind: crate::store::TokenKind,
        domain: crate::cache::Domain,
    ) -> Result<Option<crate::store::TokenRecord>, StoreError> {
        let store = &self.inner.stores.tokens;
        let owned = store.tokens_of_user(owner, kind).await?;
        let Some(token) = owned.into_iter().find(|token| token.id == id) else {
            return Ok(None);
        };
        let selector = crate::store::TokenSelector::Digest {
            kind,
            digest: token.digest,
        };
        let revoked = store
            .revoke_tokens(selector, crate::store::RevokeReason::Revoked, self.now())
            .await?
            .pop();
        if revoked.is_some() {
            self.invalidate_key(CacheKey::new(domain, token.digest))
                .await;
        }
        Ok(revoked)
    }

    /// The stored token of `kind` with `digest` if it is live now, or why it is refused
    /// (unknown, revoked, expired).
    pub(crate) async fn live_token(
        &self,
        kind: crate::store::TokenKind,
        digest: &crate::token::TokenDigest,
    ) -> Result<Result<crate::store::TokenRecord, crate::InvalidToken>, StoreError> {
        let Some(record) = self
            .inner
            .stores
            .tokens
            .token_by_digest(kind, digest)
            .await?
        else {
            return Ok(Err(crate::InvalidToken::Unknown));
        };
        Ok(self.live(record))
    }

    /// `record` if it is live now, or why it is refused (revoked, expired).
    fn live(
        &self,
        record: crate::store::TokenRecord,
    ) -> Result<crate::store::TokenRecord, crate::InvalidToken> {
        if record.revoked_at.is_some() {
            Err(crate::InvalidToken::Revoked)
        } else if record.is_expired(self.now()) {
            Err(crate::InvalidToken::Expired)
        } else {
            Ok(record)
        }
    }

    /// The stored token of `kind` with `digest` and its owner if the token is live now and the
    /// owner exists, or why the token is refused: one store query where the store keeps both.
    /// The owner is cached as a load that started at `epoch` (see [`Self::credential_owner`]).
    pub(crate) async fn live_token_and_owner(
        &self,
        kind: crate::store::TokenKind,
        digest: &crate::token::TokenDigest,
        epoch: u64,
    ) -> Result<Result<(crate::store::TokenRecord, Arc<User>), crate::InvalidToken>, AuthError>
    {
        if self.inner.joined_lookup.load(Ordering::Relaxed) {
            match self.inner.stores.tokens.token_and_owner(kind, digest).await {
                Ok(found) => {
                    return Ok(match found {
                        None => Err(crate::InvalidToken::Unknown),
                        Some((record, owner)) => self.live(record).and_then(|record| {
                            let owner = owner.ok_or(crate::InvalidToken::Unknown)?;
                            // The record the user's other credentials share, while current.
                            let shared = self
                                .cached_owner(owner.id)
                                .unwrap_or_else(|| self.share_owner(owner, epoch));
                            Ok((record, shared))
                        }),
                    });
                }
                Err(StoreError::Unsupported(_)) => {
                    self.inner.joined_lookup.store(false, Ordering::Relaxed);
                }
                Err(error) => return Err(error.into()),
            }
        }
        let record = match self.live_token(kind, digest).await? {
            Ok(record) => record,
            Err(refused) => return Ok(Err(refused)),
        };
        Ok(match self.credential_owner(record.user_id, epoch).await? {
            Some(owner) => Ok((record, owner)),
            None => Err(crate::InvalidToken::Unknown),
        })
    }

    /// The owner of a credential being loaded: the record every cached credential of the user
    /// shares, from the cache, or from the store and then cached as a load that started at
    /// `epoch` would be. `None` when the user is gone.
    pub(crate) async fn credential_owner(
        &self,
        id: UserId,
        epoch: u64,
    ) -> Result<Option<Arc<User>>, AuthError> {
        if let Some(owner) = self.cached_owner(id) {
            return Ok(Some(owner));
        }
        Ok(self
            .load_user(id)
            .await?
            .map(|user| self.share_owner(user, epoch)))
    }

    /// The cached owner record of `id`, if there is a current one.
    pub(crate) fn cached_owner(&self, id: UserId) -> Option<Arc<User>> {
        self.cache().owner(id, self.inner.clock.now_micros())
    }

    /// `user`, read from the store, as the shared record of its credentials: without its
    /// password hash (no cached identity keeps one), and cached.
    fn share_owner(&self, mut user: User, epoch: u64) -> Arc<User> {
        user.password_hash = None;
        let owner = Arc::new(user);
        self.cache().remember_owner(&owner, epoch);
        owner
    }

    /// Loads a user for a credential; a missing user is reported as `None`.
    pub(crate) async fn load_user(&self, id: UserId) -> Result<Option<User>, AuthError> {
        Ok(self.inner.stores.users.user_by_id(id).await?)
    }

    /// The identity a cached credential stands for, if the cache holds a current answer for
    /// `key`: the synchronous request path, one clock read.
    pub(crate) fn resolve_cached(
        &self,
        key: &CacheKey,
    ) -> Option<Result<crate::Identity, AuthError>> {
        let now = self.inner.clock.now_micros();
        self.cache()
            .peek(key, now)
            .map(|cached| self.answer(cached, now))
    }

    /// The cached answer for an opaque token of `format` under `domain`, or its refusal on
    /// sight; `None` when only the store can tell.
    ///
    /// A cache entry exists only for a string that passed [`TokenFormat::parse`](crate::token::TokenFormat::parse) when it was
    /// loaded, and the digest names that exact string, so a hit needs no second syntax and
    /// checksum check: they run on a miss only. The length is checked first so that an
    /// oversized string is never hashed.
    pub(crate) fn resolve_token_now(
        &self,
        format: &crate::token::TokenFormat,
        domain: crate::cache::Domain,
        token: &str,
    ) -> Option<Result<crate::Identity, AuthError>> {
        if token.len() != format.token_len() {
            return Some(Err(crate::InvalidToken::Malformed.into()));
        }
        let digest = crate::token::TokenDigest::of(token);
        if let Some(answer) = self.resolve_cached(&CacheKey::new(domain, digest)) {
            return Some(answer);
        }
        match format.parse(token) {
            Ok(_) => None,
            Err(error) => Some(Err(AuthError::InvalidToken(error.into()))),
        }
    }

    /// Like [`resolve_cached`](Self::resolve_cached), loading a missing answer with `load`
    /// (called with the cache epoch to record in the entry).
    pub(crate) async fn resolve_loading<F, Fut>(
        &self,
        key: CacheKey,
        load: F,
    ) -> Result<crate::Identity, AuthError>
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = Result<Cached, AuthError>>,
    {
        let cached = self.cache().get_or_load(key, load).await?;
        self.answer(cached, self.inner.clock.now_micros())
    }

    /// Caches `answer` for `key` (made from what was current at the epoch its entry records)
    /// and answers from it: a credential resolved without waiting. `None` if an invalidation
    /// overtook it, for the caller to load it afresh.
    pub(crate) fn remember_now(
        &self,
        key: CacheKey,
        answer: Cached,
    ) -> Option<Result<crate::Identity, AuthError>> {
        self.cache()
            .remember_current(key, &answer)
            .then(|| self.answer(answer, self.inner.clock.now_micros()))
    }

    /// The identity a cache answer stands for, or why it is refused.
    fn answer(&self, cached: Cached, now: i64) -> Result<crate::Identity, AuthError> {
        match cached {
            Cached::Found(entry) => self.admit(&entry, now),
            Cached::Rejected(reason) => Err(reason.into()),
        }
    }

    /// The request-path check every cached credential passes: not expired, owner active, and
    /// the use noted for write-behind.
    fn admit(&self, entry: &Resolved, now: i64) -> Result<crate::Identity, AuthError> {
        if entry.expires_at <= now || entry.idle.as_ref().is_some_and(|idle| !idle.admit(now)) {
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

fn apply(cache: &CredentialCache, invalidation: &Invalidation) {
    match invalidation {
        Invalidation::User(user) => cache.invalidate_user(*user),
        Invalidation::Session(family) => cache.invalidate_family(family),
        Invalidation::Credential(CredentialKey(key)) => cache.invalidate_key(*key),
    }
}

/// Receives bus messages for one `Auth`.
struct Sink {
    auth: Weak<Inner>,
    liveness: Arc<Liveness>,
}

impl SubscriberSink for Sink {
    fn connected(&self) {
        self.liveness.heard_now();
        let Some(inner) = self.auth.upgrade() else {
            return;
        };
        let Some(link) = &inner.bus else { return };
        // Whatever was published while this instance was not listening is lost: start over.
        inner.cache.invalidate_everything();
        inner.cache.set_bypass(false);
        link.connected.store(true, Ordering::Release);
        if link.outage.swap(false, Ordering::AcqRel) {
            tracing::info!("cache invalidation bus is back; local cache emptied");
        }
    }

    fn deliver(&self, text: &str) {
        // Even a malformed message shows that the subscription delivers.
        self.liveness.heard_now();
        let Ok(message) = text.parse::<Message>() else {
            tracing::warn!("ignoring a malformed cache invalidation message");
            return;
        };
        let Body::Invalidate(invalidation) = message.body else {
            return;
        };
        let Some(inner) = self.auth.upgrade() else {
            return;
        };
        let Some(link) = &inner.bus else { return };
        if message.origin != link.origin {
            apply(&inner.cache, &invalidation);
        }
    }
}

/// Keeps this instance subscribed to the bus for as long as the `Auth` lives, reconnecting
/// with back-off (100 ms doubling to 5 s), and with a heartbeat abandons a subscription that
/// has gone silent (connecting included).
async fn subscribe(
    auth: Weak<Inner>,
    bus: Arc<dyn InvalidationBus>,
    (origin, heartbeat): (u64, Option<Duration>),
    mut shutdown: tokio::sync::watch::Receiver<()>,
) {
    let liveness = Arc::new(Liveness::new());
    let subscriber = Subscriber {
        inner: Arc::new(Sink {
            auth: auth.clone(),
            liveness: Arc::clone(&liveness),
        }),
    };
    let mut delay = Duration::from_millis(100);
    loop {
        liveness.heard_now();
        let watchdog = async {
            match heartbeat {
                Some(interval) => heartbeat::watch(&*bus, &liveness, origin, interval).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = bus.subscribe(&subscriber) => result,
            silence = watchdog => Err(silence),
            _ = shutdown.changed() => return,
        };
        let Some(inner) = auth.upgrade() else { return };
        let Some(link) = &inner.bus else { return };
        link.connected.store(false, Ordering::Release);
        if link.policy == WhenBusDown::BypassCache {
            inner.cache.set_bypass(true);
        }
        // The first failure after a working subscription starts an outage: log it once and
        // retry quickly; further failures back off.
        if link.outage.swap(true, Ordering::AcqRel) {
            delay = (delay * 2).min(Duration::from_secs(5));
        } else {
            delay = Duration::from_millis(100);
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(%error, policy = ?link.policy, "cache invalidation bus is down; reconnecting");
        }
        drop(inner);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}
