//! The records a [`UserStore`](super::UserStore) keeps, and the requests it answers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::token::TokenDigest;

/// A user's identifier, assigned by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// The role that [`User::is_superuser`] looks for.
pub const SUPERUSER_ROLE: &str = "superuser";

/// A user account.
///
/// Applications keep their own profile tables keyed by [`UserId`]; this record holds what
/// authentication needs. `Debug` output leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Assigned by the store.
    pub id: UserId,
    /// Unique, compared ignoring ASCII case.
    pub username: String,
    /// Unique when present, compared ignoring ASCII case.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// PHC string (Argon2id) or legacy bcrypt hash; `None` for accounts without a password
    /// (magic link or single sign-on only).
    pub password_hash: Option<String>,
    /// Role names, e.g. [`SUPERUSER_ROLE`].
    pub roles: Vec<String>,
    /// A deactivated user cannot authenticate, whatever credential they present.
    pub is_active: bool,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the record last changed.
    pub updated_at: OffsetDateTime,
    /// The last successful interactive login.
    pub last_login: Option<OffsetDateTime>,
}

impl User {
    /// An active user `user{id}` with no roles, password or dates, for unit tests.
    #[cfg(test)]
    pub(crate) fn fixture(id: i64) -> Self {
        Self {
            id: UserId(id),
            username: format!("user{id}"),
            email: None,
            full_name: None,
            password_hash: None,
            roles: vec![],
            is_active: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            last_login: None,
        }
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user holds [`SUPERUSER_ROLE`].
    pub fn is_superuser(&self) -> bool {
        self.has_role(SUPERUSER_ROLE)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field("has_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("is_active", &self.is_active)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// A user to create.
///
/// ```
/// use portcullis::store::NewUser;
///
/// let user = NewUser::new("ada")
///     .email("ada@example.com")
///     .password_hash("$argon2id$...")
///     .first_user_roles(["superuser"]);
/// assert_eq!(user.username, "ada");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique, compared ignoring ASCII case.
    pub username: String,
    /// Unique when present, compared ignoring ASCII case.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// An already computed hash; never a plain password.
    pub password_hash: Option<String>,
    /// Roles every new user gets.
    pub roles: Vec<String>,
    /// Roles added when this is the first user in the store, decided atomically with the
    /// insert (Semantik makes its first user a superuser).
    pub first_user_roles: Vec<String>,
    /// Whether the account starts active.
    pub is_active: bool,
}

impl NewUser {
    /// An active user with no email, password or roles.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            email: None,
            full_name: None,
            password_hash: None,
            roles: Vec::new(),
            first_user_roles: Vec::new(),
            is_active: true,
        }
    }

    /// Sets the email address.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }

    /// Sets the password hash (see [`Passwords::hash`](crate::Passwords::hash)).
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Sets the roles every new user gets.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the roles granted only when the store holds no other user.
    #[must_use]
    pub fn first_user_roles<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        roles: I,
    ) -> Self {
        self.first_user_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets whether the account starts active.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.is_active = active;
        self
    }

