//! Signing and verification keys, selected by `kid`.

use std::fmt;

use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use super::jws::{self, VerifiedJws};
use crate::error::InvalidToken;

/// One JWT key: its algorithm, optional `kid`, a verification key and, for the signing key, the
/// private half.
///
/// Constructors enforce key sizes (RFC 7518 §3.2: an HMAC key at least as long as the hash,
/// RSA at least 2048 bits) and check that the key actually works with its algorithm, so a
/// mismatched curve or a truncated secret fails at start-up rather than at the first request.
///
/// ```
/// use portcullis::token::jwt::JwtKey;
///
/// let key = JwtKey::hs256(&[7u8; 32])?.kid("2026-11");
/// assert_eq!(key.key_id(), Some("2026-11"));
/// assert!(JwtKey::hs256(b"too short").is_err());
/// # Ok::<(), portcullis::token::jwt::KeyError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    alg: Algorithm,
    verify: Verifier,
    sign: Option<EncodingKey>,
}

/// How a key checks signatures.
#[derive(Clone)]
enum Verifier {
    /// HMAC with its key schedule (the padded inner and outer blocks) computed once, rather than
    /// for every token as `jsonwebtoken::crypto::verify` does (≈ 240 ns per first-seen token
    /// here). Boxed: the expanded key is over a kilobyte.
    Hmac(Box<aws_lc_rs::hmac::Key>),
    /// Public-key algorithms, through jsonwebtoken.
    Public(DecodingKey),
}

impl Verifier {
    fn new(alg: Algorithm, key: DecodingKey) -> Result<Self, KeyError> {
        let hmac = match alg {
            Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
            Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
            Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
            _ => return Ok(Self::Public(key)),
        };
        let secret = key.try_get_as_bytes().map_err(invalid)?;
        Ok(Self::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
            hmac, secret,
        ))))
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("can_sign", &self.sign.is_some())
            .finish()
    }
}

