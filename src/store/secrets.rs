//! One-time secrets: the [`SecretStore`] trait and its records.
//!
//! Magic-link codes, password-reset and email-verification links, invites, OpenID Connect
//! `state` (with the PKCE verifier and nonce as payload), passkey ceremonies and pending
//! second-factor challenges are all one thing: a secret handed out once, kept only as a digest,
//! that expires, may have no user yet, may carry a small payload, and is spent exactly once.
//!
//! Two ways to redeem one:
//!
//! * [`consume_secret`](SecretStore::consume_secret) by digest, for a secret with 256 bits of
//!   entropy (a link's token, an OIDC `state`): guessing is hopeless, so a miss costs nothing.
//! * [`guess_secret`](SecretStore::guess_secret) by subject, for a low-entropy code (six
//!   digits): every wrong guess spends one of the secret's attempts, atomically, and a secret
//!   out of attempts is dead even for the right code. Such codes are digested with a server key
//!   and their subject ([`CodeKey`](crate::token::CodeKey)), so a leaked table does not give
//!   them up to a search of a million candidates and two subjects' codes never collide.
//!
//! One-time secrets are never cached: every redemption asks the store.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{StoreError, UserId};
use crate::token::TokenDigest;

/// The largest payload a secret carries, as JSON text: enough for a PKCE verifier, a nonce and
/// a `next` path, an invite's roles or a device's name; small enough that a flood of secrets
/// cannot fill the store.
pub const MAX_SECRET_PAYLOAD: usize = 4096;

/// The longest [`SecretKind`] name.
pub const MAX_SECRET_KIND_LEN: usize = 32;

/// What a one-time secret is for. Secrets of different kinds never redeem each other.
///
/// The constants name the kinds portcullis's flows use; an application names its own with
/// [`SecretKind::custom`], checked when the program is compiled:
///
/// ```
/// use portcullis::store::SecretKind;
///
/// const EXPORT_LINK: SecretKind = SecretKind::custom("myapp_export_link");
/// assert_eq!(EXPORT_LINK.as_str(), "myapp_export_link");
/// assert_ne!(EXPORT_LINK, SecretKind::MAGIC_LINK);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretKind(&'static str);

impl SecretKind {
    /// An email sign-in code and the link that carries it.
    pub const MAGIC_LINK: Self = Self("magic_link");
    /// A password-reset link.
    pub const PASSWORD_RESET: Self = Self("password_reset");
    /// An email-verification link.
    pub const EMAIL_VERIFICATION: Self = Self("email_verification");
    /// An invitation to create an account.
    pub const INVITE: Self = Self("invite");
    /// An OpenID Connect authorization request in flight (`state`, PKCE verifier, nonce).
    pub const OIDC_STATE: Self = Self("oidc_state");
    /// A WebAuthn registration or authentication ceremony in flight.
    pub const PASSKEY_CEREMONY: Self = Self("passkey_ceremony");
    /// A first factor that passed and waits for a second.
    pub const SECOND_FACTOR: Self = Self("second_factor");
    /// A two-factor recovery code.
    pub const RECOVERY_CODE: Self = Self("recovery_code");
    /// A short-lived token exchanged for a sign-in (single sign-on hand-offs).
    pub const TEMPORARY_TOKEN: Self = Self("temporary_token");
    /// A device waiting for its owner's or an administrator's approval.
    pub const DEVICE_APPROVAL: Self = Self("device_approval");

    /// An application's own kind. `name` is 1 to [`MAX_SECRET_KIND_LEN`] lowercase ASCII
    /// letters, digits and `_`; anything else fails to compile in a `const` (and panics
    /// elsewhere).
    pub const fn custom(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= MAX_SECRET_KIND_LEN,
            "a secret kind is 1 to 32 bytes long"
        );
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
                "a secret kind is lowercase ASCII letters, digits and _"
            );
            i += 1;
        }
        Self(name)
    }

    /// The stable name stores persist.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKind({})", self.0)
    }
}

/// Whom a one-time secret was issued to. A secret's subject scopes its guesses
/// ([`SecretStore::guess_secret`]) and its [`CodeKey`](crate::token::CodeKey) digest.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretSubject {
    /// No one yet: an OIDC `state`, an invite to whoever holds the link.
    Nobody,
    /// An existing user.
    User(UserId),
    /// An email address that may not belong to any user yet (a magic link, an invite). Build
    /// it with [`SecretSubject::email`], which normalises the address.
    Email(String),
}

impl SecretSubject {
    /// An email subject: trimmed and lowercased (ASCII), so that `Ada@Example.com ` and
    /// `ada@example.com` are one subject, as stores compare emails.
    pub fn email(address: &str) -> Self {
        Self::Email(address.trim().to_ascii_lowercase())
    }

