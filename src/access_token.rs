//! [`AccessTokens`]: short-lived JWT access tokens, issued and verified.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Header;
use time::OffsetDateTime;

use crate::assurance::Factors;
use crate::auth::Auth;
use crate::cache::{CacheKey, Cached, Domain, Resolved};
use crate::clock::{self, to_micros};
use crate::error::{AuthError, InvalidToken};
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::source::TokenResolver;
use crate::store::{FamilyId, User, UserId};
use crate::token::jwt::{
    AccessClaims, Audience, DEFAULT_MAX_TOKEN_LEN, JwtKeys, KeyError, looks_like_jwt,
};
use crate::token::{TokenDigest, TokenSecret};

/// The header `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
const TOKEN_USE: &str = "access";

/// What access tokens say and how strictly they are checked.
///
/// ```
/// use std::time::Duration;
/// use portcullis::JwtConfig;
///
/// let config = JwtConfig::new("semantik", "semantik-api").ttl(Duration::from_secs(24 * 3600));
/// assert_eq!(config.token_ttl(), Duration::from_secs(86_400));
/// ```
#[derive(Clone, Debug)]
pub struct JwtConfig {
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: Duration,
    max_len: usize,
}

impl JwtConfig {
    /// Tokens issued by `issuer` for `audience`, valid 15 minutes, 30 s clock leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(30),
            max_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// How long issued tokens live.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Tolerated clock difference for `exp`, `nbf` and `iat` (keep it small, RFC 8725 §3.10
    /// leaves it to the verifier; default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest token accepted, in bytes (default 8 KiB); longer ones are rejected unparsed.
    #[must_use]
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// The configured lifetime.
    pub fn token_ttl(&self) -> Duration {
        self.ttl
    }
}

/// Issues and verifies JWT access tokens, and resolves them for [`Bearer`](crate::source::Bearer)
/// and [`QueryToken`](crate::source::QueryToken).
///
/// A token carries `sub` (the user id), `sid` (the session, so that logout ends it early),
/// `jti`, `iat`, `exp`, `iss`, `aud`, `token_use: access` and header `typ: at+jwt`. Resolving a
/// token checks all of them and the owner's account, then caches the result keyed by the
/// token's SHA-256 until the token expires or the cache TTL passes: a repeated token costs a
/// hash and a lookup, not a signature check.
///
/// ```
/// use portcullis::{AccessTokens, Auth, JwtConfig, source::TokenResolver};
/// use portcullis::store::{MemoryStore, NewUser, UserStore};
/// use portcullis::token::jwt::{JwtKey, JwtKeys};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let keys = JwtKeys::new(JwtKey::hs256(b"a secret of at least thirty-two bytes")?)?;
/// let tokens = AccessTokens::new(&auth, keys, JwtConfig::new("my-app", "my-api"));
/// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// let issued = tokens.issue(&ada, None)?;
/// let identity = tokens.resolve(issued.token.expose()).await?;
/// assert_eq!(identity.user_id(), Some(ada.id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct AccessTokens {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Auth,
    keys: JwtKeys,
    config: JwtConfig,
    /// Names this verifier in its cache keys. Every `AccessTokens` of an `Auth` shares its
    /// cache; a token one of them verified must not pass another (other keys, issuer or
    /// audience) on the strength of that.
    verifier: u64,
}