/// Why a key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret shorter than its hash output (RFC 7518 §3.2).
    #[error("{alg:?} needs a secret of at least {min} bytes, got {got}")]
    SecretTooShort {
        /// The algorithm.
        alg: Algorithm,
        /// Its minimum secret length.
        min: usize,
        /// The length given.
        got: usize,
    },
    /// An RSA modulus shorter than 2048 bits.
    #[error("RSA keys must have at least 2048 bits, got {0}")]
    RsaTooSmall(usize),
    /// The algorithm does not fit the key type, or is not supported.
    #[error("algorithm {0:?} does not fit this key")]
    WrongAlgorithm(Algorithm),
    /// The key material could not be parsed or did not sign and verify a probe.
    #[error("invalid key: {0}")]
    Invalid(String),
    /// A JWK that is not meant for signatures (`use: enc`, `key_ops` without `verify`) or has
    /// no usable `alg`.
    #[error("JWK is not a signature verification key: {0}")]
    NotForSignatures(&'static str),
    /// Two keys share a `kid`, or several keys are configured and one has none.
    #[error("ambiguous key ids: {0}")]
    AmbiguousKid(&'static str),
    /// A key set mixing HMAC secrets with public keys.
    #[error("a key set cannot mix HMAC secrets and public keys")]
    MixedKeySet,
    /// An RSA key with a public exponent that is not an odd number of at least 3, or whose
    /// modulus has the ROCA fingerprint (CVE-2017-15361).
    #[error("weak RSA key: {0}")]
    WeakRsaKey(&'static str),
    /// A key set with no signing key was asked to sign.
    #[error("no signing key configured")]
    NoSigningKey,
}

fn invalid(error: impl fmt::Display) -> KeyError {
    KeyError::Invalid(error.to_string())
}

fn min_hmac_len(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::HS256 => Some(32),
        Algorithm::HS384 => Some(48),
        Algorithm::HS512 => Some(64),
        _ => None,
    }
}

impl JwtKey {
    /// An HMAC key (`HS256`, `HS384`, `HS512`) used for both signing and verification.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let min = min_hmac_len(alg).ok_or(KeyError::WrongAlgorithm(alg))?;
        if secret.len() < min {
            return Err(KeyError::SecretTooShort {
                alg,
                min,
                got: secret.len(),
            });
        }
        Ok(Self {
            kid: None,
            alg,
            verify: Verifier::new(alg, DecodingKey::from_secret(secret))?,
            sign: Some(EncodingKey::from_secret(secret)),
        })
    }

    /// An HS256 key; the secret must be at least 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        Self::hmac(Algorithm::HS256, secret)
    }

    /// A signing key from a PKCS#8 PEM private key: `EdDSA` (Ed25519), `ES256`/`ES384`
    /// (P-256/P-384) or `RS*`/`PS*` (RSA ≥ 2048 bits). The public half is derived from it.
    pub fn private_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let sign = match alg.family() {
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem),
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Hmac => return Err(KeyError::WrongAlgorithm(alg)),
        }
        .map_err(invalid)?;
        let public = Jwk::from_encoding_key(&sign, alg).map_err(invalid)?;
        check_rsa_size(&public)?;
        let verify = DecodingKey::from_jwk(&public).map_err(invalid)?;
        let key = Self {
            kid: None,
            alg,
            verify: Verifier::new(alg, verify)?,
            sign: Some(sign),
        };
        key.probe()?;
        Ok(key)
    }

    /// A verification-only key from a PEM public key (SPKI), for tokens another party signs.
    pub fn public_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let verify = match alg.family() {
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Hmac => return Err(KeyError::WrongAlgorithm(alg)),
        }
        .map_err(invalid)?;
        if alg.family() == AlgorithmFamily::Rsa {
            check_rsa_size(&Jwk::from_decoding_key(&verify, Some(alg)).map_err(invalid)?)?;
        }
        Ok(Self {
            kid: None,
            alg,
            verify: Verifier::new(alg, verify)?,
            sign: None,
        })
    }

    /// A verification key from a JSON Web Key (RFC 7517). The JWK must name its `alg`, must
    /// not be an encryption key, and its `kid` (if any) is kept.
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        let jwk: Jwk = serde_json::from_str(jwk).map_err(invalid)?;
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return Err(KeyError::NotForSignatures("use is not \"sig\""));
        }
        if let Some(ops) = &common.key_operations
            && !ops.iter().any(allows_verify)
        {
            return Err(KeyError::NotForSignatures("key_ops lacks \"verify\""));
        }
        let alg = Algorithm::try_from(
            common
                .key_algorithm
                .ok_or(KeyError::NotForSignatures("no alg"))?,
        )
        .map_err(|_| KeyError::NotForSignatures("alg is not a supported signature algorithm"))?;
        check_curve(&jwk, alg)?;
        let verify = DecodingKey::from_jwk(&jwk).map_err(invalid)?;
        if verify.family() != alg.family() {
            return Err(KeyError::WrongAlgorithm(alg));
        }
        if let Some(min) = min_hmac_len(alg) {
            let got = verify.try_get_as_bytes().map_err(invalid)?.len();
            if got < min {
                return Err(KeyError::SecretTooShort { alg, min, got });
            }
        }
        check_rsa_size(&jwk)?;
        Ok(Self {
            kid: common.key_id.clone(),
            alg,
            verify: Verifier::new(alg, verify)?,
            sign: None,
        })
    }

    /// Sets the key id, written into the header of tokens this key signs and used to select
    /// it when verifying.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this key holds a private half.
    pub fn can_sign(&self) -> bool {
        self.sign.is_some()
    }

    fn probe(&self) -> Result<(), KeyError> {
        let Some(sign) = &self.sign else {
            return Ok(());
        };
        let message = b"portcullis key probe";
        let signature = jsonwebtoken::crypto::sign(message, sign, self.alg).map_err(invalid)?;
        let decoded =
            jws::decode_part(&signature).map_err(|_| KeyError::WrongAlgorithm(self.alg))?;
        if self.signature_matches(message, &signature, &decoded) {
            Ok(())
        } else {
            Err(KeyError::WrongAlgorithm(self.alg))
        }
    }

    /// Whether `signature` (as sent, base64url, and decoded) signs `message` under this key.
    /// The HMAC comparison is constant time (aws-lc's `hmac::verify`).
    pub(super) fn signature_matches(&self, message: &[u8], encoded: &str, decoded: &[u8]) -> bool {
        match &self.verify {
            Verifier::Hmac(key) => aws_lc_rs::hmac::verify(key, message, decoded).is_ok(),
            Verifier::Public(key) => {
                jsonwebtoken::crypto::verify(encoded, message, key, self.alg).unwrap_or(false)
            }
        }
    }

    pub(crate) fn encoding(&self) -> Option<&EncodingKey> {
        self.sign.as_ref()
    }
}

