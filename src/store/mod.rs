//! Persistence: one trait per concern, and their implementations.
//!
//! | trait | keeps | used by |
//! |---|---|---|
//! | [`UserStore`] | user accounts | every credential, login, registration |
//! | [`TokenStore`] | API keys, refresh tokens, session ids (digests only) | [`ApiKeys`](crate::ApiKeys), [`RefreshTokens`](crate::RefreshTokens), [`Sessions`](crate::session::Sessions) |
//! | [`SecretStore`] | one-time secrets: codes, links, invites, challenges | sign-in and account flows |
//! | [`CounterStore`] | windowed counters | daily quotas |
//! | [`EventStore`] | the audit log | [`StoredEvents`](crate::audit::StoredEvents) |
//!
//! They are the seam a third party implements to put portcullis on another database; the
//! methods are small and each states the atomicity it must provide. A type implementing all
//! five is a [`Store`]; [`Stores`] holds one of each, so that a concern can live elsewhere —
//! sessions and secrets in Redis ([`RedisSessions`], feature `redis`), the rest in PostgreSQL.
//!
//! Every implementation here passes the same conformance tests, which the feature
//! `conformance` makes public for third-party stores.
//!
//! | store | feature |
//! |---|---|
//! | [`MemoryStore`] | always |
//! | `SqliteStore` | `sqlite` |
//! | `PostgresStore` | `postgres` |
//! | `RedisSessions` (sessions in Redis, the rest in another store) | `redis` |

mod counters;
mod error;
mod events;
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
#[cfg(feature = "redis")]
mod redis_sessions;
mod secrets;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tokens;
mod users;
pub mod validate;

use std::fmt;
use std::sync::Arc;

pub use counters::CounterStore;
pub use error::StoreError;
pub use events::EventStore;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use records::{
    Consumption, ExternalIdentity, FamilyId, NewToken, NewUser, RevokeReason, Rotation,
    SUPERUSER_ROLE, TokenId, TokenKind, TokenRecord, TokenSelector, TokenUse, UnknownName, User,
    UserId, UserUpdate,
};
#[cfg(feature = "redis")]
pub use redis_sessions::RedisSessions;
pub use secrets::{
    Guess, MAX_SECRET_KIND_LEN, MAX_SECRET_PAYLOAD, NewSecret, PayloadTooLarge, SecretId,
    SecretKind, SecretRecord, SecretStore, SecretSubject,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use tokens::TokenStore;
pub use users::UserStore;

/// A store that keeps every concern: users, tokens, one-time secrets, counters and events.
/// Implemented for every type that implements the five traits.
pub trait Store: UserStore + TokenStore + SecretStore + CounterStore + EventStore {}

impl<S> Store for S where
    S: UserStore + TokenStore + SecretStore + CounterStore + EventStore + ?Sized
{
}

/// One store per concern, for [`Auth`](crate::Auth) and the conformance tests.
///
/// Usually every field is the same [`Store`]; replace one to keep that concern elsewhere:
///
/// ```no_run
/// # #[cfg(feature = "redis")] {
/// use std::sync::Arc;
/// use portcullis::store::{MemoryStore, RedisSessions, Stores};
///
/// // Clones of a `MemoryStore` (or a `PostgresStore`) share their data.
/// let store = MemoryStore::new();
/// let redis = Arc::new(RedisSessions::new(store.clone(), "redis://127.0.0.1:6379")?);
/// let mut stores = Stores::new(store);
/// stores.tokens = redis.clone();
/// stores.secrets = redis;
/// # }
/// # Ok::<(), portcullis::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Stores {
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Opaque tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// One-time secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// Quota counters.
    pub counters: Arc<dyn CounterStore>,
    /// The audit log.
    pub events: Arc<dyn EventStore>,
}

impl Stores {
    /// Every concern in `store`.
    pub fn new(store: impl Store) -> Self {
        Self::shared(Arc::new(store))
    }

    /// Every concern in `store`, which the application also uses directly.
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Self {
            users: store.clone(),
            tokens: store.clone(),
            secrets: store.clone(),
            counters: store.clone(),
            events: store,
        }
    }
}

impl<S: Store> From<S> for Stores {
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl From<Arc<dyn Store>> for Stores {
    fn from(store: Arc<dyn Store>) -> Self {
        Self::shared(store)
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}
