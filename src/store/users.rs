//! The [`UserStore`] trait: user accounts.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{NewUser, StoreError, User, UserId, UserUpdate};

/// User accounts.
///
/// Usernames and emails are unique and compared ignoring ASCII case. Text containing U+0000 is
/// refused with [`StoreError::InvalidInput`] when written (see [`validate`](super::validate)),
/// and a lookup by such text finds nothing (`Ok(None)`, never an error: it comes from
/// clients). Timestamps are passed in by the caller (from its [`Clock`](crate::clock::Clock))
/// so that a store never reads the time itself, and are kept to microsecond precision.
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
}