/// An elliptic-curve JWK's `crv` must be the curve its `alg` is defined on (RFC 7518 §3.4,
/// RFC 8037 §3.1); otherwise the coordinates would be read as a point of another curve.
fn check_curve(jwk: &Jwk, alg: Algorithm) -> Result<(), KeyError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let curve = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(params) => &params.curve,
        AlgorithmParameters::OctetKeyPair(params) => &params.curve,
        _ => return Ok(()),
    };
    let expected = match alg {
        Algorithm::ES256 => EllipticCurve::P256,
        Algorithm::ES384 => EllipticCurve::P384,
        Algorithm::EdDSA => EllipticCurve::Ed25519,
        _ => return Err(KeyError::WrongAlgorithm(alg)),
    };
    if *curve == expected {
        Ok(())
    } else {
        Err(KeyError::WrongAlgorithm(alg))
    }
}

/// `key_ops` names operations one per array element; some published keys (RFC 7520 test keys
/// among them) put several in one comma-separated string, which is read the same way.
fn allows_verify(op: &KeyOperations) -> bool {
    match op {
        KeyOperations::Verify => true,
        KeyOperations::Other(list) => list.split(',').any(|item| item.trim() == "verify"),
        _ => false,
    }
}

fn check_rsa_size(jwk: &Jwk) -> Result<(), KeyError> {
    use base64::Engine as _;
    let jsonwebtoken::jwk::AlgorithmParameters::RSA(params) = &jwk.algorithm else {
        return Ok(());
    };
    let decode = |b64: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(invalid)
    };
    let modulus = decode(&params.n)?;
    let exponent = decode(&params.e)?;
    let significant = |bytes: &[u8]| {
        let first = bytes.iter().position(|&b| b != 0);
        first.map_or(0, |i| {
            (bytes.len() - i) * 8 - bytes[i].leading_zeros() as usize
        })
    };
    let bits = significant(&modulus);
    if bits < 2048 {
        return Err(KeyError::RsaTooSmall(bits));
    }
    let exponent_is_odd = exponent.last().is_some_and(|b| b & 1 == 1);
    if significant(&exponent) < 2 || !exponent_is_odd {
        return Err(KeyError::WeakRsaKey(
            "public exponent must be odd and at least 3",
        ));
    }
    if has_roca_fingerprint(&modulus) {
        return Err(KeyError::WeakRsaKey(
            "modulus has the ROCA fingerprint (CVE-2017-15361)",
        ));
    }
    Ok(())
}

/// The ROCA test (Nemec et al., CCS 2017): moduli generated by the vulnerable Infineon library
/// are, modulo each of these small primes, a power of 65537. A random modulus passes all of
/// them with negligible probability.
fn has_roca_fingerprint(modulus: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = modulus
            .iter()
            .fold(0u32, |acc, &byte| ((acc << 8) | u32::from(byte)) % p);
        // Walk the cyclic subgroup generated by 65537 mod p.
        let generator = 65_537 % p;
        let mut power = 1u32;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
            if power == 1 {
                break;
            }
        }
        false
    })
}

/// The keys an application signs and verifies with: one signing key and any number of older
/// or foreign verification keys (key rotation).
///
/// With more than one key every key needs a distinct `kid`, and a token is verified only by
/// the key its `kid` names. A token without `kid` is verified only by a single-key set.
///
/// ```
/// use portcullis::token::jwt::{JwtKey, JwtKeys};
///
/// let current = JwtKey::hs256(&[1u8; 32])?.kid("2026-11");
/// let previous = JwtKey::hs256(&[2u8; 32])?.kid("2026-10");
/// let keys = JwtKeys::new(current)?.also_verify(previous)?;
/// assert_eq!(keys.len(), 2);
/// # Ok::<(), portcullis::token::jwt::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtKeys {
    keys: Vec<JwtKey>,
    signing: Option<usize>,
}

impl JwtKeys {
    /// A key set that signs with `signing` (which must hold a private half).
    pub fn new(signing: JwtKey) -> Result<Self, KeyError> {
        if !signing.can_sign() {
            return Err(KeyError::NoSigningKey);
        }
        Ok(Self {
            keys: vec![signing],
            signing: Some(0),
        })
    }

