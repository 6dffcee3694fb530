//! [`ApiKeys`]: long-lived opaque keys for programmatic access.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::cache::{CacheKey, Cached, Domain, Resolved};
use crate::clock::{self, to_micros};
use crate::error::AuthError;
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::source::TokenResolver;
use crate::store::{
    NewToken, RevokeReason, StoreError, TokenId, TokenKind, TokenRecord, TokenSelector, User,
    UserId,
};
use crate::token::{RandomnessUnavailable, TokenDigest, TokenFormat, TokenSecret};
use async_trait::async_trait;

/// Creates, lists, revokes and resolves API keys.
///
/// Keys are opaque tokens of a [`TokenFormat`] (e.g. `smtk_…`), shown once at creation and
/// stored only as their SHA-256 digest. Resolving one costs a hash and a cache lookup; the
/// store is asked once per key per cache TTL, and its `last_used_at` is written behind.
///
/// ```
/// use portcullis::{ApiKeys, Auth, NewApiKey, source::TokenResolver, store::{MemoryStore, NewUser, UserStore}};
/// use portcullis::token::TokenFormat;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_")?).max_active_per_user(20);
/// let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
///
/// let created = api_keys.create(&ada, NewApiKey::named("laptop")).await?;
/// let identity = api_keys.resolve(created.secret.expose()).await?;
/// assert_eq!(identity.user_id(), Some(ada.id));
///
/// api_keys.revoke(ada.id, created.record.id).await?;
/// assert!(api_keys.resolve(created.secret.expose()).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ApiKeys {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    auth: Auth,
    format: TokenFormat,
    default_ttl: Option<Duration>,
    max_active: Option<u32>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("prefix", &self.inner.format.prefix())
            .field("default_ttl", &self.inner.default_ttl)
            .field("max_active", &self.inner.max_active)
            .finish()
    }
}

/// The longest API key name accepted, in characters.
pub const MAX_KEY_NAME_LEN: usize = 100;

/// A key to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewApiKey {
    /// A label for the owner's listing (1 to 100 printable characters).
    pub name: String,
    /// How long the key lives: `None` takes the configured default.
    pub expires_in: Option<Duration>,
    /// Limit the key to these scopes; `None` gives it all of its owner's rights.
    pub scopes: Option<Vec<String>>,
}

