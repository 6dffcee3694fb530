//! The opaque token format: `<prefix><43 base62 characters>[<6 base62 checksum characters>]`.
//!
//! The body carries 256 bits from the operating system's random source. The optional checksum is
//! the CRC-32 of prefix and body (the scheme GitHub uses for its tokens): a mistyped or truncated
//! token is rejected before any store or cache is consulted, and secret scanners can tell a real
//! token from look-alike text. The checksum is not a security control; the 256-bit body is.

use std::borrow::Cow;
use std::fmt;

use rand::TryRng;
use rand::rngs::SysRng;

use super::TokenDigest;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Base62 characters needed for 256 bits: 62^43 > 2^256 > 62^42.
const BODY_LEN: usize = 43;
/// Base62 characters needed for 32 bits: 62^6 > 2^32.
const CHECKSUM_LEN: usize = 6;
const MAX_PREFIX_LEN: usize = 16;

/// How the server's opaque secrets (API keys, refresh tokens, session ids, …) look.
///
/// ```
/// use portcullis::token::TokenFormat;
///
/// let format = TokenFormat::new("smtk_")?;
/// let token = format.generate()?;
/// assert!(token.secret().expose().starts_with("smtk_"));
/// assert_eq!(token.secret().expose().len(), format.token_len());
/// assert!(format.parse(token.secret().expose()).is_ok());
///
/// // One changed character fails the checksum without touching any store.
/// let mut typo = token.secret().expose().to_owned();
/// let last = typo.pop().unwrap();
/// typo.push(if last == 'a' { 'b' } else { 'a' });
/// assert!(format.parse(&typo).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: Cow<'static, str>,
    checksum: bool,
}

impl TokenFormat {
    /// A format with the given prefix and a checksum.
    ///
    /// The prefix is 1 to 16 ASCII letters, digits, `_` or `-` (e.g. `smtk_`, `kk-`).
    pub fn new(prefix: impl Into<Cow<'static, str>>) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.into();
        let valid_chars = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !valid_chars {
            return Err(InvalidPrefix(prefix.into_owned()));
        }
        Ok(Self {
            prefix,
            checksum: true,
        })
    }

    /// Turns the checksum off, e.g. to accept tokens issued by an older system without one.
    #[must_use]
    pub fn without_checksum(mut self) -> Self {
        self.checksum = false;
        self
    }

    /// The prefix every token of this format starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The exact length of every token of this format, in bytes.
    pub fn token_len(&self) -> usize {
        self.prefix.len() + BODY_LEN + if self.checksum { CHECKSUM_LEN } else { 0 }
    }

    /// Whether `raw` claims to be a token of this format (it starts with the prefix).
    ///
    /// A recognised token that then fails [`parse`](Self::parse) is a bad credential, not
    /// someone else's: credential sources use this to decide which of them answers.
    pub fn recognizes(&self, raw: &str) -> bool {
        raw.starts_with(&*self.prefix)
    }

    /// Generates a fresh token from 32 bytes of operating-system randomness.
    pub fn generate(&self) -> Result<GeneratedToken, RandomnessUnavailable> {
        let mut entropy = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut entropy)
            .map_err(|_| RandomnessUnavailable)?;
        Ok(self.encode_entropy(entropy))
    }

    fn encode_entropy(&self, entropy: [u8; 32]) -> GeneratedToken {
        let mut raw = String::with_capacity(self.token_len());
        raw.push_str(&self.prefix);
        raw.push_str(&encode_base62::<BODY_LEN>(&entropy));
        if self.checksum {
            let checksum = crc32fast::hash(raw.as_bytes());
            raw.push_str(&encode_base62::<CHECKSUM_LEN>(&checksum.to_be_bytes()));
        }
        GeneratedToken {
            digest: TokenDigest::of(&raw),
            hint: self.hint(&raw),
            secret: TokenSecret::new(raw),
        }
    }

    /// Checks that `raw` is well formed: prefix, length, alphabet and checksum.
    ///
    /// This is a syntax check only; whether the token exists is the store's answer.
    pub fn parse<'a>(&self, raw: &'a str) -> Result<ParsedToken<'a>, TokenFormatError> {
        let rest = raw
            .strip_prefix(&*self.prefix)
            .ok_or(TokenFormatError::WrongPrefix)?;
        if raw.len() != self.token_len() {
            return Err(TokenFormatError::WrongLength);
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::InvalidCharacter);
        }
        if self.checksum {
            let (signed, checksum) = raw.split_at(raw.len() - CHECKSUM_LEN);
            if decode_base62(checksum) != Some(u64::from(crc32fast::hash(signed.as_bytes()))) {
                return Err(TokenFormatError::BadChecksum);
            }
        }
        Ok(ParsedToken { raw })
    }

    /// The display form shown in listings: prefix, an ellipsis and the last four characters.
    pub fn hint(&self, raw: &str) -> String {
        let tail_start = raw
            .len()
            .saturating_sub(4)
            .max(self.prefix.len().min(raw.len()));
        let tail = raw.get(tail_start..).unwrap_or("");
        format!("{}…{}", self.prefix, tail)
    }
}