    /// A key set that only verifies (tokens are signed elsewhere).
    pub fn verify_only(key: JwtKey) -> Self {
        Self {
            keys: vec![key],
            signing: None,
        }
    }

    /// Adds a verification key, e.g. the previous signing key during a rotation.
    ///
    /// HMAC secrets and public keys cannot share a set: a mixed set is what algorithm
    /// confusion attacks exploit (RFC 8725 §2.1), so it is refused outright.
    pub fn also_verify(mut self, key: JwtKey) -> Result<Self, KeyError> {
        let hmac = key.alg.family() == AlgorithmFamily::Hmac;
        if self
            .keys
            .iter()
            .any(|k| (k.alg.family() == AlgorithmFamily::Hmac) != hmac)
        {
            return Err(KeyError::MixedKeySet);
        }
        if key.kid.is_none() || self.keys.iter().any(|k| k.kid.is_none()) {
            return Err(KeyError::AmbiguousKid(
                "every key of a multi-key set needs a kid",
            ));
        }
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(KeyError::AmbiguousKid("two keys share a kid"));
        }
        self.keys.push(key);
        Ok(self)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn signing_key(&self) -> Result<&JwtKey, KeyError> {
        self.signing
            .and_then(|i| self.keys.get(i))
            .ok_or(KeyError::NoSigningKey)
    }

