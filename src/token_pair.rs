//! [`TokenPairs`]: a sign-in completed with an access and a refresh token.

use crate::access_token::{AccessTokens, IssueError, IssuedAccessToken};
use crate::error::AuthError;
use crate::refresh_token::{IssuedRefreshToken, RefreshTokens};
use crate::sign_in::Authenticated;
use crate::store::{StoreError, User};

/// Completes sign-ins with bearer tokens: a refresh token starting a session, and an access
/// token in it carrying the sign-in's `auth_time` and `amr`. Refreshing keeps both.
///
/// ```
/// use std::time::Duration;
/// use portcullis::{AccessTokens, Auth, JwtConfig, RefreshTokens, TokenPairs};
/// use portcullis::{assurance::Factor, sign_in::Authenticated, store::{MemoryStore, NewUser}};
/// use portcullis::token::{TokenFormat, jwt::{JwtKey, JwtKeys}};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let keys = JwtKeys::new(JwtKey::hs256(b"a secret of at least thirty-two bytes")?)?;
/// let pairs = TokenPairs::new(
///     AccessTokens::new(&auth, keys, JwtConfig::new("issuer", "audience")),
///     RefreshTokens::new(&auth, TokenFormat::new("rt_")?, Duration::from_secs(86_400)),
/// );
/// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// let pair = pairs.issue(&Authenticated::new(ada, Factor::Password, auth.now())).await?;
/// let claims = pairs.access_tokens().verify(pair.access.token.expose())?;
/// assert_eq!(claims.amr, Some(vec!["pwd".to_owned()]));
///
/// let next = pairs.refresh(pair.refresh.secret.expose()).await?;
/// assert_eq!(next.refresh.family, pair.refresh.family);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct TokenPairs {
    access: AccessTokens,
    refresh: RefreshTokens,
}

/// An access token and the refresh token of its session.
#[derive(Debug)]
pub struct TokenPair {
    /// The access token.
    pub access: IssuedAccessToken,
    /// The refresh token.
    pub refresh: IssuedRefreshToken,
    /// Their owner.
    pub user: User,
}

impl TokenPairs {
    /// Pairs of `access` and `refresh` tokens.
    pub fn new(access: AccessTokens, refresh: RefreshTokens) -> Self {
        Self { access, refresh }
    }

    /// The access tokens.
    pub fn access_tokens(&self) -> &AccessTokens {
        &self.access
    }

    /// The refresh tokens.
    pub fn refresh_tokens(&self) -> &RefreshTokens {
        &self.refresh
    }

    /// Starts a session for a person who just signed in: `401` for an inactive user, `503`
    /// when the store, the random source or the signing key fails.
    pub async fn issue(&self, signed_in: &Authenticated) -> Result<TokenPair, AuthError> {
        if !signed_in.user().is_active {
            return Err(AuthError::InactiveUser);
        }
        let refresh = self.refresh.issue(signed_in).await?;
        self.pair(signed_in.user().clone(), refresh)
    }

    /// Rotates `presented` (see [`RefreshTokens::rotate`]) and signs an access token for the
    /// new refresh token.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, AuthError> {
        let refreshed = self.refresh.rotate(presented).await?;
        self.pair(refreshed.user, refreshed.issued)
    }

    fn pair(&self, user: User, refresh: IssuedRefreshToken) -> Result<TokenPair, AuthError> {
        let access = self
            .access
            .issue_for_session(&user, &refresh)
            .map_err(unavailable)?;
        Ok(TokenPair {
            access,
            refresh,
            user,
        })
    }
}

fn unavailable(error: IssueError) -> AuthError {
    tracing::error!(%error, "could not sign an access token");
    StoreError::unavailable(error).into()
}
