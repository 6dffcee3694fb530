//! The [`TokenStore`] trait: API keys, refresh tokens and session ids.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    FamilyId, NewToken, RevokeReason, Rotation, StoreError, TokenKind, TokenRecord, TokenSelector,
    TokenUse, User, UserId,
};
use crate::token::TokenDigest;

/// Opaque tokens, in one table for every [`TokenKind`]: only a token's SHA-256 digest is kept.
///
/// Every token belongs to a user of the application's [`UserStore`](super::UserStore); a store
/// that keeps both may refuse a token of an unknown user. Timestamps come from the caller and
/// are kept to microsecond precision. The methods that say *atomically* must hold under
/// concurrent calls from several processes sharing the store.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
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

    /// Finds a token by kind and digest, whatever its state, together with its owner's account
    /// (`None` if the owner is gone): a credential's cache miss in one round trip rather than
    /// two.
    ///
    /// Only a store that keeps the users too can answer; [`Auth`](crate::Auth) asks only when
    /// one store serves both concerns ([`Stores::new`](super::Stores::new)), and reads the
    /// owner through [`UserStore::user_by_id`](super::UserStore::user_by_id) otherwise. The
    /// default answers [`StoreError::Unsupported`], after which `Auth` takes the two queries
    /// and does not ask again.
    async fn token_and_owner(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
        let _ = (kind, digest);
        Err(StoreError::Unsupported("token_and_owner"))
    }

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
}