/// Gives every `AccessTokens` of the process its own cache tag.
static NEXT_VERIFIER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokens")
            .field("keys", &self.inner.keys)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedAccessToken {
    /// The compact JWT.
    pub token: TokenSecret,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Its `jti`.
    pub jti: String,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The key set cannot sign.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// No randomness was available.
    #[error(transparent)]
    Randomness(#[from] crate::token::RandomnessUnavailable),
}

impl AccessTokens {
    /// Access tokens signed and verified with `keys`.
    ///
    /// Each `AccessTokens` keeps its own verified tokens in the shared cache: a new one (with a
    /// rotated key set, say) never accepts what an earlier one verified, so a key removed from
    /// the set stops working at once, and a verifier for another issuer, audience or partner's
    /// keys checks every token itself.
    pub fn new(auth: &Auth, keys: JwtKeys, config: JwtConfig) -> Self {
        let verifier = NEXT_VERIFIER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                keys,
                config,
                verifier,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }

    /// Issues an unrestricted token for `user` in session `session`.
    pub fn issue(
        &self,
        user: &User,
        session: Option<&FamilyId>,
    ) -> Result<IssuedAccessToken, IssueError> {
        self.issue_with_scopes(user, session, None)
    }

    /// Issues an unrestricted token for `user` in the session of `refresh`: its `sid` is the
    /// refresh family, its `auth_time` the family's sign-in and its `amr` that sign-in's
    /// factors, so that
    /// [`Auth::require_recent_sign_in`](crate::Auth::require_recent_sign_in) can tell a fresh sign-in from a long-refreshed one.
    pub fn issue_for_session(
        &self,
        user: &User,
        refresh: &crate::IssuedRefreshToken,
    ) -> Result<IssuedAccessToken, IssueError> {
        let record = &refresh.record;
        let sign_in = (record.signed_in_at(), record.factors);
        self.sign(user, Some(&refresh.family), None, Some(sign_in))
    }

    /// Issues a token limited to `scopes` (`None`: unrestricted).
    pub fn issue_with_scopes(
        &self,
        user: &User,
        session: Option<&FamilyId>,
        scopes: Option<&[String]>,
    ) -> Result<IssuedAccessToken, IssueError> {
        self.sign(user, session, scopes, None)
    }

    fn sign(
        &self,
        user: &User,
        session: Option<&FamilyId>,
        scopes: Option<&[String]>,
        sign_in: Option<(OffsetDateTime, Factors)>,
    ) -> Result<IssuedAccessToken, IssueError> {
        let key = self.inner.keys.signing_key()?;
        let encoding = key.encoding().ok_or(KeyError::NoSigningKey)?;
        let config = &self.inner.config;
        let now = self.inner.auth.now();
        let expires_at = clock::add(now, config.ttl);
        // The claim has whole seconds; report exactly what the token says.
        let expires_at =
            OffsetDateTime::from_unix_timestamp(expires_at.unix_timestamp()).unwrap_or(expires_at);
        let jti = FamilyId::generate()?.as_str().to_owned();
        let claims = AccessClaims {
            iss: config.issuer.clone(),
            sub: user.id.to_string(),
            aud: Audience::One(config.audience.clone()),
            exp: expires_at.unix_timestamp(),
            nbf: None,
            iat: now.unix_timestamp(),
            jti: jti.clone(),
            sid: session.map(|sid| sid.as_str().to_owned()),
            token_use: TOKEN_USE.to_owned(),
            scope: scopes.map(|scopes| scopes.join(" ")),
            auth_time: sign_in.map(|(at, _)| at.unix_timestamp()),
            amr: sign_in.map(|(_, factors)| factors.amr().into_iter().map(str::to_owned).collect()),
        };
        let mut header = Header::new(key.algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = key.key_id().map(str::to_owned);
        let token = jsonwebtoken::encode(&header, &claims, encoding)
            .map_err(|error| IssueError::Signing(error.to_string()))?;
        Ok(IssuedAccessToken {
            token: TokenSecret::new(token),
            expires_at,
            jti,
        })
    }

    /// Verifies signature and claims, without consulting the store or the cache.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        let config = &self.inner.config;
        let jws = self.inner.keys.verify_jws(token, config.max_len)?;
        let typ_ok = jws.header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(InvalidToken::WrongType);
        }
        let claims = AccessClaims::from_payload(&jws.payload)?;
        if claims.token_use != TOKEN_USE {
            return Err(InvalidToken::WrongType);
        }
        if claims.iss != config.issuer {
            return Err(InvalidToken::WrongIssuer);
        }
        if !claims.aud.contains(&config.audience) {
            return Err(InvalidToken::WrongAudience);
        }
        let now = self.inner.auth.now().unix_timestamp();
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        if now >= claims.exp.saturating_add(leeway) {
            return Err(InvalidToken::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(InvalidToken::NotYetValid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(InvalidToken::IssuedInFuture);
        }
        Ok(claims)
    }

    async fn load(&self, token: &str, epoch: u64) -> Result<Cached, AuthError> {
        let claims = self.verify(token)?;
        let user_id = subject(&claims)?;
        let auth = &self.inner.auth;
        let Some(owner) = auth.credential_owner(user_id, epoch).await? else {
            return Ok(Cached::Rejected(InvalidToken::Unknown));
        };
        let sid = claims.sid.clone().map(FamilyId::new);
        if let Some(sid) = &sid
            && !auth.tokens().family_is_active(sid, auth.now()).await?
        {
            // A session never comes back, so the rejection can be cached.
            return Ok(Cached::Rejected(InvalidToken::Revoked));
        }
        Ok(self.resolved(claims, owner, sid, epoch))
    }

    /// A token seen for the first time, resolved without waiting when nothing but its
    /// signature and claims needs checking: its owner is cached (the record the user's other
    /// credentials share) and it names no session, whose liveness only the store knows.
    /// `None` sends it to [`load`](Self::load).
    fn first_seen_now(&self, token: &str, key: CacheKey) -> Option<Result<Identity, AuthError>> {
        let auth = &self.inner.auth;
        if !auth.cache().keeps_owners() {
            // No owner can be cached: verifying here would only be done again by `load`.
            return None;
        }
        // Before the owner is read, as a loader records it, so that an invalidation racing
        // this resolution still reaches the entry it makes.
        let epoch = auth.cache().epoch();
        let claims = match self.verify(token) {
            Ok(claims) => claims,
            Err(refused) => return Some(Err(refused.into())),
        };
        if claims.sid.is_some() {
            return None;
        }
        let user_id = match subject(&claims) {
            Ok(user_id) => user_id,
            Err(refused) => return Some(Err(refused)),
        };
        let owner = auth.cached_owner(user_id)?;
        auth.remember_now(key, self.resolved(claims, owner, None, epoch))
    }

    /// The cache entry of a verified token of `owner`.
    fn resolved(
        &self,
        claims: AccessClaims,
        owner: Arc<User>,
        sid: Option<FamilyId>,
        epoch: u64,
    ) -> Cached {
        let auth = &self.inner.auth;
        let leeway = i64::try_from(self.inner.config.leeway.as_secs()).unwrap_or(i64::MAX);
        let valid_until = claims.exp.saturating_add(leeway).saturating_mul(1_000_000);
        let scopes = match claims.scopes() {
            Some(scopes) => Scopes::only(scopes),
            None => Scopes::Unrestricted,
        };
        let method = AuthMethod::Jwt {
            jti: Some(claims.jti),
            sid: sid.clone(),
        };
        let mut identity = Identity::shared_user(owner, method, scopes);
        if let Some(at) = claims
            .auth_time
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
        {
            let factors = claims
                .amr
                .as_deref()
                .map_or(Factors::NONE, Factors::from_amr);
            identity = identity.signed_in(at, factors);
        }
        Cached::Found(Arc::new(Resolved::new(
            identity,
            sid,
            None,
            valid_until,
            to_micros(auth.now()),
            epoch,
        )))
    }
}

/// The user a token's `sub` claim names.
fn subject(claims: &AccessClaims) -> Result<UserId, AuthError> {
    claims
        .sub
        .parse()
        .map_err(|_| InvalidToken::BadClaim("sub").into())
}

impl AccessTokens {
    fn cache_key(&self, token: &str) -> Result<CacheKey, AuthError> {
        // Refused before hashing: an oversized token costs nothing.
        if token.len() > self.inner.config.max_len {
            return Err(InvalidToken::TooLarge.into());
        }
        let digest = TokenDigest::of(token).tagged(self.inner.verifier);
        Ok(CacheKey::new(Domain::AccessToken, digest))
    }
}

#[async_trait]
impl TokenResolver for AccessTokens {
    fn recognizes(&self, token: &str) -> bool {
        looks_like_jwt(token)
    }

    fn resolve_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        let key = match self.cache_key(token) {
            Ok(key) => key,
            Err(refused) => return Some(Err(refused)),
        };
        self.inner
            .auth
            .resolve_cached(&key)
            .or_else(|| self.first_seen_now(token, key))
    }

    async fn resolve(&self, token: &str) -> Result<Identity, AuthError> {
        let key = self.cache_key(token)?;
        self.inner
            .auth
            .resolve_loading(key, |epoch| self.load(token, epoch))
            .await
    }
}