/// Encodes `bytes` (big-endian) as exactly `N` base62 digits, most significant first.
///
/// `N` must be large enough for the input; the callers pair 32 bytes with 43 digits and 4 bytes
/// with 6 digits.
fn encode_base62<const N: usize>(bytes: &[u8]) -> String {
    // Long division of the big-endian number by 62, one output digit per round.
    let mut number: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
    let mut digits = [b'0'; N];
    for slot in digits.iter_mut().rev() {
        let mut remainder = 0u32;
        for limb in &mut number {
            let acc = (remainder << 8) | *limb;
            *limb = acc / 62;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    debug_assert!(
        number.iter().all(|&limb| limb == 0),
        "base62 width too small"
    );
    digits.iter().map(|&d| char::from(d)).collect()
}

/// The value of up to ten base62 digits (most significant first); `None` for any other
/// character. Fixed-width encodings are unique, so comparing values compares encodings.
fn decode_base62(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |value, digit| {
        let digit = match digit {
            b'0'..=b'9' => digit - b'0',
            b'A'..=b'Z' => digit - b'A' + 10,
            b'a'..=b'z' => digit - b'a' + 36,
            _ => return None,
        };
        Some(value * 62 + u64::from(digit))
    })
}

/// A token that passed [`TokenFormat::parse`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    raw: &'a str,
}

impl ParsedToken<'_> {
    /// The digest under which the store keeps this token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.raw)
    }
}

impl fmt::Debug for ParsedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParsedToken(..)")
    }
}

/// A newly generated token: the secret to show once, and what the store keeps.
#[derive(Debug)]
pub struct GeneratedToken {
    secret: TokenSecret,
    digest: TokenDigest,
    hint: String,
}

impl GeneratedToken {
    /// The secret, to hand to the client exactly once.
    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }

    /// Consumes the token, keeping only the secret.
    pub fn into_secret(self) -> TokenSecret {
        self.secret
    }

    /// The digest the store keeps.
    pub fn digest(&self) -> TokenDigest {
        self.digest
    }

    /// The display hint (prefix + last four characters).
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

/// A generated token's secret: a [`Secret`](crate::Secret), whose `Debug` output is redacted.
pub type TokenSecret = crate::Secret;

/// Why a string is not a token of the expected format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// It does not start with the format's prefix.
    #[error("token has the wrong prefix")]
    WrongPrefix,
    /// It is longer or shorter than every token of the format.
    #[error("token has the wrong length")]
    WrongLength,
    /// It contains a character outside the base62 alphabet.
    #[error("token contains an invalid character")]
    InvalidCharacter,
    /// Its checksum does not match: a typo, a truncation or a forgery.
    #[error("token checksum does not match")]
    BadChecksum,
}

/// A token prefix that is empty, longer than 16 bytes, or has characters outside `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid token prefix {0:?}: use 1 to 16 ASCII letters, digits, '_' or '-'")]
pub struct InvalidPrefix(String);

