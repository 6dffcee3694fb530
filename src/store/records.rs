//! The records a [`UserStore`](super::UserStore) keeps, and the requests it answers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::assurance::Factors;
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
/// authentication needs. `Debug` output leaves out the password hash. A store builds one with
/// [`User::new`] and sets the other fields; new fields may be added in minor versions.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// Assigned by the store.
    pub id: UserId,
    /// Unique, compared ignoring ASCII case.
    pub username: String,
    /// Unique when present, compared ignoring ASCII case.
    pub email: Option<String>,
    /// Whether the user proved they receive mail at [`email`](Self::email) (a link or code
    /// they were sent, or an identity provider's `email_verified`). Changing the address
    /// clears it.
    pub email_verified: bool,
    /// A phone number in E.164 form (`+` and up to 15 digits), unique when present.
    pub phone: Option<String>,
    /// Whether the user proved they hold [`phone`](Self::phone). Changing the number clears
    /// it.
    pub phone_verified: bool,
    /// The name shown for the user (display name).
    pub full_name: Option<String>,
    /// An `https` (or `http`) URL of the user's picture, e.g. from their identity provider.
    pub photo_url: Option<String>,
    /// PHC string (Argon2id) or legacy bcrypt hash; `None` for accounts without a password
    /// (magic link or single sign-on only).
    pub password_hash: Option<String>,
    /// Role names, e.g. [`SUPERUSER_ROLE`].
    pub roles: Vec<String>,
    /// The user's own daily allowance (messages, requests: what the application counts), if
    /// it differs from the application's default; for plans and subscriptions.
    pub daily_allowance: Option<u32>,
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
    /// An active user created (and last updated) at `created_at`, with nothing else set: for
    /// stores, which then fill in the fields they keep.
    pub fn new(id: UserId, username: impl Into<String>, created_at: OffsetDateTime) -> Self {
        Self {
            id,
            username: username.into(),
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            full_name: None,
            photo_url: None,
            password_hash: None,
            roles: Vec::new(),
            daily_allowance: None,
            is_active: true,
            created_at,
            updated_at: created_at,
            last_login: None,
        }
    }

    /// An active user `user{id}` with no roles, password or dates, for unit tests.
    #[cfg(test)]
    pub(crate) fn fixture(id: i64) -> Self {
        Self::new(UserId(id), format!("user{id}"), OffsetDateTime::UNIX_EPOCH)
    }

    /// The stored user `new` becomes, with `id` and `roles` decided by the store at `now`:
    /// for stores that build the record themselves.
    pub fn created(id: UserId, new: NewUser, roles: Vec<String>, now: OffsetDateTime) -> Self {
        Self {
            email: new.email,
            email_verified: new.email_verified,
            phone: new.phone,
            phone_verified: new.phone_verified,
            full_name: new.full_name,
            photo_url: new.photo_url,
            password_hash: new.password_hash,
            roles,
            daily_allowance: new.daily_allowance,
            is_active: new.is_active,
            ..Self::new(id, new.username, now)
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

    /// The email address, if the user verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }

    /// The phone number, if the user verified it.
    pub fn verified_phone(&self) -> Option<&str> {
        self.phone.as_deref().filter(|_| self.phone_verified)
    }

    /// Applies `update` at `now` as every store must: fields left `None` keep their value; a
    /// new email address or phone number (other than the current one ignoring ASCII case, or
    /// exactly, for a phone) is unverified unless the update says otherwise. For stores that
    /// change the record in memory; SQL stores follow the same rules.
    pub fn apply(&mut self, update: UserUpdate, now: OffsetDateTime) {
        if let Some(email) = update.email {
            let same = match (&self.email, &email) {
                (Some(old), Some(new)) => old.eq_ignore_ascii_case(new),
                (None, None) => true,
                _ => false,
            };
            if !same {
                self.email_verified = false;
            }
            self.email = email;
        }
        if let Some(verified) = update.email_verified {
            self.email_verified = verified;
        }
        if let Some(phone) = update.phone {
            if self.phone != phone {
                self.phone_verified = false;
            }
            self.phone = phone;
        }
        if let Some(verified) = update.phone_verified {
            self.phone_verified = verified;
        }
        if let Some(name) = update.full_name {
            self.full_name = name;
        }
        if let Some(photo) = update.photo_url {
            self.photo_url = photo;
        }
        if let Some(hash) = update.password_hash {
            self.password_hash = hash;
        }
        if let Some(roles) = update.roles {
            self.roles = roles;
        }
        if let Some(allowance) = update.daily_allowance {
            self.daily_allowance = allowance;
        }
        if let Some(active) = update.is_active {
            self.is_active = active;
        }
        if let Some(at) = update.last_login {
            self.last_login = Some(at);
        }
        self.updated_at = now;
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("phone", &self.phone)
            .field("phone_verified", &self.phone_verified)
            .field("full_name", &self.full_name)
            .field("photo_url", &self.photo_url)
            .field("has_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("daily_allowance", &self.daily_allowance)
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
#[non_exhaustive]
pub struct NewUser {
    /// Unique, compared ignoring ASCII case.
    pub username: String,
    /// Unique when present, compared ignoring ASCII case.
    pub email: Option<String>,
    /// Whether the email address is already verified (an identity provider said so).
    pub email_verified: bool,
    /// E.164 phone number, unique when present.
    pub phone: Option<String>,
    /// Whether the phone number is already verified.
    pub phone_verified: bool,
    /// Display name.
    pub full_name: Option<String>,
    /// Picture URL.
    pub photo_url: Option<String>,
    /// An already computed hash; never a plain password.
    pub password_hash: Option<String>,
    /// Roles every new user gets.
    pub roles: Vec<String>,
    /// Roles added when this is the first user in the store, decided atomically with the
    /// insert (Semantik makes its first user a superuser).
    pub first_user_roles: Vec<String>,
    /// The user's own daily allowance, if not the application's default.
    pub daily_allowance: Option<u32>,
    /// Whether the account starts active.
    pub is_active: bool,
}

impl NewUser {
    /// An active user with no email, password or roles.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            full_name: None,
            photo_url: None,
            password_hash: None,
            roles: Vec::new(),
            first_user_roles: Vec::new(),
            daily_allowance: None,
            is_active: true,
        }
    }

    /// Sets the email address (unverified).
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets whether the email address is verified.
    #[must_use]
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    /// Sets the phone number (E.164, unverified).
    #[must_use]
    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    /// Sets whether the phone number is verified.
    #[must_use]
    pub fn phone_verified(mut self, verified: bool) -> Self {
        self.phone_verified = verified;
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }

    /// Sets the picture URL.
    #[must_use]
    pub fn photo_url(mut self, url: impl Into<String>) -> Self {
        self.photo_url = Some(url.into());
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

    /// Sets the user's own daily allowance.
    #[must_use]
    pub fn daily_allowance(mut self, allowance: u32) -> Self {
        self.daily_allowance = Some(allowance);
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
            .field("email_verified", &self.email_verified)
            .field("phone", &self.phone)
            .field("has_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("first_user_roles", &self.first_user_roles)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; fields left `None` stay as they are.
///
/// A new email address or phone number is unverified unless the same update verifies it
/// (see [`User::apply`]).
///
/// ```
/// use portcullis::store::UserUpdate;
///
/// let deactivate = UserUpdate::default().active(false);
/// assert_eq!(deactivate.is_active, Some(false));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserUpdate {
    /// New email (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// Mark the email address verified or not.
    pub email_verified: Option<bool>,
    /// New phone number (`Some(None)` clears it).
    pub phone: Option<Option<String>>,
    /// Mark the phone number verified or not.
    pub phone_verified: Option<bool>,
    /// New display name (`Some(None)` clears it).
    pub full_name: Option<Option<String>>,
    /// New picture URL (`Some(None)` clears it).
    pub photo_url: Option<Option<String>>,
    /// New password hash (`Some(None)` removes the password).
    pub password_hash: Option<Option<String>>,
    /// New set of roles.
    pub roles: Option<Vec<String>>,
    /// New daily allowance (`Some(None)`: back to the application's default).
    pub daily_allowance: Option<Option<u32>>,
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

    /// Marks the email address verified (or not).
    #[must_use]
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = Some(verified);
        self
    }

    /// Sets the phone number.
    #[must_use]
    pub fn phone(mut self, phone: Option<String>) -> Self {
        self.phone = Some(phone);
        self
    }

    /// Marks the phone number verified (or not).
    #[must_use]
    pub fn phone_verified(mut self, verified: bool) -> Self {
        self.phone_verified = Some(verified);
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn full_name(mut self, name: Option<String>) -> Self {
        self.full_name = Some(name);
        self
    }

    /// Sets the picture URL.
    #[must_use]
    pub fn photo_url(mut self, url: Option<String>) -> Self {
        self.photo_url = Some(url);
        self
    }

    /// Sets the password hash.
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(Some(hash.into()));
        self
    }

    /// Removes the password (the account signs in by link, code or identity provider only).
    #[must_use]
    pub fn remove_password(mut self) -> Self {
        self.password_hash = Some(None);
        self
    }

    /// Replaces the roles.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the daily allowance (`None`: the application's default).
    #[must_use]
    pub fn daily_allowance(mut self, allowance: Option<u32>) -> Self {
        self.daily_allowance = Some(allowance);
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
            .field("email_verified", &self.email_verified)
            .field("phone", &self.phone)
            .field("phone_verified", &self.phone_verified)
            .field("full_name", &self.full_name)
            .field("photo_url", &self.photo_url)
            .field("changes_password", &self.password_hash.is_some())
            .field("roles", &self.roles)
            .field("daily_allowance", &self.daily_allowance)
            .field("is_active", &self.is_active)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// An account at an external identity provider (OpenID Connect, say) linked to a user:
/// the provider's issuer and its stable subject identifier for the user, compared exactly
/// (OpenID Connect Core §5.7: `sub` is unique only within the issuer, and never reassigned).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExternalIdentity {
    /// The issuer identifier (`iss`), e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// The subject identifier (`sub`) at that issuer.
    pub subject: String,
    /// When it was linked.
    pub linked_at: OffsetDateTime,
}

impl ExternalIdentity {
    /// The identity `subject` at `issuer`, linked at `linked_at`.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        linked_at: OffsetDateTime,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            linked_at,
        }
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
///
/// A store builds one with [`TokenRecord::new`] (or [`TokenRecord::stored`]) and sets the
/// other fields; new fields may be added in minor versions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The factors the user proved at `auth_time`, kept through rotations (the `amr` of the
    /// access tokens it issues). Empty for tokens that do not come from a sign-in.
    pub factors: Factors,
}

impl TokenRecord {
    /// An active token without name, family, scopes, expiry or uses: for stores, which then
    /// fill in the fields they keep.
    pub fn new(
        id: TokenId,
        kind: TokenKind,
        digest: TokenDigest,
        user_id: UserId,
        hint: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            kind,
            digest,
            user_id,
            name: None,
            hint: hint.into(),
            family: None,
            scopes: None,
            created_at,
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            auth_time: None,
            factors: Factors::NONE,
        }
    }

    /// The record `new` becomes once stored under `id`.
    pub fn stored(id: TokenId, new: NewToken) -> Self {
        Self {
            name: new.name,
            family: new.family,
            scopes: new.scopes,
            expires_at: new.expires_at,
            auth_time: new.auth_time,
            factors: new.factors,
            ..Self::new(
                id,
                new.kind,
                new.digest,
                new.user_id,
                new.hint,
                new.created_at,
            )
        }
    }

    /// When the user signed in for the session this token descends from: its
    /// [`auth_time`](Self::auth_time), or, for rows written before sign-ins were recorded,
    /// the token's own creation (the best known).
    pub fn signed_in_at(&self) -> OffsetDateTime {
        self.auth_time.unwrap_or(self.created_at)
    }

    /// Whether the token authenticates at `now`: not revoked and not expired.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }

    /// Whether the token's lifetime has ended at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires| expires <= now)
    }
}

/// A token to store, built with [`NewToken::new`] and its setters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The factors the user proved at `auth_time` (see [`TokenRecord::factors`]).
    pub factors: Factors,
    /// Refuse the insert with [`StoreError::LimitReached`](super::StoreError::LimitReached) when
    /// the owner already has this many active tokens of this kind — checked atomically with
    /// the insert, so concurrent creations cannot exceed it.
    pub max_active: Option<u32>,
}

impl NewToken {
    /// A token of `kind` for `user_id`, issued at `created_at`, that never expires; `hint`
    /// is what listings show of it (see [`TokenFormat::hint`](crate::token::TokenFormat::hint)).
    pub fn new(
        kind: TokenKind,
        digest: TokenDigest,
        user_id: UserId,
        hint: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            kind,
            digest,
            user_id,
            name: None,
            hint: hint.into(),
            family: None,
            scopes: None,
            created_at,
            expires_at: None,
            auth_time: None,
            factors: Factors::NONE,
            max_active: None,
        }
    }

    /// Sets the owner's label.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the session family.
    #[must_use]
    pub fn family(mut self, family: FamilyId) -> Self {
        self.family = Some(family);
        self
    }

    /// Limits the token to `scopes`.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets when the user signed in for the session the token belongs to.
    #[must_use]
    pub fn auth_time(mut self, at: OffsetDateTime) -> Self {
        self.auth_time = Some(at);
        self
    }

    /// Sets the factors the user proved at the sign-in.
    #[must_use]
    pub fn factors(mut self, factors: Factors) -> Self {
        self.factors = factors;
        self
    }

    /// Refuses the insert when the owner already has `limit` active tokens of this kind.
    #[must_use]
    pub fn max_active(mut self, limit: u32) -> Self {
        self.max_active = Some(limit);
        self
    }
}

/// Which tokens [`TokenStore::revoke_tokens`](super::TokenStore::revoke_tokens) revokes. Only
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

/// The outcome of [`TokenStore::rotate_token`](super::TokenStore::rotate_token).
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

/// A use of a token, for [`TokenStore::record_token_use`](super::TokenStore::record_token_use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenUse {
    /// The token.
    pub id: TokenId,
    /// When it was used.
    pub at: OffsetDateTime,
}

/// The outcome of [`CounterStore::consume`](super::CounterStore::consume).
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
