//! Keyed digests for low-entropy secrets: six-digit codes, recovery codes.

use std::fmt;

use aws_lc_rs::hmac;

use super::TokenDigest;
use crate::store::{SecretKind, SecretSubject};

/// The shortest [`CodeKey`] accepted, in bytes.
pub const MIN_CODE_KEY_LEN: usize = 32;

/// The server key under which low-entropy secrets are digested: HMAC-SHA-256 over the
/// secret's kind, its subject and the code.
///
/// A plain SHA-256 of a six-digit code is undone by hashing the million candidates; under a
/// key that is not in the database, a leaked table gives nothing away. The subject in the
/// input means that two subjects holding the same code store different digests, so codes
/// never collide across users or addresses, and a code is only ever right for its subject.
///
/// The key comes from configuration, like a JWT secret: keep it at least as safe.
///
/// ```
/// use portcullis::store::{SecretKind, SecretSubject};
/// use portcullis::token::CodeKey;
///
/// let key = CodeKey::new(&[7; 32])?;
/// let ada = SecretSubject::email("ada@example.com");
/// let bob = SecretSubject::email("bob@example.com");
/// let digest = key.digest(SecretKind::MAGIC_LINK, &ada, "123456");
/// assert_eq!(digest, key.digest(SecretKind::MAGIC_LINK, &SecretSubject::email("ADA@example.com"), "123456"));
/// assert_ne!(digest, key.digest(SecretKind::MAGIC_LINK, &bob, "123456"));
/// assert_ne!(digest, key.digest(SecretKind::RECOVERY_CODE, &ada, "123456"));
/// # Ok::<(), portcullis::token::WeakCodeKey>(())
/// ```
pub struct CodeKey(hmac::Key);

/// A [`CodeKey`] shorter than [`MIN_CODE_KEY_LEN`] bytes.
#[derive(Debug, thiserror::Error)]
#[error("a code key must be at least {MIN_CODE_KEY_LEN} bytes, not {0}")]
pub struct WeakCodeKey(pub usize);

impl CodeKey {
    /// A key from at least [`MIN_CODE_KEY_LEN`] bytes of secret.
    pub fn new(key: &[u8]) -> Result<Self, WeakCodeKey> {
        if key.len() < MIN_CODE_KEY_LEN {
            return Err(WeakCodeKey(key.len()));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, key)))
    }

    /// The digest `code` is stored and looked up by, for `subject`'s secret of `kind`.
    pub fn digest(&self, kind: SecretKind, subject: &SecretSubject, code: &str) -> TokenDigest {
        let mut context = hmac::Context::with_key(&self.0);
        // Each field is length-prefixed, so no two (kind, subject, code) triples share an
        // input however their bytes are arranged.
        let subject = subject.key();
        for field in [
            kind.as_str().as_bytes(),
            subject.as_deref().unwrap_or_default().as_bytes(),
            code.as_bytes(),
        ] {
            context.update(&u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
            context.update(field);
        }
        let tag = context.sign();
        let bytes = <[u8; 32]>::try_from(tag.as_ref()).expect("HMAC-SHA-256 tags are 32 bytes");
        TokenDigest::from_bytes(bytes)
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserId;

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(CodeKey::new(&[1; 31]), Err(WeakCodeKey(31))));
        assert!(CodeKey::new(&[1; 32]).is_ok());
    }

    #[test]
    fn the_digest_is_rfc_2104_hmac_sha256_of_the_framed_fields() {
        // Computed independently: the HMAC-SHA-256 of the framing written out by hand.
        let key = [0x0b; 32];
        let mut framed = Vec::new();
        for field in [&b"invite"[..], b"user:42", b"000000"] {
            framed.extend_from_slice(&(field.len() as u64).to_be_bytes());
            framed.extend_from_slice(field);
        }
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &framed);
        let digest = CodeKey::new(&key).unwrap().digest(
            SecretKind::INVITE,
            &SecretSubject::User(UserId(42)),
            "000000",
        );
        assert_eq!(digest.as_bytes().as_slice(), expected.as_ref());
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let key = CodeKey::new(&[3; 32]).unwrap();
        let kind = SecretKind::custom("a");
        // Without framing, "user:1" + "23" and "user:12" + "3" would be the same input.
        assert_ne!(
            key.digest(kind, &SecretSubject::User(UserId(1)), "23"),
            key.digest(kind, &SecretSubject::User(UserId(12)), "3")
        );
        assert_ne!(
            key.digest(kind, &SecretSubject::Nobody, "user:1"),
            key.digest(kind, &SecretSubject::User(UserId(1)), "")
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        assert_eq!(
            format!("{:?}", CodeKey::new(&[9; 32]).unwrap()),
            "CodeKey([redacted])"
        );
    }
}