impl NewApiKey {
    /// A key with this name, the default lifetime and its owner's full rights.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A newly created key: the secret (show it once) and its stored record.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key itself.
    pub secret: TokenSecret,
    /// What the store keeps.
    pub record: TokenRecord,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The owner already has the maximum number of active keys.
    #[error("at most {limit} active API keys are allowed")]
    LimitReached {
        /// The limit.
        limit: u32,
    },
    /// The name is empty, longer than [`MAX_KEY_NAME_LEN`] characters, or holds a control
    /// character.
    #[error("the key name must be 1 to {MAX_KEY_NAME_LEN} printable characters")]
    InvalidName,
    /// The owner's account is inactive.
    #[error("the owner's account is inactive")]
    InactiveOwner,
    /// No randomness was available.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl ApiKeys {
    /// API keys in `format`, with no default expiry and no per-user limit.
    pub fn new(auth: &Auth, format: TokenFormat) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                format,
                default_ttl: None,
                max_active: None,
            }),
        }
    }

    /// Keys created without an explicit lifetime expire after `ttl` (`None`: never).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.inner).default_ttl = ttl;
        self
    }

    /// Refuses to create more than `limit` active keys per user (checked atomically).
    #[must_use]
    pub fn max_active_per_user(mut self, limit: u32) -> Self {
        Arc::make_mut(&mut self.inner).max_active = Some(limit);
        self
    }

    /// The key format.
    pub fn format(&self) -> &TokenFormat {
        &self.inner.format
    }

    /// Creates a key for `owner`.
    pub async fn create(&self, owner: &User, key: NewApiKey) -> Result<CreatedApiKey, ApiKeyError> {
        let name = key.name.trim();
        let name_len = name.chars().count();
        // A control character (a NUL above all, which no store keeps) is never part of a
        // name a person gave, and would otherwise reach the store as a failure.
        if name_len == 0 || name_len > MAX_KEY_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ApiKeyError::InvalidName);
        }
        if !owner.is_active {
            return Err(ApiKeyError::InactiveOwner);
        }
        let auth = &self.inner.auth;
        let generated = self.inner.format.generate()?;
        let now = auth.now();
        let ttl = key.expires_in.or(self.inner.default_ttl);
        let record = auth
            .tokens()
            .insert_token(NewToken {
                name: Some(name.to_owned()),
                scopes: key.scopes,
                expires_at: ttl.map(|ttl| clock::add(now, ttl)),
                max_active: self.inner.max_active,
                ..NewToken::new(
                    TokenKind::ApiKey,
                    generated.digest(),
                    owner.id,
                    generated.hint(),
                    now,
                )
            })
            .await
            .map_err(|error| match error {
                StoreError::LimitReached { limit } => ApiKeyError::LimitReached { limit },
                other => ApiKeyError::Store(other),
            })?;
        auth.audit(
            AuditKind::ApiKeyCreated { key_id: record.id },
            Some(owner.id),
        )
        .await;
        Ok(CreatedApiKey {
            secret: generated.into_secret(),
            record,
        })
    }

    /// Every key `owner` created, revoked and expired ones included, oldest first.
    pub async fn list(&self, owner: UserId) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner
            .auth
            .tokens()
            .tokens_of_user(owner, TokenKind::ApiKey)
            .await
    }

    /// Revokes key `id` if `owner` owns it and it is not revoked yet; the row stays, marked
    /// revoked. Returns whether a key was revoked. Every instance sharing this [`Auth`] stops
    /// accepting the key at once.
    pub async fn revoke(&self, owner: UserId, id: TokenId) -> Result<bool, StoreError> {
        let auth = &self.inner.auth;
        let revoked = auth
            .revoke_owned(owner, id, TokenKind::ApiKey, Domain::ApiKey)
            .await?;
        if let Some(record) = &revoked {
            auth.audit(AuditKind::ApiKeyRevoked { key_id: record.id }, Some(owner))
                .await;
        }
        Ok(revoked.is_some())
    }

    /// Revokes every live key of `owner` ("end every credential", an account compromise);
    /// returns how many. Every instance sharing this [`Auth`] stops accepting them at once.
    pub async fn revoke_all(&self, owner: UserId) -> Result<usize, StoreError> {
        let auth = &self.inner.auth;
        let selector = TokenSelector::User {
            user: owner,
            kind: Some(TokenKind::ApiKey),
        };
        let revoked = auth
            .tokens()
            .revoke_tokens(selector, RevokeReason::Revoked, auth.now())
            .await?;
        if !revoked.is_empty() {
            auth.invalidate_user(owner).await;
        }
        for record in &revoked {
            auth.audit(AuditKind::ApiKeyRevoked { key_id: record.id }, Some(owner))
                .await;
        }
        Ok(revoked.len())
    }

    async fn load(&self, digest: TokenDigest, epoch: u64) -> Result<Cached, AuthError> {
        let auth = &self.inner.auth;
        let (record, user) = match auth
            .live_token_and_owner(TokenKind::ApiKey, &digest, epoch)
            .await?
        {
            Ok(found) => found,
            Err(refused) => return Ok(Cached::Rejected(refused)),
        };
        let scopes = Scopes::from_stored(record.scopes.as_deref());
        let identity =
            Identity::shared_user(user, AuthMethod::ApiKey { key_id: record.id }, scopes);
        Ok(Cached::Found(Arc::new(Resolved::new(
            identity,
            None,
            Some(record.id),
            record.expires_at.map_or(i64::MAX, to_micros),
            record.last_used_at.map_or(0, to_micros),
            epoch,
        ))))
    }
}

impl ApiKeys {
    /// Syntax and checksum first: a mistyped or forged key never reaches the store.
    fn cache_key(&self, token: &str) -> Result<(CacheKey, TokenDigest), AuthError> {
        let digest = self
            .inner
            .format
            .parse(token)
            .map_err(|error| AuthError::InvalidToken(error.into()))?
            .digest();
        Ok((CacheKey::new(Domain::ApiKey, digest), digest))
    }
}

#[async_trait]
impl TokenResolver for ApiKeys {
    fn recognizes(&self, token: &str) -> bool {
        self.inner.format.recognizes(token)
    }

    fn resolve_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        self.inner
            .auth
            .resolve_token_now(&self.inner.format, Domain::ApiKey, token)
    }

    async fn resolve(&self, token: &str) -> Result<Identity, AuthError> {
        let (key, digest) = self.cache_key(token)?;
        self.inner
            .auth
            .resolve_loading(key, |epoch| self.load(digest, epoch))
            .await
    }
}
