//! [`OneTimeSecrets`]: issuing and redeeming one-time secrets over the
//! [`SecretStore`](crate::store::SecretStore).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Auth;
use crate::store::{
    Guess, NewSecret, PayloadTooLarge, SecretKind, SecretRecord, SecretSubject, StoreError,
};
use crate::token::{CodeKey, RandomnessUnavailable, TokenDigest, TokenFormat, TokenSecret};

/// The default length of a code, in digits.
pub const DEFAULT_CODE_DIGITS: u32 = 6;

/// The default number of wrong guesses a code survives.
pub const DEFAULT_CODE_ATTEMPTS: u32 = 5;

/// How often a freshly drawn code may collide with a live code of the same subject before
/// issuing gives up (one in a million per live code with six digits: never, in practice).
const CODE_DRAWS: usize = 4;

/// Issues and redeems one-time secrets: **links** (256 random bits, redeemed by their digest)
/// and **codes** (a few digits a person types, redeemed by subject with a bounded number of
/// guesses, stored under the [`CodeKey`]).
///
/// Nothing here is cached: every redemption is one atomic store call, so a secret is spent
/// exactly once however many instances and requests race for it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use portcullis::{Auth, OneTimeSecrets, RedeemError, SecretRequest};
/// use portcullis::store::{MemoryStore, SecretKind, SecretSubject};
/// use portcullis::token::CodeKey;
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let secrets = OneTimeSecrets::new(&auth, CodeKey::new(&[7; 32])?);
///
/// // A sign-in code mailed to an address that may have no account yet.
/// let ada = SecretSubject::email("ada@example.com");
/// let request = SecretRequest::new(SecretKind::MAGIC_LINK, Duration::from_secs(600)).subject(ada.clone());
/// let issued = secrets.issue_code(request).await?;
/// let code = issued.code.expose();
/// assert_eq!(code.len(), 6);
///
/// let wrong = if code == "000000" { "000001" } else { "000000" };
/// assert!(matches!(
///     secrets.redeem_code(SecretKind::MAGIC_LINK, &ada, wrong).await,
///     Err(RedeemError::WrongCode { attempts_left: Some(4) })
/// ));
/// let record = secrets.redeem_code(SecretKind::MAGIC_LINK, &ada, code).await?;
/// assert_eq!(record.subject, ada);
/// assert!(matches!(
///     secrets.redeem_code(SecretKind::MAGIC_LINK, &ada, code).await,
///     Err(RedeemError::Invalid)
/// ), "spent");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct OneTimeSecrets {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Auth,
    key: CodeKey,
    link_format: TokenFormat,
    digits: u32,
}

impl fmt::Debug for OneTimeSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeSecrets")
            .field("link_prefix", &self.inner.link_format.prefix())
            .field("digits", &self.inner.digits)
            .finish_non_exhaustive()
    }
}

/// What to issue: a secret's kind, lifetime, subject, payload and guess limit, everything but
/// the secret itself.
///
/// A link without a subject is redeemable by whoever holds it (an OIDC `state`, an invite);
/// a code always has a subject, which scopes its guesses.
#[derive(Clone)]
pub struct SecretRequest {
    kind: SecretKind,
    lifetime: Duration,
    subject: SecretSubject,
    payload: Option<String>,
    attempts: Option<u32>,
    replaces_earlier: bool,
}

impl fmt::Debug for SecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRequest")
            .field("kind", &self.kind)
            .field("lifetime", &self.lifetime)
            .field("subject", &self.subject)
            .field("has_payload", &self.payload.is_some())
            .field("attempts", &self.attempts)
            .field("replaces_earlier", &self.replaces_earlier)
            .finish()
    }
}

impl SecretRequest {
    /// A secret of `kind`, redeemable for `lifetime`, issued to nobody.
    pub fn new(kind: SecretKind, lifetime: Duration) -> Self {
        Self {
            kind,
            lifetime,
            subject: SecretSubject::Nobody,
            payload: None,
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

    /// Carrying `payload`, returned by the redemption ([`SecretRecord::payload_as`]); at most
    /// [`MAX_SECRET_PAYLOAD`](crate::store::MAX_SECRET_PAYLOAD) bytes of JSON.
    pub fn payload(mut self, payload: &impl serde::Serialize) -> Result<Self, PayloadTooLarge> {
        let text = serde_json::to_string(payload).map_err(|_| PayloadTooLarge)?;
        // Checked here, so that the caller learns of an oversized payload where it builds it.
        if text.len() > crate::store::MAX_SECRET_PAYLOAD {
            return Err(PayloadTooLarge);
        }
        self.payload = Some(text);
        Ok(self)
    }

    /// Dead after `attempts` wrong guesses (codes default to [`DEFAULT_CODE_ATTEMPTS`]).
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts.max(1));
        self
    }