    /// The text stores keep and look the subject up by: `user:42`, `email:ada@example.com`,
    /// or `None` for [`Nobody`](Self::Nobody).
    pub fn key(&self) -> Option<String> {
        match self {
            Self::Nobody => None,
            Self::User(id) => Some(format!("user:{id}")),
            Self::Email(address) => Some(format!("email:{address}")),
        }
    }

    /// Reads back a [`key`](Self::key).
    pub fn from_key(key: Option<&str>) -> Result<Self, super::UnknownName> {
        let unknown = || super::UnknownName(key.unwrap_or_default().to_owned());
        let Some(key) = key else {
            return Ok(Self::Nobody);
        };
        if let Some(id) = key.strip_prefix("user:") {
            return id.parse().map(Self::User).map_err(|_| unknown());
        }
        key.strip_prefix("email:")
            .map(|address| Self::Email(address.to_owned()))
            .ok_or_else(unknown)
    }
}

impl fmt::Debug for SecretSubject {
    /// An email subject shows only its domain: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nobody => f.write_str("Nobody"),
            Self::User(id) => write!(f, "User({id})"),
            Self::Email(address) => {
                let domain = address.rsplit_once('@').map_or("", |(_, domain)| domain);
                write!(f, "Email(…@{domain})")
            }
        }
    }
}

/// A one-time secret's identifier, assigned by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId(pub i64);

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A payload larger than [`MAX_SECRET_PAYLOAD`], or one that is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("a one-time secret's payload must be JSON of at most {MAX_SECRET_PAYLOAD} bytes")]
pub struct PayloadTooLarge;

/// A one-time secret to store: its digest, never the secret.
///
/// ```
/// use std::time::Duration;
/// use portcullis::store::{NewSecret, SecretKind, SecretSubject};
/// use portcullis::token::TokenDigest;
///
/// let now = time::OffsetDateTime::now_utc();
/// let state = NewSecret::new(SecretKind::OIDC_STATE, TokenDigest::of("state…"), now, Duration::from_secs(600))
///     .payload(&serde_json::json!({ "verifier": "…", "nonce": "…", "next": "/chat" }))?;
/// let code = NewSecret::new(SecretKind::MAGIC_LINK, TokenDigest::of("keyed…"), now, Duration::from_secs(300))
///     .subject(SecretSubject::email("Ada@example.com"))
///     .attempts(5)
///     .replacing_earlier();
/// # Ok::<(), portcullis::store::PayloadTooLarge>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewSecret {
    /// What it is for.
    pub kind: SecretKind,
    /// The digest it is redeemed by: unique per kind.
    pub digest: TokenDigest,
    /// Whom it was issued to.
    pub subject: SecretSubject,
    /// JSON text of at most [`MAX_SECRET_PAYLOAD`] bytes.
    pub payload: Option<String>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops being redeemable; every one-time secret expires.
    pub expires_at: OffsetDateTime,
    /// How many wrong guesses it survives ([`SecretStore::guess_secret`]); `None`, no limit.
    pub attempts: Option<u32>,
    /// End the subject's live secrets of this kind when storing this one (a new code for
    /// every request), atomically with the insert.
    pub replaces_earlier: bool,
}

impl NewSecret {
    /// A secret of `kind` with this digest, issued `now`, redeemable for `lifetime`; no
    /// subject, payload or guess limit.
    pub fn new(
        kind: SecretKind,
        digest: TokenDigest,
        now: OffsetDateTime,
        lifetime: std::time::Duration,
    ) -> Self {
        Self {
            kind,
            digest,
            subject: SecretSubject::Nobody,
            payload: None,
            created_at: now,
            expires_at: crate::clock::add(now, lifetime),
            attempts: None,
            replaces_earlier: false,
        }
    }

    /// Issued to `subject`.
    #[must_use]
    pub fn subject(mut self, subject: SecretSubject) -> Self {
        self.subject = subject;
        self
    }

    /// Carries `payload`, serialised as JSON; refused when longer than
    /// [`MAX_SECRET_PAYLOAD`].
    pub fn payload(mut self, payload: &impl serde::Serialize) -> Result<Self, PayloadTooLarge> {
        let text = serde_json::to_string(payload).map_err(|_| PayloadTooLarge)?;
        self.payload = Some(checked_payload(text)?);
        Ok(self)
    }

    /// Dead after `attempts` wrong guesses (at least one).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts.max(1));
        self
    }

    /// Ends the subject's earlier live secrets of this kind when stored.
    #[must_use]
    pub fn replacing_earlier(mut self) -> Self {
        self.replaces_earlier = true;
        self
    }
}

