//! [`RefreshTokens`]: opaque, hashed, rotated refresh tokens with reuse detection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::clock;
use crate::error::{AuthError, InvalidToken};
use crate::sign_in::Authenticated;
use crate::store::{
    FamilyId, NewToken, RevokeReason, Rotation, StoreError, TokenKind, TokenRecord, TokenSelector,
    User, UserId,
};
use crate::token::{RandomnessUnavailable, TokenDigest, TokenFormat, TokenSecret};

/// Issues, rotates and revokes refresh tokens.
///
/// Each login starts a **family** (a session). Every refresh replaces the presented token with
/// a new one in the same family, atomically: of any number of concurrent refreshes of one
/// token exactly one succeeds. Presenting a token that was already rotated is **reuse**, the
/// sign of a stolen token (RFC 9700 §4.14.2): the whole family is revoked, its access tokens
/// stop working, and an audit event is emitted.
///
/// ```
/// use std::time::Duration;
/// use portcullis::{Auth, RefreshTokens, store::{MemoryStore, NewUser, UserStore}};
/// use portcullis::{assurance::Factor, sign_in::Authenticated, token::TokenFormat};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let refresh = RefreshTokens::new(&auth, TokenFormat::new("rt_")?, Duration::from_secs(30 * 86_400));
/// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// let first = refresh.issue(&Authenticated::new(ada, Factor::Password, auth.now())).await?;
/// let second = refresh.rotate(first.secret.expose()).await?;
/// assert_eq!(second.issued.family, first.family);
///
/// // The first token was rotated: presenting it again revokes the family.
/// assert!(refresh.rotate(first.secret.expose()).await.is_err());
/// assert!(refresh.rotate(second.issued.secret.expose()).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RefreshTokens {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    auth: Auth,
    format: TokenFormat,
    ttl: Duration,
    lifetime: Duration,
    reuse_grace: Duration,
    /// Families whose reuse was reported lately, so that a rotated token presented again and
    /// again is one audit event an hour, not one per request.
    reported: Arc<quick_cache::sync::Cache<FamilyId, i64>>,
}

/// The default [`RefreshTokens::absolute_lifetime`]: 90 days after the sign-in.
pub const DEFAULT_FAMILY_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// How often the reuse of one family is reported once it is dead.
const REPORT_REUSE_EVERY: Duration = Duration::from_secs(3600);

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens")
            .field("prefix", &self.inner.format.prefix())
            .field("ttl", &self.inner.ttl)
            .field("lifetime", &self.inner.lifetime)
            .field("reuse_grace", &self.inner.reuse_grace)
            .finish()
    }
}

/// A refresh token handed to a client.
#[derive(Debug)]
pub struct IssuedRefreshToken {
    /// The token (show it once).
    pub secret: TokenSecret,
    /// The session it belongs to; put it in access tokens as `sid`.
    pub family: FamilyId,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// What the store keeps.
    pub record: TokenRecord,
}

/// The result of a successful rotation.
#[derive(Debug)]
pub struct Refreshed {
    /// The replacement token.
    pub issued: IssuedRefreshToken,
    /// Its owner, freshly loaded (active).
    pub user: User,
}

/// Why a refresh token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueRefreshError {
    /// No randomness was available.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IssueRefreshError> for AuthError {
    fn from(error: IssueRefreshError) -> Self {
        match error {
            IssueRefreshError::Store(store) => store.into(),
            IssueRefreshError::Randomness(random) => {
                StoreError::Unavailable(Box::new(random)).into()
            }
        }
    }
}

