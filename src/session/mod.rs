//! Browser sessions: a server-side record per login, named by an opaque id in a cookie.
//!
//! [`Sessions`] starts, rotates and ends sessions and resolves a session id to an
//! [`Identity`]; the [`SessionCookie`](crate::source::SessionCookie) credential source reads the
//! cookie on each request. The id is an opaque token: 256 random bits, stored only as its
//! SHA-256 digest in the token table, looked up through the credential cache like an API key.
//!
//! | concern | behaviour |
//! |---|---|
//! | cookie | `__Host-` prefixed, `HttpOnly`, `Secure`, `SameSite=Lax` ([`SessionCookieConfig`]) |
//! | fixation | ids are only ever created by the server; [`Sessions::start`] issues a new id at every login and revokes the one the browser presented (OWASP ASVS 5.0 V7.2.4) |
//! | privilege change | [`Sessions::rotate`] replaces the id, keeping the session's absolute expiry |
//! | timeouts | absolute (default 12 h) and idle (default 30 min), the AAL2 figures of NIST SP 800-63B rev. 3 §4.2.3 (ASVS V7.3.1, V7.3.2) |
//! | logout | [`Sessions::end`] revokes the session on the server, on every instance, and clears the cookie (V7.4.1) |
//! | CSRF | unsafe methods authenticated by the cookie must pass [`CrossOrigin`] |

mod cookie;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

pub use cookie::{
    InvalidCookieName, SameSite, SessionCookieConfig, SetSessionCookie, session_cookie,
};

use crate::assurance::Factors;
use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::cache::{CacheKey, Cached, Domain, IdleTimeout, Resolved};
use crate::clock::{self, micros, to_micros};
use crate::csrf::CrossOrigin;
use crate::error::{AuthError, InvalidToken};
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::sign_in::Authenticated;
use crate::store::{
    FamilyId, NewToken, RevokeReason, Rotation, StoreError, TokenId, TokenKind, TokenRecord,
    TokenSelector, UserId,
};
use crate::token::{GeneratedToken, TokenDigest, TokenFormat, TokenSecret};

/// Starts, rotates, ends and resolves browser sessions. Cheap to clone.
///
/// ```
/// use portcullis::{Auth, session::Sessions, store::{MemoryStore, NewUser, UserStore}};
/// use portcullis::{assurance::Factor, sign_in::Authenticated, token::TokenFormat};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let sessions = Sessions::new(&auth, TokenFormat::new("pcs_")?);
/// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// // At login (see `portcullis::sign_in`): answer with `started.cookie` in the response.
/// let signed_in = Authenticated::new(ada.clone(), Factor::Password, auth.now());
/// let started = sessions.start(&signed_in, &http::HeaderMap::new()).await?;
/// let identity = sessions.resolve(started.secret.expose()).await?;
/// assert_eq!(identity.user_id(), Some(ada.id));
///
/// // At logout: the browser's next request carries the cookie it had.
/// let mut request = http::HeaderMap::new();
/// request.insert("cookie", format!("__Host-session={}", started.secret.expose()).parse()?);
/// let removal = sessions.end(&request).await?;
/// assert!(removal.header_value().to_str()?.contains("Max-Age=0"));
/// assert!(sessions.resolve(started.secret.expose()).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    auth: Auth,
    format: TokenFormat,
    cookie: SessionCookieConfig,
    lifetime: Duration,
    idle: Option<Duration>,
    cross_origin: CrossOrigin,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("prefix", &self.inner.format.prefix())
            .field("cookie", &self.inner.cookie)
            .field("lifetime", &self.inner.lifetime)
            .field("idle", &self.inner.idle)
            .field("cross_origin", &self.inner.cross_origin)
            .finish()
    }
}

/// A session just started or rotated: hand `cookie` to the browser.
#[derive(Debug)]
pub struct StartedSession {
    /// The session id (it is also inside `cookie`).
    pub secret: TokenSecret,
    /// What the store keeps.
    pub record: TokenRecord,
    /// The `Set-Cookie` header to send.
    pub cookie: SetSessionCookie,
}

impl Sessions {
    /// The absolute lifetime of a session unless [`lifetime`](Self::lifetime) says otherwise.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(12 * 3600);
    /// The idle timeout unless [`idle_timeout`](Self::idle_timeout) says otherwise.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