/// The operating system's random source failed; no token was generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator is unavailable")]
pub struct RandomnessUnavailable;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn format() -> TokenFormat {
        TokenFormat::new("smtk_").unwrap()
    }

    #[test]
    fn a_format_recognizes_its_own_prefix_only() {
        let format = format();
        assert_eq!(format.prefix(), "smtk_");
        let token = format.generate().unwrap().into_secret().into_exposed();
        assert!(format.recognizes(&token));
        assert!(
            format.recognizes("smtk_"),
            "a bare prefix is ours, and malformed"
        );
        for other in ["kk-abc", "smtk", "SMTK_abc", "eyJhbGciOiJIUzI1NiJ9", ""] {
            assert!(!format.recognizes(other), "{other:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let generated = format().generate().unwrap();
        let secret = generated.secret().expose().to_owned();
        let parsed = format().parse(&secret).unwrap();
        assert_eq!(format!("{parsed:?}"), "ParsedToken(..)");
        assert!(!format!("{generated:?}").contains(&secret[5..]));
    }

    #[test]
    fn base62_encodes_extremes_at_fixed_width() {
        assert_eq!(encode_base62::<43>(&[0; 32]), "0".repeat(43));
        assert_eq!(encode_base62::<6>(&[0, 0, 0, 61]), "00000z");
        assert_eq!(encode_base62::<6>(&[0, 0, 0, 62]), "000010");
        // 2^32 - 1 = 4_294_967_295 = "4gfFC3" in this alphabet.
        assert_eq!(encode_base62::<6>(&[0xff; 4]), "4gfFC3");
        let max = encode_base62::<43>(&[0xff; 32]);
        assert_eq!(max.len(), 43);
        assert_ne!(max.as_bytes()[0], b'0', "2^256-1 needs all 43 digits");
    }

    #[test]
    fn base62_decoding_inverts_encoding() {
        for value in [0u32, 1, 61, 62, 3844, 0xdead_beef, u32::MAX] {
            let encoded = encode_base62::<6>(&value.to_be_bytes());
            assert_eq!(decode_base62(&encoded), Some(u64::from(value)), "{encoded}");
        }
        assert_eq!(decode_base62("00-000"), None);
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = format().generate().unwrap();
        let raw = token.secret().expose();
        assert_eq!(raw.len(), 5 + 43 + 6);
        assert!(raw[5..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(token.digest(), TokenDigest::of(raw));
        assert_eq!(token.hint(), format!("smtk_…{}", &raw[raw.len() - 4..]));
    }

    #[test]
    fn two_generated_tokens_differ() {
        let a = format().generate().unwrap();
        let b = format().generate().unwrap();
        assert_ne!(a.secret(), b.secret());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let token = format().generate().unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(token.secret().expose()));
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn parse_reports_each_kind_of_malformation() {
        let f = format();
        let good = f.generate().unwrap().into_secret().into_exposed();
        assert!(f.parse(&good).is_ok());
        assert_eq!(f.parse("kk-abc"), Err(TokenFormatError::WrongPrefix));
        assert_eq!(
            f.parse(&good[..good.len() - 1]),
            Err(TokenFormatError::WrongLength)
        );
        assert_eq!(
            f.parse(&format!("{good}0")),
            Err(TokenFormatError::WrongLength)
        );
        let mut bad_char = good.clone();
        bad_char.replace_range(10..11, "-");
        assert_eq!(f.parse(&bad_char), Err(TokenFormatError::InvalidCharacter));
        let multibyte = format!("smtk_{}", "é".repeat(27));
        assert!(f.parse(&multibyte).is_err());
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(TokenFormat::new("").is_err());
        assert!(TokenFormat::new("has space").is_err());
        assert!(TokenFormat::new("x".repeat(17)).is_err());
        assert!(TokenFormat::new("kk-").is_ok());
    }

    #[test]
    fn without_checksum_accepts_any_alphanumeric_body() {
        let f = format().without_checksum();
        let raw = format!("smtk_{}", "a".repeat(43));
        assert!(f.parse(&raw).is_ok());
        assert!(format().parse(&format!("{raw}aaaaaa")).is_err());
    }

    proptest! {
        #[test]
        fn generated_entropy_round_trips_through_parse(entropy in any::<[u8; 32]>()) {
            let f = format();
            let token = f.encode_entropy(entropy);
            prop_assert!(f.parse(token.secret().expose()).is_ok());
        }

        #[test]
        fn any_single_character_change_is_rejected(
            entropy in any::<[u8; 32]>(),
            position in 5usize..54,
            replacement in proptest::sample::select(ALPHABET.to_vec()),
        ) {
            let f = format();
            let raw = f.encode_entropy(entropy).into_secret().into_exposed();
            prop_assume!(raw.as_bytes()[position] != replacement);
            let mut changed = raw.into_bytes();
            changed[position] = replacement;
            let changed = String::from_utf8(changed).unwrap();
            prop_assert_eq!(f.parse(&changed), Err(TokenFormatError::BadChecksum));
        }

        #[test]
        fn parse_never_panics(raw in ".{0,80}") {
            let _ = format().parse(&raw);
            let _ = format().without_checksum().parse(&raw);
        }
    }
}