    /// The roles the user ends up with, given whether it is the first user.
    pub fn effective_roles(&self, is_first: bool) -> Vec<String> {
        let mut roles = self.roles.clone();
        if is_first {
            for role in &self.first_user_roles {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
        roles
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("has_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("first_user_roles", &self.first_user_roles)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; fields left `None` stay as they are.
///
/// ```
/// use portcullis::store::UserUpdate;
///
/// let deactivate = UserUpdate::default().active(false);
/// assert_eq!(deactivate.is_active, Some(false));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New email (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// New display name (`Some(None)` clears it).
    pub full_name: Option<Option<String>>,
    /// New password hash (`Some(None)` removes the password).
    pub password_hash: Option<Option<String>>,
    /// New set of roles.
    pub roles: Option<Vec<String>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Record a login.
    pub last_login: Option<OffsetDateTime>,
}

impl UserUpdate {
    /// Sets the email.
    #[must_use]
    pub fn email(mut self, email: Option<String>) -> Self {
        self.email = Some(email);
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn full_name(mut self, name: Option<String>) -> Self {
        self.full_name = Some(name);
        self
    }

    /// Sets the password hash.
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(Some(hash.into()));
        self
    }

    /// Replaces the roles.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// Activates or deactivates the account.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.is_active = Some(active);
        self
    }

    /// Records a login at `at`.
    #[must_use]
    pub fn last_login(mut self, at: OffsetDateTime) -> Self {
        self.last_login = Some(at);
        self
    }

    /// Whether the update changes anything that affects authentication or authorization, so
    /// cached credentials of the user must be dropped.
    pub fn affects_credentials(&self) -> bool {
        self.password_hash.is_some() || self.roles.is_some() || self.is_active.is_some()
    }
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field("changes_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("is_active", &self.is_active)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// A token's identifier, assigned by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub i64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an opaque credential is for. One table holds every kind; one-time secrets (magic
/// links, reset links, invites, recovery codes) are a [`SecretStore`](super::SecretStore)'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A long-lived API key.
    ApiKey,
    /// A refresh token, rotated on each use within its family.
    Refresh,
    /// A browser session id.
    Session,
}

impl TokenKind {
    /// Every kind, for stores and tests that iterate over them.
    pub const ALL: [TokenKind; 3] = [Self::ApiKey, Self::Refresh, Self::Session];

    /// The stable name stores persist.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Refresh => "refresh",
            Self::Session => "session",
        }
    }
}

impl FromStr for TokenKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A stored name (token kind, revocation reason) this version does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown stored name {0:?}")]
pub struct UnknownName(pub String);

/// Groups the tokens descended from one login (a session): refresh tokens rotate within a
/// family, and access tokens carry it as their `sid` so that ending the session ends them too.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FamilyId(String);

impl FamilyId {
    /// Wraps a family id read back from a store or a token claim.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A fresh random family id (128 bits, hexadecimal).
    pub fn generate() -> Result<Self, crate::token::RandomnessUnavailable> {
        use rand::TryRng;
        let mut bytes = [0u8; 16];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| crate::token::RandomnessUnavailable)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyId({})", self.0)
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a token stopped being valid before its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeReason {
    /// Replaced by its successor in a refresh rotation.
    Rotated,
    /// Its session was logged out.
    Logout,
    /// Revoked by its owner (e.g. deleting an API key).
    Revoked,
    /// Its family was revoked because a rotated token was presented again (RFC 9700 §4.14.2).
    Reuse,
    /// Revoked because the owner's password changed.
    PasswordChanged,
    /// Revoked by an administrator.
    Admin,
    /// Consumed by its single use (magic links, reset tokens, recovery codes).
    Used,
}

impl RevokeReason {
    const ALL: [RevokeReason; 7] = [
        Self::Rotated,
        Self::Logout,
        Self::Revoked,
        Self::Reuse,
        Self::PasswordChanged,
        Self::Admin,
        Self::Used,
    ];

    /// The stable name stores persist.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Reuse => "reuse",
            Self::PasswordChanged => "password_changed",
            Self::Admin => "admin",
            Self::Used => "used",
        }
    }
}

impl FromStr for RevokeReason {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A stored opaque token. The secret itself is never stored, only its [`TokenDigest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Assigned by the store.
    pub id: TokenId,
    /// What the token is for.
    pub kind: TokenKind,
    /// SHA-256 of the secret.
    pub digest: TokenDigest,
    /// The owner.
    pub user_id: UserId,
    /// A label chosen by the owner (API keys).
    pub name: Option<String>,
    /// Prefix and last four characters, for listings.
    pub hint: String,
    /// The session family (refresh tokens, sessions).
    pub family: Option<FamilyId>,
    /// The scopes the token is limited to; `None` means the owner's full rights.
    pub scopes: Option<Vec<String>>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops being valid; `None` never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<RevokeReason>,
    /// When it last authenticated a request (written behind, coalesced).
    pub last_used_at: Option<OffsetDateTime>,
    /// When the user signed in for the session this token descends from (OIDC's
    /// `auth_time`): a session's or refresh family's start, kept through rotations. `None`
    /// for tokens that do not come from a sign-in (API keys).
    pub auth_time: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Whether the token authenticates at `now`: not revoked and not expired.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }

    /// Whether the token's lifetime has ended at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires| expires <= now)
    }
}

/// A token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// What the token is for.
    pub kind: TokenKind,
    /// SHA-256 of the secret; unique per kind.
    pub digest: TokenDigest,
    /// The owner.
    pub user_id: UserId,
    /// A label chosen by the owner.
    pub name: Option<String>,
    /// Prefix and last four characters.
    pub hint: String,
    /// The session family.
    pub family: Option<FamilyId>,
    /// Scope limits; `None` means the owner's full rights.
    pub scopes: Option<Vec<String>>,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// Expiry; `None` never expires.
    pub expires_at: Option<OffsetDateTime>,
    /// When the user signed in for the session this token belongs to (see
    /// [`TokenRecord::auth_time`]).
    pub auth_time: Option<OffsetDateTime>,
    /// Refuse the insert with [`StoreError::LimitReached`](super::StoreError::LimitReached) when
    /// the owner already has this many active tokens of this kind — checked atomically with
    /// the insert, so concurrent creations cannot exceed it.
    pub max_active: Option<u32>,
}

/// Which tokens [`UserStore::revoke_tokens`](super::UserStore::revoke_tokens) revokes. Only
/// tokens that are not yet revoked are affected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSelector {
    /// One token, only if `owner` owns it.
    Owned {
        /// The token.
        id: TokenId,
        /// Its expected owner.
        owner: UserId,
    },
    /// The token with this digest.
    Digest {
        /// Its kind.
        kind: TokenKind,
        /// Its digest.
        digest: TokenDigest,
    },
    /// Every token of a family.
    Family(FamilyId),
    /// Every token of a user, optionally of one kind only.
    User {
        /// The owner.
        user: UserId,
        /// Restrict to this kind.
        kind: Option<TokenKind>,
    },
}

/// The outcome of [`UserStore::rotate_token`](super::UserStore::rotate_token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was active; it is now revoked as rotated and its replacement stored.
    Rotated {
        /// The presented token, as it is after the rotation.
        previous: Box<TokenRecord>,
        /// The stored replacement.
        replacement: Box<TokenRecord>,
    },
    /// Nothing changed: the token is unknown (`None`), or it is revoked or expired (the record
    /// as stored). A record revoked as [`RevokeReason::Rotated`] means the token was reused.
    Rejected(Option<Box<TokenRecord>>),
}

/// A use of a token, for [`UserStore::record_token_use`](super::UserStore::record_token_use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenUse {
    /// The token.
    pub id: TokenId,
    /// When it was used.
    pub at: OffsetDateTime,
}

/// The outcome of [`UserStore::consume`](super::UserStore::consume).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumption {
    /// The amount was added; the counter now holds `total`.
    Allowed {
        /// The counter after the addition.
        total: u64,
    },
    /// The amount would have passed the limit; nothing was added and the counter holds `total`.
    Exceeded {
        /// The counter, unchanged.
        total: u64,
    },
}
