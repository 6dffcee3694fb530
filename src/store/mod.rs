//! Persistence: the [`UserStore`] trait and its implementations.
//!
//! A store keeps users and the single opaque-token table ([`UserStore`]), and one-time secrets
//! ([`SecretStore`]). They are the seam a third party implements to put portcullis on another
//! database; the methods are small and each states the atomicity it must provide. Every implementation runs the same conformance
//! tests (`tests/store_conformance.rs`).
//!
//! | store | feature |
//! |---|---|
//! | [`MemoryStore`] | always |
//! | `SqliteStore` | `sqlite` |
//! | `PostgresStore` | `postgres` |
//! | `RedisSessions` (sessions in Redis, the rest in another store) | `redis` |

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
#[cfg(feature = "redis")]
mod redis_sessions;
mod secrets;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod validate;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use records::{
    Consumption, FamilyId, NewToken, NewUser, RevokeReason, Rotation, SUPERUSER_ROLE, TokenId,
    TokenKind, TokenRecord, TokenSelector, TokenUse, UnknownName, User, UserId, UserUpdate,
};
#[cfg(feature = "redis")]
pub use redis_sessions::RedisSessions;
pub use secrets::{
    Guess, MAX_SECRET_KIND_LEN, MAX_SECRET_PAYLOAD, NewSecret, PayloadTooLarge, SecretId,
    SecretKind, SecretRecord, SecretStore, SecretSubject,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::audit::AuditEvent;
use crate::token::TokenDigest;

/// Users and opaque tokens.
///
/// Usernames and emails are unique and compared ignoring ASCII case. Text containing U+0000 is
/// refused with [`StoreError::InvalidInput`] when written (see [`validate`]), and a lookup by
/// such text finds nothing (`Ok(None)`, never an error: it comes from clients). Timestamps are passed in
/// by the caller (from its [`Clock`](crate::clock::Clock)) so that a store never reads the time
/// itself, and are kept to microsecond precision.
///
/// Implementations must be safe to call concurrently from many tasks; the methods that say
/// *atomically* must hold under concurrent calls from several processes sharing the store.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user. The store decides atomically whether this is the first user and then
    /// grants [`NewUser::first_user_roles`].
    ///
    /// Fails with [`StoreError::Conflict`] naming `"username"` or `"email"` when taken.
    async fn create_user(&self, user: NewUser, now: OffsetDateTime) -> Result<User, StoreError>;

    /// How many users exist, deactivated ones included (for a start-up check that the
    /// instance has an owner, say).
    async fn count_users(&self) -> Result<u64, StoreError>;

    /// Looks a user up by id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Looks a user up by username, ignoring ASCII case.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Looks a user up by email, ignoring ASCII case.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Applies `update` and returns the updated user, or `None` if there is no such user.
    /// Fails with [`StoreError::Conflict`] when a new email is taken.
    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Stores a token. Fails with [`StoreError::Conflict`] when a token of the same kind has
    /// the same digest, and with [`StoreError::LimitReached`] when [`NewToken::max_active`]
    /// would be exceeded (checked atomically with the insert).
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError>;

    /// Finds a token by kind and digest, whatever its state.
    async fn token_by_digest(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token of `kind` owned by `user`, revoked and expired ones included, oldest first.
    async fn tokens_of_user(
        &self,
        user: UserId,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Atomically: if the token (`kind`, `presented`) is active at `now`, revoke it as
    /// [`RevokeReason::Rotated`] and store `replacement`; otherwise change nothing.
    ///
    /// Of any number of concurrent rotations of one token, exactly one succeeds.
    async fn rotate_token(
        &self,
        kind: TokenKind,
        presented: &TokenDigest,
        replacement: NewToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError>;

    /// Revokes the selected tokens that are not revoked yet and returns them as revoked, oldest
    /// first.
    async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Whether `family` still has an active token at `now`: a session lives as long as one of
    /// its refresh tokens (or session ids) does.
    async fn family_is_active(
        &self,
        family: &FamilyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes every token that expired, or was revoked, before `before`, and returns how
    /// many were deleted. Tokens without an expiry that were never revoked are kept.
    ///
    /// Reuse detection needs a rotated refresh token for as long as it could otherwise have
    /// been used: pass a cutoff at least one refresh-token lifetime in the past (see
    /// [`Auth::purge_tokens`](crate::Auth::purge_tokens)).
    ///
    /// The default answers [`StoreError::Unsupported`], so that a store written before this
    /// method existed keeps compiling and says so when asked, rather than pretending to purge.
    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let _ = before;
        Err(StoreError::Unsupported("purge_tokens"))
    }

    /// Records token uses; a token's `last_used_at` only ever moves forward.
    async fn record_token_use(&self, uses: &[TokenUse]) -> Result<(), StoreError>;

    /// Atomically adds `amount` to the counter `key` in the window that starts at `window`
    /// unless that would take it past `limit`, for quotas that must survive restarts (e.g. a
    /// daily message allowance). Each key keeps only its newest window: a newer `window`
    /// starts again from zero, and an older one (a clock running behind) counts in the newer.
    /// Counters saturate at `i64::MAX`.
    async fn consume(
        &self,
        key: &str,
        window: OffsetDateTime,
        amount: u64,
        limit: u64,
    ) -> Result<Consumption, StoreError>;

    /// The counter `key` in the window that starts at `window` (zero if it has none yet).
    async fn counter(&self, key: &str, window: OffsetDateTime) -> Result<u64, StoreError>;

    /// Appends an audit event (see [`StoredEvents`](crate::audit::StoredEvents)).
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// The most recent `limit` audit events, newest first; only `user`'s when given.
    async fn events(&self, user: Option<UserId>, limit: u32)
    -> Result<Vec<AuditEvent>, StoreError>;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique field is taken; the string names it (`"username"`, `"email"`, `"digest"`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The insert would exceed a per-user limit.
    #[error("limit of {limit} active tokens reached")]
    LimitReached {
        /// The limit that applied.
        limit: u32,
    },
    /// A value the store refuses to keep (see [`validate`]); the string names the field.
    #[error("invalid {0}")]
    InvalidInput(&'static str),
    /// The store does not implement this operation; the string names it.
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// The store could not be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be understood (e.g. written by a newer version).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}
