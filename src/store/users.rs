//! The [`UserStore`] trait: user accounts.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{ExternalIdentity, NewUser, StoreError, User, UserId, UserUpdate};

/// User accounts.
///
/// Usernames and emails are unique and compared ignoring ASCII case; phone numbers (E.164) and
/// external identities are unique and compared exactly. Text containing U+0000 is
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
    /// Fails with [`StoreError::Conflict`] naming `"username"`, `"email"` or `"phone"` when
    /// taken.
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

    /// Looks a user up by phone number, exactly.
    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError>;

    /// The user whose *verified* email address is `email` (ignoring ASCII case): the lookup an
    /// identity provider's or a magic link's address may be matched against.
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .user_by_email(email)
            .await?
            .filter(|user| user.email_verified))
    }

    /// The user whose *verified* phone number is `phone`.
    async fn user_by_verified_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .user_by_phone(phone)
            .await?
            .filter(|user| user.phone_verified))
    }

    /// Applies `update` as [`User::apply`] describes and returns the updated user, or `None`
    /// if there is no such user. Fails with [`StoreError::Conflict`] when a new email or
    /// phone number is taken.
    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Atomically links `identity` to `user`: `true` when newly linked, `false` when it
    /// already was (nothing changes), [`StoreError::Conflict`] naming `"identity"` when
    /// another user holds it, [`StoreError::Corrupt`] when `user` does not exist.
    async fn link_identity(
        &self,
        user: UserId,
        identity: ExternalIdentity,
    ) -> Result<bool, StoreError>;

    /// The user `subject` at `issuer` is linked to.
    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError>;

    /// The identities linked to `user`, oldest first.
    async fn identities_of(&self, user: UserId) -> Result<Vec<ExternalIdentity>, StoreError>;

    /// Unlinks `subject` at `issuer` from `user`; `false` when `user` did not hold it.
    async fn unlink_identity(
        &self,
        user: UserId,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError>;
}