impl RefreshTokens {
    /// Refresh tokens in `format` that live `ttl` each, in families that end 90 days after
    /// their sign-in ([`absolute_lifetime`](Self::absolute_lifetime)), with no reuse grace
    /// period.
    pub fn new(auth: &Auth, format: TokenFormat, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                format,
                ttl,
                lifetime: DEFAULT_FAMILY_LIFETIME,
                reuse_grace: Duration::ZERO,
                reported: Arc::new(quick_cache::sync::Cache::new(10_000)),
            }),
        }
    }

    /// Ends every family this long after its sign-in, however often it rotates (default 90
    /// days): a stolen refresh token cannot be kept alive forever, and users sign in again
    /// now and then (OWASP ASVS 5.0 V7.3.2's absolute session lifetime). Each token still
    /// lives at most its own `ttl`.
    #[must_use]
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        Arc::make_mut(&mut self.inner).lifetime = lifetime;
        self
    }

    /// Treats a rotated token presented again within `grace` of its rotation as a harmless
    /// retry (e.g. two browser tabs refreshing at once): it is refused, but its family is not
    /// revoked. The default, zero, follows RFC 9700 strictly.
    #[must_use]
    pub fn reuse_grace(mut self, grace: Duration) -> Self {
        Arc::make_mut(&mut self.inner).reuse_grace = grace;
        self
    }

    /// How long refresh tokens live.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Starts a new session (refresh family) for a person who just signed in (see
    /// [`sign_in`](crate::sign_in)), recording when and with which factors, and returns its
    /// first refresh token. The family's absolute lifetime counts from the sign-in.
    pub async fn issue(
        &self,
        signed_in: &Authenticated,
    ) -> Result<IssuedRefreshToken, IssueRefreshError> {
        let user = signed_in.user();
        let family = FamilyId::generate()?;
        let generated = self.inner.format.generate()?;
        let now = self.inner.auth.now();
        let family_ends = clock::add(signed_in.at(), self.inner.lifetime);
        let expires_at = clock::add(now, self.inner.ttl).min(family_ends);
        let record = self
            .inner
            .auth
            .tokens()
            .insert_token(
                NewToken::new(
                    TokenKind::Refresh,
                    generated.digest(),
                    user.id,
                    generated.hint(),
                    now,
                )
                .family(family.clone())
                .expires_at(expires_at)
                .auth_time(signed_in.at())
                .factors(signed_in.factors()),
            )
            .await?;
        Ok(IssuedRefreshToken {
            secret: generated.into_secret(),
            family,
            expires_at,
            record,
        })
    }

    /// Exchanges `presented` for a new token in the same family.
    ///
    /// Fails with `401` when the token is malformed, unknown, expired, revoked or reused
    /// (reuse revokes the family), or its owner is inactive.
    pub async fn rotate(&self, presented: &str) -> Result<Refreshed, AuthError> {
        let digest = self.parse(presented)?;
        let auth = &self.inner.auth;
        let record = auth
            .tokens()
            .token_by_digest(TokenKind::Refresh, &digest)
            .await?
            .ok_or(InvalidToken::Unknown)?;
        let now = auth.now();
        if record.revoked_at.is_some() {
            return Err(self.refuse_revoked(&record, now).await);
        }
        if record.is_expired(now) {
            return Err(InvalidToken::Expired.into());
        }
        let user = auth
            .load_user(record.user_id)
            .await?
            .ok_or(InvalidToken::Unknown)?;
        if !user.is_active {
            return Err(AuthError::InactiveUser);
        }

        let generated = self
            .inner
            .format
            .generate()
            .map_err(StoreError::unavailable)?;
        let family = record
            .family
            .clone()
            .ok_or_else(|| StoreError::Corrupt("refresh token without family".into()))?;
        let auth_time = record.signed_in_at();
        let family_ends = clock::add(auth_time, self.inner.lifetime);
        if family_ends <= now {
            return Err(InvalidToken::Expired.into());
        }
        let expires_at = clock::add(now, self.inner.ttl).min(family_ends);
        let mut replacement = NewToken::new(
            TokenKind::Refresh,
            generated.digest(),
            record.user_id,
            generated.hint(),
            now,
        )
        .family(family.clone())
        .expires_at(expires_at)
        .auth_time(auth_time)
        .factors(record.factors);
        replacement.scopes.clone_from(&record.scopes);
        match auth
            .tokens()
            .rotate_token(TokenKind::Refresh, &digest, replacement, now)
            .await?
        {
            Rotation::Rotated { replacement, .. } => {
                auth.audit(
                    AuditKind::TokenRefreshed {
                        family: family.clone(),
                    },
                    Some(user.id),
                )
                .await;
                Ok(Refreshed {
                    issued: IssuedRefreshToken {
                        secret: generated.into_secret(),
                        family,
                        expires_at,
                        record: *replacement,
                    },
                    user,
                })
            }
            // Lost a race with a concurrent rotation of the same token: refused, but not
            // treated as theft, since both requests were in flight at once.
            Rotation::Rejected(_) => Err(InvalidToken::Revoked.into()),
        }
    }

    async fn refuse_revoked(&self, record: &TokenRecord, now: OffsetDateTime) -> AuthError {
        let rotated_at = match (record.revoke_reason, record.revoked_at) {
            (Some(RevokeReason::Rotated), Some(at)) => at,
            _ => return InvalidToken::Revoked.into(),
        };
        if now - rotated_at < self.inner.reuse_grace {
            return InvalidToken::Revoked.into();
        }
        let Some(family) = record.family.clone() else {
            return InvalidToken::Reused.into();
        };
        let auth = &self.inner.auth;
        let revoked = match auth
            .tokens()
            .revoke_tokens(
                TokenSelector::Family(family.clone()),
                RevokeReason::Reuse,
                now,
            )
            .await
        {
            Ok(revoked) => revoked,
            Err(error) => return error.into(),
        };
        // A family already dead has nothing left to invalidate or broadcast; its reuse is
        // reported once an hour, so one old token cannot flood the log or the bus.
        let report = if revoked.is_empty() {
            self.first_report_in_a_while(&family)
        } else {
            auth.invalidate_family(&family).await;
            self.first_report_in_a_while(&family);
            true
        };
        if report {
            auth.audit(
                AuditKind::RefreshTokenReused { family },
                Some(record.user_id),
            )
            .await;
        }
        InvalidToken::Reused.into()
    }

    /// Whether `family`'s reuse has not been reported within the last hour (and notes that
    /// it is now).
    fn first_report_in_a_while(&self, family: &FamilyId) -> bool {
        let now = clock::to_micros(self.inner.auth.now());
        let every = clock::micros(REPORT_REUSE_EVERY);
        let reported = &self.inner.reported;
        if reported
            .get(family)
            .is_some_and(|last| now.saturating_sub(last) < every)
        {
            return false;
        }
        reported.insert(family.clone(), now);
        true
    }

    /// Ends the session `presented` belongs to, if `owner` owns it: every token of the family
    /// is revoked and its access tokens stop working. Returns how many tokens were revoked
    /// (zero for an unknown, foreign or already revoked token, which is not an error, so that
    /// logout never reveals whether a token exists).
    pub async fn revoke(&self, presented: &str, owner: UserId) -> Result<usize, AuthError> {
        let Ok(digest) = self.parse(presented) else {
            return Ok(0);
        };
        let auth = &self.inner.auth;
        let Some(record) = auth
            .tokens()
            .token_by_digest(TokenKind::Refresh, &digest)
            .await?
        else {
            return Ok(0);
        };
        let Some(family) = record.family.filter(|_| record.user_id == owner) else {
            return Ok(0);
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
        auth.audit(
            AuditKind::LoggedOut {
                revoked: revoked.len(),
            },
            Some(owner),
        )
        .await;
        Ok(revoked.len())
    }

    /// Ends every session of `user`. Returns how many tokens were revoked.
    pub async fn revoke_all(&self, user: UserId) -> Result<usize, StoreError> {
        let auth = &self.inner.auth;
        let selector = TokenSelector::User {
            user,
            kind: Some(TokenKind::Refresh),
        };
        let revoked = auth
            .tokens()
            .revoke_tokens(selector, RevokeReason::Logout, auth.now())
            .await?;
        // One entry for all of the user's sessions keeps the invalidation log short.
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

    fn parse(&self, presented: &str) -> Result<TokenDigest, InvalidToken> {
        Ok(self.inner.format.parse(presented)?.digest())
    }
}