    /// The key a token's `kid` selects: the key with that id, or for a token without `kid`
    /// the only key of a single-key set (never a guess among several).
    pub(super) fn find(&self, kid: Option<&str>) -> Option<&JwtKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|key| key.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }

    /// Verifies a compact JWS against these keys and returns its payload, without looking at
    /// any claim: the signature layer on its own (for test vectors and foreign tokens).
    ///
    /// Rejects: more than `max_len` bytes, anything but three base64url parts, a malformed or
    /// `crit`-bearing header, an unknown `kid`, an `alg` other than the selected key's, and a
    /// signature that does not verify.
    pub fn verify_signature(&self, token: &str, max_len: usize) -> Result<Vec<u8>, InvalidToken> {
        self.verify_jws(token, max_len).map(|jws| jws.payload)
    }

    pub(crate) fn verify_jws(
        &self,
        token: &str,
        max_len: usize,
    ) -> Result<VerifiedJws, InvalidToken> {
        jws::verify(token, max_len, |kid| self.find(kid))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    const ES256: &[u8] = include_bytes!("../../../tests/keys/es256.pem");
    const ES384: &[u8] = include_bytes!("../../../tests/keys/es384.pem");
    const ED25519: &[u8] = include_bytes!("../../../tests/keys/ed25519.pem");

    /// The public JWK of a private PEM key, as JSON to tamper with.
    fn public_jwk(alg: Algorithm, pem: &[u8]) -> Value {
        let sign = match alg.family() {
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_ec_pem(pem),
        };
        serde_json::to_value(Jwk::from_encoding_key(&sign.unwrap(), alg).unwrap()).unwrap()
    }

    fn from_jwk(jwk: &Value) -> Result<JwtKey, KeyError> {
        JwtKey::from_jwk(&jwk.to_string())
    }

    #[test]
    fn rfc7518_3_4_and_rfc8037_3_1_a_curve_key_must_be_on_its_algorithms_curve() {
        let es384 = public_jwk(Algorithm::ES384, ES384);
        assert_eq!(from_jwk(&es384).unwrap().algorithm(), Algorithm::ES384);
        let eddsa = public_jwk(Algorithm::EdDSA, ED25519);
        assert_eq!(from_jwk(&eddsa).unwrap().algorithm(), Algorithm::EdDSA);

        let mut p384_as_es256 = es384.clone();
        p384_as_es256["alg"] = json!("ES256");
        assert_eq!(
            from_jwk(&p384_as_es256).err(),
            Some(KeyError::WrongAlgorithm(Algorithm::ES256))
        );
        // An octet key pair that names another curve is not an Ed25519 key, whatever its `x`.
        let mut okp_on_p256 = eddsa;
        okp_on_p256["crv"] = json!("P-256");
        assert_eq!(
            from_jwk(&okp_on_p256).err(),
            Some(KeyError::WrongAlgorithm(Algorithm::EdDSA))
        );
    }

    #[test]
    fn rfc7517_4_3_key_ops_must_allow_verify() {
        let jwk = public_jwk(Algorithm::ES256, ES256);
        for (ops, allowed) in [
            (json!(["verify"]), true),
            (json!(["sign", "verify"]), true),
            (json!(["sign, verify"]), true),
            (json!(["sign"]), false),
            (json!(["encrypt", "wrapKey"]), false),
            (json!(["verified"]), false),
            (json!([]), false),
        ] {
            let mut jwk = jwk.clone();
            jwk["key_ops"] = ops.clone();
            let result = from_jwk(&jwk);
            assert_eq!(result.is_ok(), allowed, "{ops}: {:?}", result.err());
        }
        let verify_only = from_jwk(&jwk).unwrap();
        assert!(!verify_only.can_sign());
    }

    #[test]
    fn a_private_key_must_fit_its_algorithm() {
        assert!(
            JwtKey::private_pem(Algorithm::ES256, ES256)
                .unwrap()
                .can_sign()
        );
        // A P-256 key offered for ES384 parses, and would fail at the first token it signs.
        assert!(JwtKey::private_pem(Algorithm::ES384, ES256).is_err());
    }

    fn rsa_jwk(modulus: &[u8], exponent: &[u8]) -> Jwk {
        serde_json::from_value(json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(modulus),
            "e": URL_SAFE_NO_PAD.encode(exponent),
        }))
        .unwrap()
    }

    #[test]
    fn rsa_moduli_are_measured_in_significant_bits() {
        let mut short = vec![0xC5; 256];
        short[0] = 0x7F;
        assert_eq!(
            check_rsa_size(&rsa_jwk(&short, &[1, 0, 1])),
            Err(KeyError::RsaTooSmall(2047))
        );
        let mut padded = vec![0xFF; 256];
        padded[0] = 0;
        assert_eq!(
            check_rsa_size(&rsa_jwk(&padded, &[1, 0, 1])),
            Err(KeyError::RsaTooSmall(2040))
        );
        assert_eq!(check_rsa_size(&rsa_jwk(&[0xC5; 256], &[1, 0, 1])), Ok(()));
    }

    #[test]
    fn the_rsa_public_exponent_must_be_odd_and_at_least_3() {
        let modulus = [0xC5; 256];
        for (exponent, accepted) in [
            (&[3][..], true),
            (&[1, 0, 1][..], true),
            (&[0, 3][..], true),
            (&[1][..], false),
            (&[2][..], false),
            (&[1, 0, 0][..], false),
            (&[][..], false),
        ] {
            let result = check_rsa_size(&rsa_jwk(&modulus, exponent));
            assert_eq!(result.is_ok(), accepted, "e = {exponent:?}: {result:?}");
        }
    }

    #[test]
    fn rfc8725_2_1_key_sets_need_distinct_kids_and_one_key_family() {
        let hmac = |byte: u8, kid: &str| JwtKey::hs256(&[byte; 32]).unwrap().kid(kid);
        let keys = JwtKeys::new(hmac(1, "a"))
            .unwrap()
            .also_verify(hmac(2, "b"))
            .unwrap();
        assert_eq!(keys.len(), 2);
        assert!(!keys.is_empty());
        // A token names its key; one without `kid` is never matched against a guess.
        assert_eq!(keys.find(Some("b")).and_then(JwtKey::key_id), Some("b"));
        assert!(keys.find(Some("c")).is_none());
        assert!(keys.find(None).is_none());
        let single = JwtKeys::new(hmac(1, "a")).unwrap();
        assert_eq!(single.find(None).and_then(JwtKey::key_id), Some("a"));
        let public = from_jwk(&public_jwk(Algorithm::EdDSA, ED25519))
            .unwrap()
            .kid("c");
        assert_eq!(keys.also_verify(public).err(), Some(KeyError::MixedKeySet));
        let unnamed = JwtKeys::new(JwtKey::hs256(&[1; 32]).unwrap()).unwrap();
        assert!(matches!(
            unnamed.also_verify(hmac(2, "b")),
            Err(KeyError::AmbiguousKid(_))
        ));
        let named = JwtKeys::new(hmac(1, "a")).unwrap();
        assert!(matches!(
            named.also_verify(hmac(2, "a")),
            Err(KeyError::AmbiguousKid(_))
        ));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = b"an hmac secret of at least 32 bytes!";
        let key = JwtKey::hs256(secret).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(debug, "JwtKey { kid: None, alg: HS256, can_sign: true }");
    }
}