    /// Sessions whose ids are tokens of `format`, with the default cookie, timeouts and
    /// cross-origin check.
    pub fn new(auth: &Auth, format: TokenFormat) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                format,
                cookie: SessionCookieConfig::default(),
                lifetime: Self::DEFAULT_LIFETIME,
                idle: Some(Self::DEFAULT_IDLE_TIMEOUT),
                cross_origin: CrossOrigin::default(),
            }),
        }
    }

    /// How long a session lasts from login, however active it is (the absolute timeout).
    /// Rotation does not extend it.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        Arc::make_mut(&mut self.inner).lifetime = lifetime;
        self
    }

    /// How long a session may go unused before it ends (`None`: only the lifetime applies).
    ///
    /// Each instance notes uses to the second; across instances a use reaches the store
    /// through the `last_used_at` write-behind (see
    /// [`AuthBuilder::last_used`](crate::AuthBuilder::last_used)), so a session used only on
    /// another instance may end up to that granularity early. Keep the timeout well above it.
    #[must_use]
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.inner).idle = idle;
        self
    }

    /// Names and flags the cookie.
    #[must_use]
    pub fn cookie(mut self, cookie: SessionCookieConfig) -> Self {
        Arc::make_mut(&mut self.inner).cookie = cookie;
        self
    }

    /// The check that unsafe requests authenticated by the cookie must pass (default:
    /// same origin only).
    #[must_use]
    pub fn cross_origin(mut self, check: CrossOrigin) -> Self {
        Arc::make_mut(&mut self.inner).cross_origin = check;
        self
    }

    /// The cookie settings.
    pub fn cookie_config(&self) -> &SessionCookieConfig {
        &self.inner.cookie
    }

    /// The cross-origin check.
    pub fn cross_origin_check(&self) -> &CrossOrigin {
        &self.inner.cross_origin
    }

    /// The session id the request's cookie presents, if it presents exactly one.
    pub fn presented<'a>(&self, request: &'a HeaderMap) -> Option<&'a str> {
        self.inner.cookie.find(request)
    }

    /// Starts a session for a person who just signed in (see [`sign_in`](crate::sign_in)),
    /// recording when and with which factors they did. Any session the request
    /// already presents is revoked first, so no id chosen before the login can carry it
    /// (session fixation, OWASP ASVS 5.0 V7.2.4).
    ///
    /// Fails with `401` for an inactive user and `503` when the store or the random source
    /// fails.
    pub async fn start(
        &self,
        signed_in: &Authenticated,
        request: &HeaderMap,
    ) -> Result<StartedSession, AuthError> {
        let user = signed_in.user();
        if !user.is_active {
            return Err(AuthError::InactiveUser);
        }
        let auth = &self.inner.auth;
        if let Some(digest) = self.presented_digest(request) {
            let revoked = auth
                .tokens()
                .revoke_tokens(
                    TokenSelector::Digest {
                        kind: TokenKind::Session,
                        digest,
                    },
                    RevokeReason::Logout,
                    auth.now(),
                )
                .await?;
            if !revoked.is_empty() {
                auth.invalidate_key(session_key(digest)).await;
            }
        }
        let family = FamilyId::generate().map_err(StoreError::unavailable)?;
        let now = auth.now();
        let expires_at = clock::add(now, self.inner.lifetime);
        let started = self
            .insert(signed_in, family.clone(), now, expires_at)
            .await?;
        auth.audit(AuditKind::SessionStarted { family }, Some(user.id))
            .await;
        Ok(started)
    }

    /// Replaces the request's session id with a new one in the same session, after a
    /// privilege change (a role granted, a password or second factor confirmed; OWASP ASVS
    /// 5.0 V7.2.4). The absolute expiry stays. Requests still in flight with the old id are
    /// answered as anonymous.
    ///
    /// Fails with `401` when the request presents no live session.
    pub async fn rotate(&self, request: &HeaderMap) -> Result<StartedSession, AuthError> {
        let presented = self
            .presented(request)
            .ok_or(AuthError::MissingCredentials)?;
        // Live, within its idle timeout, and its owner active.
        self.resolve(presented).await?;
        let auth = &self.inner.auth;
        let digest = self.digest(presented)?;
        let record = auth
            .tokens()
            .token_by_digest(TokenKind::Session, &digest)
            .await?
            .ok_or(InvalidToken::Unknown)?;
        let (Some(family), Some(expires_at)) = (record.family.clone(), record.expires_at) else {
            return Err(StoreError::Corrupt("session without family or expiry".into()).into());
        };
        let generated = self
            .inner
            .format
            .generate()
            .map_err(StoreError::unavailable)?;
        let now = auth.now();
        // The sign-in the session started with stays its authentication time and factors.
        let replacement = session_token(
            &generated,
            record.user_id,
            family.clone(),
            (now, expires_at),
            (record.signed_in_at(), record.factors),
        );
        let Rotation::Rotated { replacement, .. } = auth
            .tokens()
            .rotate_token(TokenKind::Session, &digest, replacement, now)
            .await?
        else {
            return Err(InvalidToken::Revoked.into());
        };
        auth.invalidate_key(session_key(digest)).await;
        auth.audit(AuditKind::SessionRotated { family }, Some(record.user_id))
            .await;
        Ok(self.started(generated.into_secret(), *replacement, now))
    }

    /// Logs out: revokes the session the request presents, on every instance, and returns
    /// the `Set-Cookie` header that deletes the cookie. A request without a (live) session
    /// gets the removal header all the same, so logout never reveals whether a session
    /// existed.
    pub async fn end(&self, request: &HeaderMap) -> Result<SetSessionCookie, AuthError> {
        let removal = self.removal_cookie();
        let Some(digest) = self.presented_digest(request) else {
            return Ok(removal);
        };
        let auth = &self.inner.auth;
        let Some(record) = auth
            .tokens()
            .token_by_digest(TokenKind::Session, &digest)
            .await?
        else {
            return Ok(removal);
        };
        let Some(family) = record.family else {
            return Ok(removal);
        };
        let revoked = auth
            .tokens()
            .revoke_tokens(
                TokenSelector::Family(family.clone()),
                RevokeReason::Logout,
                auth.now(),
            )
            .await?;
        auth.invalidate_family(&family).await;
        if !revoked.is_empty() {
            auth.audit(
                AuditKind::LoggedOut {
                    revoked: revoked.len(),
                },
                Some(record.user_id),
            )
            .await;
        }
        Ok(removal)
    }

    /// Ends every session of `user` (e.g. "log out everywhere", an account suspension).
    /// Returns how many were live.
    pub async fn end_all(&self, user: UserId) -> Result<usize, StoreError> {
        let auth = &self.inner.auth;
        let selector = TokenSelector::User {
            user,
            kind: Some(TokenKind::Session),
        };
        let revoked = auth
            .tokens()
            .revoke_tokens(selector, RevokeReason::Logout, auth.now())
            .await?;
        auth.invalidate_user(user).await;
        auth.audit(
            AuditKind::LoggedOut {
                revoked: revoked.len(),
            },
            Some(user),
        )
        .await;
        Ok(revoked.len())
    }

    /// The live sessions of `user`, oldest first (for a "your devices" page).
    pub async fn list(&self, user: UserId) -> Result<Vec<TokenRecord>, StoreError> {
        let auth = &self.inner.auth;
        let now = auth.now();
        let mut sessions = auth
            .tokens()
            .tokens_of_user(user, TokenKind::Session)
            .await?;
        sessions.retain(|session| {
            session.is_active(now) && !self.idle_expired(auth.last_use(session), now)
        });
        Ok(sessions)
    }

    /// Ends session `id` if `owner` owns it ("log out that device"). Returns whether a live
    /// session was ended.
    pub async fn revoke(&self, owner: UserId, id: TokenId) -> Result<bool, StoreError> {
        let revoked = self
            .inner
            .auth
            .revoke_owned(owner, id, TokenKind::Session, Domain::Session)
            .await?;
        Ok(revoked.is_some())
    }

    /// The `Set-Cookie` header that deletes the session cookie.
    pub fn removal_cookie(&self) -> SetSessionCookie {
        self.inner.cookie.removal()
    }

    /// Resolves a session id from memory: a cache hit, or an id refused on sight (malformed,
    /// bad checksum). `None` when only [`resolve`](Self::resolve) can tell.
    pub fn resolve_now(&self, id: &str) -> Option<Result<Identity, AuthError>> {
        self.inner
            .auth
            .resolve_token_now(&self.inner.format, Domain::Session, id)
    }

    /// Resolves a session id to its identity: `401` when it is malformed, unknown, revoked,
    /// past its lifetime or idle timeout, or its owner is inactive.
    pub async fn resolve(&self, id: &str) -> Result<Identity, AuthError> {
        let digest = self.digest(id)?;
        self.inner
            .auth
            .resolve_loading(session_key(digest), |epoch| self.load(digest, epoch))
            .await
    }

    async fn load(&self, digest: TokenDigest, epoch: u64) -> Result<Cached, AuthError> {
        let auth = &self.inner.auth;
        let (record, user) = match auth
            .live_token_and_owner(TokenKind::Session, &digest, epoch)
            .await?
        {
            Ok(found) => found,
            Err(refused) => return Ok(Cached::Rejected(refused)),
        };
        let last_seen = auth.last_use(&record);
        if self.idle_expired(last_seen, auth.now()) {
            return Ok(Cached::Rejected(InvalidToken::Expired));
        }
        let last_seen = to_micros(last_seen);
        let identity = Identity::shared_user(
            user,
            AuthMethod::Session {
                session_id: record.id,
            },
            Scopes::Unrestricted,
        )
        .signed_in(record.signed_in_at(), record.factors);
        let mut resolved = Resolved::new(
            identity,
            record.family,
            Some(record.id),
            record.expires_at.map_or(i64::MAX, to_micros),
            last_seen,
            epoch,
        );
        if let Some(idle) = self.inner.idle {
            resolved = resolved.idle_timeout(IdleTimeout::new(micros(idle), last_seen));
        }
        Ok(Cached::Found(Arc::new(resolved)))
    }

    /// Whether a session last used at `last_seen` has been idle too long at `now`.
    fn idle_expired(&self, last_seen: time::OffsetDateTime, now: time::OffsetDateTime) -> bool {
        self.inner.idle.is_some_and(|idle| now - last_seen >= idle)
    }

    async fn insert(
        &self,
        signed_in: &Authenticated,
        family: FamilyId,
        now: time::OffsetDateTime,
        expires_at: time::OffsetDateTime,
    ) -> Result<StartedSession, AuthError> {
        let generated = self
            .inner
            .format
            .generate()
            .map_err(StoreError::unavailable)?;
        let record = self
            .inner
            .auth
            .tokens()
            .insert_token(session_token(
                &generated,
                signed_in.user().id,
                family,
                (now, expires_at),
                (signed_in.at(), signed_in.factors()),
            ))
            .await?;
        Ok(self.started(generated.into_secret(), record, now))
    }

    /// A stored session and the cookie that carries it until its absolute expiry.
    fn started(
        &self,
        secret: TokenSecret,
        record: TokenRecord,
        now: time::OffsetDateTime,
    ) -> StartedSession {
        let lifetime = record
            .expires_at
            .map_or(self.inner.lifetime, |expires_at| remaining(now, expires_at));
        StartedSession {
            cookie: self.inner.cookie.set(secret.expose(), lifetime),
            secret,
            record,
        }
    }

    /// Syntax and checksum first: a forged or mangled id never reaches the store.
    fn digest(&self, id: &str) -> Result<TokenDigest, AuthError> {
        Ok(self
            .inner
            .format
            .parse(id)
            .map_err(|error| AuthError::InvalidToken(error.into()))?
            .digest())
    }

    fn presented_digest(&self, request: &HeaderMap) -> Option<TokenDigest> {
        self.digest(self.presented(request)?).ok()
    }
}

/// The stored form of a session id: created `now`, ending at `expires_at`, for a sign-in at
/// `auth_time` with `factors`.
fn session_token(
    generated: &GeneratedToken,
    user: UserId,
    family: FamilyId,
    (now, expires_at): (time::OffsetDateTime, time::OffsetDateTime),
    (auth_time, factors): (time::OffsetDateTime, Factors),
) -> NewToken {
    NewToken::new(
        TokenKind::Session,
        generated.digest(),
        user,
        generated.hint(),
        now,
    )
    .family(family)
    .expires_at(expires_at)
    .auth_time(auth_time)
    .factors(factors)
}

fn session_key(digest: TokenDigest) -> CacheKey {
    CacheKey::new(Domain::Session, digest)
}

/// How long the cookie should live: until the session's absolute expiry.
fn remaining(now: time::OffsetDateTime, expires_at: time::OffsetDateTime) -> Duration {
    (expires_at - now).try_into().unwrap_or(Duration::ZERO)
}