fn checked_payload(text: String) -> Result<String, PayloadTooLarge> {
    if text.len() <= MAX_SECRET_PAYLOAD {
        Ok(text)
    } else {
        Err(PayloadTooLarge)
    }
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .field("subject", &self.subject)
            .field("payload_bytes", &self.payload.as_ref().map(String::len))
            .field("expires_at", &self.expires_at)
            .field("attempts", &self.attempts)
            .field("replaces_earlier", &self.replaces_earlier)
            .finish_non_exhaustive()
    }
}

/// A stored one-time secret, as a redemption returns it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretRecord {
    /// Assigned by the store.
    pub id: SecretId,
    /// What it is for.
    pub kind: SecretKind,
    /// Whom it was issued to.
    pub subject: SecretSubject,
    /// JSON text, as stored.
    pub payload: Option<String>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops being redeemable.
    pub expires_at: OffsetDateTime,
    /// Wrong guesses it still survives; `None`, no limit.
    pub attempts_left: Option<u32>,
}

impl SecretRecord {
    /// A record read back from a store: the secret of `kind` stored as `id`, issued at
    /// `created_at` and redeemable until `expires_at`, with no subject, payload or guess
    /// limit until [`subject`](Self::subject), [`payload`](Self::payload)
    /// and [`attempts_left`](Self::attempts_left) say otherwise. For stores.
    pub fn new(
        id: SecretId,
        kind: SecretKind,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            kind,
            subject: SecretSubject::Nobody,
            payload: None,
            created_at,
            expires_at,
            attempts_left: None,
        }
    }

    /// The record of `secret`, just stored as `id`: every attempt still to go.
    pub fn inserted(id: SecretId, secret: NewSecret) -> Self {
        Self::new(id, secret.kind, secret.created_at, secret.expires_at)
            .subject(secret.subject)
            .payload(secret.payload)
            .attempts_left(secret.attempts)
    }

    /// Issued to `subject`.
    #[must_use]
    pub fn subject(mut self, subject: SecretSubject) -> Self {
        self.subject = subject;
        self
    }

    /// Carrying `payload` (JSON text, as stored).
    #[must_use]
    pub fn payload(mut self, payload: Option<String>) -> Self {
        self.payload = payload;
        self
    }

    /// Surviving `attempts_left` more wrong guesses (`None`: no limit).
    #[must_use]
    pub fn attempts_left(mut self, attempts_left: Option<u32>) -> Self {
        self.attempts_left = attempts_left;
        self
    }

    /// The payload, deserialised.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Option<serde_json::Result<T>> {
        self.payload.as_deref().map(serde_json::from_str)
    }
}

impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("payload_bytes", &self.payload.as_ref().map(String::len))
            .field("expires_at", &self.expires_at)
            .field("attempts_left", &self.attempts_left)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`SecretStore::guess_secret`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Guess {
    /// The guess was right: the secret is spent, and this is the last anyone sees of it.
    Right(Box<SecretRecord>),
    /// The guess was wrong; it cost an attempt of each of the subject's live secrets of that
    /// kind, which now survive `attempts_left` more (the most any of them has; `Some(0)`:
    /// none is left).
    Wrong {
        /// Wrong guesses still to go; `None`, no limit.
        attempts_left: Option<u32>,
    },
    /// The subject has no live secret of that kind: never issued, spent, replaced, revoked
    /// or out of attempts (or expired, from a store that does not tell
    /// [`Expired`](Self::Expired) apart, or no longer remembers it). Nothing was evaluated.
    NoSecret,
    /// The subject has no live secret of that kind, and one of them ran out of time
    /// unanswered: not spent, replaced, revoked or out of attempts, only expired ("request a
    /// new code", rather than "wrong code"). Nothing was evaluated, and nothing is revealed
    /// that the subject's owner was not told when the secret was issued.
    Expired,
}

impl Guess {
    /// The outcome of a wrong guess that took an attempt from each of the subject's live
    /// secrets, given what each has left afterwards (`None`: no limit): [`Guess::NoSecret`]
    /// when there were none. For stores.
    pub fn wrong(left: impl IntoIterator<Item = Option<u32>>) -> Self {
        let mut left = left.into_iter().peekable();
        if left.peek().is_none() {
            return Self::NoSecret;
        }
        // Any secret without a limit makes the subject's guesses unlimited.
        let attempts_left = left.try_fold(0, |most, attempts| attempts.map(|a| most.max(a)));
        Self::Wrong { attempts_left }
    }
}