    /// Ends the subject's earlier live secrets of this kind when this one is stored: asking
    /// for a new code makes the previous one worthless.
    #[must_use]
    pub fn replacing_earlier(mut self) -> Self {
        self.replaces_earlier = true;
        self
    }

    fn into_new_secret(self, digest: TokenDigest, now: time::OffsetDateTime) -> NewSecret {
        let mut secret =
            NewSecret::new(self.kind, digest, now, self.lifetime).subject(self.subject);
        secret.payload = self.payload;
        secret.attempts = self.attempts;
        secret.replaces_earlier = self.replaces_earlier;
        secret
    }
}

/// A link secret, issued: put [`secret`](Self::secret) in the link and forget it.
#[derive(Debug)]
pub struct IssuedLink {
    /// The secret (show it once).
    pub secret: TokenSecret,
    /// What the store keeps.
    pub record: SecretRecord,
}

/// A code, issued: send [`code`](Self::code) to its subject and forget it.
#[derive(Debug)]
pub struct IssuedCode {
    /// The code, [`OneTimeSecrets::code_digits`] decimal digits.
    pub code: TokenSecret,
    /// What the store keeps.
    pub record: SecretRecord,
}

/// Why a one-time secret could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueSecretError {
    /// A code needs a subject to scope its guesses.
    #[error("a one-time code must have a subject")]
    CodeWithoutSubject,
    /// No randomness was available.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The store failed or refused the secret.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a one-time secret was not redeemed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// Malformed, unknown, spent, replaced, revoked or out of attempts (and, for links,
    /// expired): deliberately one answer.
    #[error("the code or link is invalid or has expired")]
    Invalid,
    /// The subject's code ran out of time unanswered ([`Guess::Expired`]): request a new
    /// one. Only [`redeem_code`](OneTimeSecrets::redeem_code) tells it apart, since the
    /// subject's owner was told the code's lifetime when it was sent.
    #[error("the code has expired")]
    Expired,
    /// A wrong code; the subject's live codes of that kind survive `attempts_left` more
    /// guesses (`Some(0)`: none).
    #[error("the code is incorrect")]
    WrongCode {
        /// Wrong guesses still to go; `None`, no limit.
        attempts_left: Option<u32>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OneTimeSecrets {
    /// One-time secrets over `auth`'s secret store, codes digested under `key`; links in the
    /// `ots_` token format, codes of six digits.
    pub fn new(auth: &Auth, key: CodeKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                key,
                link_format: TokenFormat::new("ots_").expect("a valid prefix"),
                digits: DEFAULT_CODE_DIGITS,
            }),
        }
    }

    /// The format of link secrets (default prefix `ots_`, with a checksum, so that a
    /// truncated link is refused before any store call).
    #[must_use]
    pub fn link_format(mut self, format: TokenFormat) -> Self {
        self.inner_mut().link_format = format;
        self
    }

    /// The length of codes, in digits (default 6).
    ///
    /// # Panics
    ///
    /// Outside 6..=9: fewer digits are guessed too easily within a handful of attempts (OWASP
    /// ASVS 5.0 V6.6.3 asks for at least 20 bits), more do not fit a `u32` draw.
    #[must_use]
    pub fn code_digits(mut self, digits: u32) -> Self {
        assert!(
            (6..=9).contains(&digits),
            "a one-time code has 6 to 9 digits"
        );
        self.inner_mut().digits = digits;
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configured before it is shared")
    }

    /// The configured code length.
    pub fn digits(&self) -> u32 {
        self.inner.digits
    }

    /// Issues a link secret: 256 random bits, stored as their SHA-256 digest.
    pub async fn issue_link(&self, request: SecretRequest) -> Result<IssuedLink, IssueSecretError> {
        let generated = self.inner.link_format.generate()?;
        let now = self.inner.auth.now();
        let secret = request.into_new_secret(generated.digest(), now);
        let record = self.inner.auth.secrets().insert_secret(secret).await?;
        Ok(IssuedLink {
            secret: generated.into_secret(),
            record,
        })
    }

    /// Redeems a link secret of `kind`: the record, exactly once.
    pub async fn redeem_link(
        &self,
        kind: SecretKind,
        presented: &str,
    ) -> Result<SecretRecord, RedeemError> {
        let parsed = self
            .inner
            .link_format
            .parse(presented)
            .map_err(|_| RedeemError::Invalid)?;
        let now = self.inner.auth.now();
        self.inner
            .auth
            .secrets()
            .consume_secret(kind, &parsed.digest(), now)
            .await?
            .ok_or(RedeemError::Invalid)
    }

    /// Issues a code of [`code_digits`](Self::code_digits) decimal digits for the request's
    /// subject, surviving [`DEFAULT_CODE_ATTEMPTS`] wrong guesses unless the request says
    /// otherwise, and stored as its keyed digest.
    pub async fn issue_code(&self, request: SecretRequest) -> Result<IssuedCode, IssueSecretError> {
        if request.subject == SecretSubject::Nobody {
            return Err(IssueSecretError::CodeWithoutSubject);
        }
        let mut request = request;
        request.attempts.get_or_insert(DEFAULT_CODE_ATTEMPTS);
        let mut draws = 0;
        loop {
            draws += 1;
            let code = random_code(self.inner.digits)?;
            let digest = self.inner.key.digest(request.kind, &request.subject, &code);
            let now = self.inner.auth.now();
            let secret = request.clone().into_new_secret(digest, now);
            match self.inner.auth.secrets().insert_secret(secret).await {
                Ok(record) => {
                    return Ok(IssuedCode {
                        code: TokenSecret::new(code),
                        record,
                    });
                }
                // The subject already holds a live code with these digits: draw again.
                Err(StoreError::Conflict(_)) if draws < CODE_DRAWS => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Redeems `subject`'s code of `kind`. A wrong code costs one attempt of each of the
    /// subject's live codes of that kind; a code out of attempts is dead even when right.
    /// Surrounding whitespace is ignored; anything but the configured number of digits is
    /// [`RedeemError::Invalid`] without a store call (and without costing an attempt: it
    /// cannot be right).
    pub async fn redeem_code(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        code: &str,
    ) -> Result<SecretRecord, RedeemError> {
        let code = code.trim();
        let well_formed =
            code.len() == self.inner.digits as usize && code.bytes().all(|b| b.is_ascii_digit());
        if !well_formed || *subject == SecretSubject::Nobody {
            return Err(RedeemError::Invalid);
        }
        let digest = self.inner.key.digest(kind, subject, code);
        let now = self.inner.auth.now();
        match self
            .inner
            .auth
            .secrets()
            .guess_secret(kind, subject, &digest, now)
            .await?
        {
            Guess::Right(record) => Ok(*record),
            Guess::Wrong { attempts_left } => Err(RedeemError::WrongCode { attempts_left }),
            Guess::Expired => Err(RedeemError::Expired),
            // `Guess` may grow; anything else redeems nothing.
            _ => Err(RedeemError::Invalid),
        }
    }

    /// Ends `subject`'s live secrets of `kind` (outstanding reset links after a password
    /// change); returns how many.
    pub async fn revoke(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
    ) -> Result<u64, StoreError> {
        let now = self.inner.auth.now();
        self.inner
            .auth
            .secrets()
            .revoke_secrets(kind, subject, now)
            .await
    }

    /// Deletes the secrets that expired or ended more than `retention` ago; returns how many.
    /// Run it now and then, as [`Auth::purge_tokens`].
    pub async fn purge(&self, retention: Duration) -> Result<u64, StoreError> {
        let before = crate::clock::sub(self.inner.auth.now(), retention);
        self.inner.auth.secrets().purge_secrets(before).await
    }
}

/// A uniformly random code of `digits` decimal digits, leading zeros kept.
fn random_code(digits: u32) -> Result<String, RandomnessUnavailable> {
    use rand::TryRng;
    let modulus = 10u32.pow(digits);
    // Rejection sampling: the largest multiple of `modulus` below 2^32 bounds the draws that
    // map onto every code equally often.
    let zone = u32::MAX - u32::MAX % modulus;
    loop {
        let mut bytes = [0u8; 4];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| RandomnessUnavailable)?;
        let draw = u32::from_le_bytes(bytes);
        if draw < zone {
            return Ok(format!(
                "{:0width$}",
                draw % modulus,
                width = digits as usize
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_digits_and_cover_the_range() {
        let mut first_digits = [0u32; 10];
        for _ in 0..2000 {
            let code = random_code(6).unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
            first_digits[usize::from(code.as_bytes()[0] - b'0')] += 1;
        }
        // Leading zeros are kept, and no leading digit is starved: each of the ten expects
        // 200 of 2000 draws; fewer than 100 has a probability below 1e-14.
        assert!(first_digits.iter().all(|&n| n >= 100), "{first_digits:?}");
        assert_eq!(random_code(9).unwrap().len(), 9);
    }

    #[test]
    #[should_panic(expected = "6 to 9 digits")]
    fn short_codes_are_refused() {
        let auth = Auth::builder(crate::store::MemoryStore::new()).build();
        let _ = OneTimeSecrets::new(&auth, CodeKey::new(&[1; 32]).unwrap()).code_digits(4);
    }
}
