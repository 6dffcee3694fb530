//! SHA-256 digests of secrets: the only form in which a secret is stored or cached.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a secret token.
///
/// Stores keep this instead of the token: a leaked database does not leak usable
/// credentials, and 256 bits of token entropy make a digest lookup safe without a slow hash.
/// Equality is constant time; `Debug` shows only the first four bytes.
///
/// ```
/// use portcullis::token::TokenDigest;
///
/// let a = TokenDigest::of("pc_secret");
/// assert_eq!(a, TokenDigest::of("pc_secret"));
/// assert_ne!(a, TokenDigest::of("pc_Secret"));
/// assert_eq!(TokenDigest::from_hex(&a.to_hex()), Some(a));
/// ```
#[derive(Clone, Copy, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Digests a presented secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// The digest, its first eight bytes mixed with `tag`: a distinct cache key for each tag
    /// (the mix is a bijection per tag), for caches shared by several verifiers.
    pub(crate) fn tagged(mut self, tag: u64) -> Self {
        for (byte, mask) in self.0.iter_mut().zip(tag.to_le_bytes()) {
            *byte ^= mask;
        }
        self
    }

    /// Wraps a digest read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a digest read back from a store as a byte slice; `None` unless it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal, for stores that keep digests as text.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0
            .iter()
            .fold(String::with_capacity(64), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
    }

    /// Parses [`to_hex`](Self::to_hex) output (either case); `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *slot = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Self(out))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl PartialEq for TokenDigest {
    /// Constant time: the words' differences are folded without a branch and only the folded
    /// word meets `subtle`'s barrier, one barrier per comparison instead of one per byte (the
    /// cache compares keys on every hit).
    fn eq(&self, other: &Self) -> bool {
        let difference = self
            .0
            .chunks_exact(8)
            .zip(other.0.chunks_exact(8))
            .fold(0u64, |acc, (a, b)| acc | (word(a) ^ word(b)));
        difference.ct_eq(&0).into()
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(bytes);
    u64::from_ne_bytes(word)
}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_32_byte_slices_are_digests() {
        let digest = TokenDigest::of("abc");
        assert_eq!(TokenDigest::from_slice(digest.as_bytes()), Some(digest));
        assert_eq!(TokenDigest::from_slice(&digest.as_bytes()[..31]), None);
        assert_eq!(TokenDigest::from_slice(&[0; 33]), None);
        assert_eq!(TokenDigest::from_slice(&[]), None);
    }

    #[test]
    fn digest_matches_the_fips_180_2_test_vector() {
        assert_eq!(
            TokenDigest::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_output_does_not_reveal_the_whole_digest() {
        let digest = TokenDigest::of("abc");
        let shown = format!("{digest:?}");
        assert_eq!(shown, "TokenDigest(ba7816bf…)");
    }

    #[test]
    fn malformed_hex_is_rejected() {
        assert!(TokenDigest::from_hex("").is_none());
        assert!(TokenDigest::from_hex(&"g".repeat(64)).is_none());
        assert!(TokenDigest::from_hex(&"a".repeat(63)).is_none());
        assert!(TokenDigest::from_slice(&[0; 31]).is_none());
    }

    proptest! {
        #[test]
        fn equality_is_bytewise_equality(a in any::<[u8; 32]>(), flip in 0usize..256) {
            let b = {
                let mut b = a;
                b[flip / 8] ^= 1 << (flip % 8);
                b
            };
            prop_assert_eq!(TokenDigest::from_bytes(a), TokenDigest::from_bytes(a));
            prop_assert_ne!(TokenDigest::from_bytes(a), TokenDigest::from_bytes(b));
        }

        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>()) {
            let digest = TokenDigest::from_bytes(bytes);
            prop_assert_eq!(TokenDigest::from_hex(&digest.to_hex()), Some(digest));
            prop_assert_eq!(TokenDigest::from_hex(&digest.to_hex().to_uppercase()), Some(digest));
        }

        #[test]
        fn distinct_secrets_have_distinct_digests(a in ".{0,64}", b in ".{0,64}") {
            prop_assume!(a != b);
            prop_assert_ne!(TokenDigest::of(&a), TokenDigest::of(&b));
        }
    }
}