/// One-time secrets (see [`OneTimeSecrets`](crate::OneTimeSecrets), the service over it).
///
/// Every method is atomic under concurrent calls from several processes sharing the store:
/// a secret is spent exactly once, and no more wrong guesses than its attempts are ever
/// evaluated. "Live" means not spent, revoked or replaced, not expired at `now`, and not out
/// of attempts. Timestamps come from the caller. [`SecretSubject::Nobody`] has no secrets to
/// guess, replace or revoke: an owner-less secret is redeemed by its digest alone.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Stores a secret, first ending the subject's live secrets of its kind when
    /// [`NewSecret::replaces_earlier`] says so. Fails with [`StoreError::Conflict`]
    /// (`"digest"`) when a secret of the same kind has the same digest, and with
    /// [`StoreError::InvalidInput`] for text no store can keep (see [`super::validate`]).
    async fn insert_secret(&self, secret: NewSecret) -> Result<SecretRecord, StoreError>;

    /// Spends the live secret of `kind` with this digest and returns it; `None` when there is
    /// none. Of any number of concurrent calls, exactly one gets the record.
    async fn consume_secret(
        &self,
        kind: SecretKind,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SecretRecord>, StoreError>;

    /// A guess at `subject`'s live secret of `kind`: spends the one with this digest, or else
    /// takes an attempt from each of them (one at zero is dead). See [`Guess`].
    async fn guess_secret(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Guess, StoreError>;

    /// Ends `subject`'s live secrets of `kind` (the outstanding reset links after a password
    /// change, say) and returns how many.
    async fn revoke_secrets(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Deletes the secrets that expired or ended before `before` and returns how many.
    async fn purge_secrets(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_through_their_key() {
        for subject in [
            SecretSubject::Nobody,
            SecretSubject::User(UserId(42)),
            SecretSubject::email(" Ada@Example.COM "),
        ] {
            let key = subject.key();
            assert_eq!(SecretSubject::from_key(key.as_deref()), Ok(subject));
        }
        assert_eq!(
            SecretSubject::email(" Ada@Example.COM ").key().as_deref(),
            Some("email:ada@example.com")
        );
        assert!(SecretSubject::from_key(Some("user:ada")).is_err());
        assert!(SecretSubject::from_key(Some("phone:123")).is_err());
    }

    #[test]
    fn debug_output_hides_addresses_and_payloads() {
        let email = SecretSubject::email("ada@example.com");
        assert_eq!(format!("{email:?}"), "Email(…@example.com)");
        let secret = NewSecret::new(
            SecretKind::INVITE,
            TokenDigest::of("x"),
            OffsetDateTime::UNIX_EPOCH,
            std::time::Duration::from_secs(1),
        )
        .subject(email)
        .payload(&"the-pkce-verifier")
        .unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("ada") && !shown.contains("pkce"), "{shown}");
    }

    #[test]
    fn payloads_are_capped() {
        let new = || {
            NewSecret::new(
                SecretKind::OIDC_STATE,
                TokenDigest::of("x"),
                OffsetDateTime::UNIX_EPOCH,
                std::time::Duration::from_secs(1),
            )
        };
        // A JSON string of n characters serialises to n + 2 bytes.
        assert!(new().payload(&"x".repeat(MAX_SECRET_PAYLOAD - 2)).is_ok());
        assert!(new().payload(&"x".repeat(MAX_SECRET_PAYLOAD - 1)).is_err());
    }

    #[test]
    fn a_wrong_guess_reports_the_most_attempts_left() {
        assert_eq!(Guess::wrong([]), Guess::NoSecret);
        assert_eq!(
            Guess::wrong([Some(0), Some(3), Some(1)]),
            Guess::Wrong {
                attempts_left: Some(3)
            }
        );
        assert_eq!(
            Guess::wrong([Some(0), None]),
            Guess::Wrong {
                attempts_left: None
            }
        );
    }

    #[test]
    fn attempts_are_at_least_one() {
        let secret = NewSecret::new(
            SecretKind::MAGIC_LINK,
            TokenDigest::of("x"),
            OffsetDateTime::UNIX_EPOCH,
            std::time::Duration::from_secs(1),
        )
        .attempts(0);
        assert_eq!(secret.attempts, Some(1));
    }

    proptest::proptest! {
        #[test]
        fn every_subject_round_trips_and_stored_keys_never_panic(
            id in proptest::prelude::any::<i64>(),
            address in "\\PC{0,40}",
            stored in proptest::option::of("\\PC{0,40}"),
        ) {
            for subject in [SecretSubject::User(UserId(id)), SecretSubject::email(&address)] {
                let key = subject.key();
                proptest::prop_assert_eq!(SecretSubject::from_key(key.as_deref()), Ok(subject));
            }
            let _ = SecretSubject::from_key(stored.as_deref());
        }
    }

    #[test]
    #[should_panic(expected = "lowercase")]
    fn custom_kinds_are_checked() {
        let _ = SecretKind::custom("Not-A-Kind");
    }
}
