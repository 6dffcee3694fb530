//! [`RefreshTokens`]: opaque, hashed, rotated refresh tokens with reuse detection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::clock;
use crate::error::{AuthError, InvalidToken};
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
/// use portcullis::token::TokenFormat;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let refresh = RefreshTokens::new(&auth, TokenFormat::new("rt_")?, Duration::from_secs(30 * 86_400));
/// let ada = auth.store().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// let first = refresh.issue(&ada).await?;
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
    reuse_grace: Duration,
}

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens")
            .field("prefix", &self.inner.format.prefix())
            .field("ttl", &self.inner.ttl)
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
    /// Refresh tokens in `format` that live `ttl`, with no reuse grace period.
    pub fn new(auth: &Auth, format: TokenFormat, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                format,
                ttl,
                reuse_grace: Duration::ZERO,
            }),
        }
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

    /// Starts a new session for `user` and returns its first refresh token.
    pub async fn issue(&self, user: &User) -> Result<IssuedRefreshToken, IssueRefreshError> {
        let family = FamilyId::generate()?;
        let generated = self.inner.format.generate()?;
        let now = self.inner.auth.now();
        let expires_at = clock::add(now, self.inner.ttl);
        let record = self
            .inner
            .auth
            .store()
            .insert_token(NewToken {
                kind: TokenKind::Refresh,
                digest: generated.digest(),
                user_id: user.id,
                name: None,
                hint: generated.hint().to_owned(),
                family: Some(family.clone()),
                scopes: None,
                created_at: now,
                expires_at: Some(expires_at),
                max_active: None,
            })
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
            .store()
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
        let expires_at = clock::add(now, self.inner.ttl);
        let replacement = NewToken {
            kind: TokenKind::Refresh,
            digest: generated.digest(),
            user_id: record.user_id,
            name: None,
            hint: generated.hint().to_owned(),
            family: Some(family.clone()),
            scopes: record.scopes.clone(),
            created_at: now,
            expires_at: Some(expires_at),
            max_active: None,
        };
        match auth
            .store()
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
        let revoked = auth
            .store()
            .revoke_tokens(
                TokenSelector::Family(family.clone()),
                RevokeReason::Reuse,
                now,
            )
            .await;
        auth.invalidate_family(&family).await;
        auth.audit(
            AuditKind::RefreshTokenReused { family },
            Some(record.user_id),
        )
        .await;
        match revoked {
            Ok(_) => InvalidToken::Reused.into(),
            Err(error) => error.into(),
        }
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
            .store()
            .token_by_digest(TokenKind::Refresh, &digest)
            .await?
        else {
            return Ok(0);
        };
        let Some(family) = record.family.filter(|_| record.user_id == owner) else {
            return Ok(0);
        };
        let revoked = auth
            .store()
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
            .store()
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
