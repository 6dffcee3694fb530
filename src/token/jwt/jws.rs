//! Compact JWS verification (RFC 7515 §5.2), strict about everything it accepts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::keys::JwtKey;
use crate::error::InvalidToken;

/// The protected header fields portcullis reads. Unknown fields are ignored, except that the
/// presence of `crit` (even `null`) is remembered so it can be refused. A duplicated known
/// field fails deserialization, which RFC 7515 §4 permits.
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    crit: Present,
}

/// Deserializes from any JSON value, recording only that the field was there.
#[derive(Debug, Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

#[derive(Debug)]
pub(crate) struct VerifiedJws {
    pub(crate) header: JoseHeader,
    pub(crate) payload: Vec<u8>,
}

pub(super) fn decode_part(part: &str) -> Result<Vec<u8>, InvalidToken> {
    // The default engine rejects padding and non-canonical trailing bits.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::Malformed)
}

pub(crate) fn verify<'k>(
    token: &str,
    max_len: usize,
    find_key: impl Fn(Option<&str>) -> Option<&'k JwtKey>,
) -> Result<VerifiedJws, InvalidToken> {
    if token.len() > max_len {
        return Err(InvalidToken::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(InvalidToken::Malformed);
    };
    if header_part.is_empty() || signature_part.is_empty() {
        return Err(InvalidToken::Malformed);
    }
    let header: JoseHeader =
        serde_json::from_slice(&decode_part(header_part)?).map_err(|_| InvalidToken::Malformed)?;
    if header.crit.0 {
        return Err(InvalidToken::CriticalHeader);
    }
    let key = find_key(header.kid.as_deref()).ok_or(InvalidToken::UnknownKey)?;
    // RFC 8725 §3.1: the key decides the algorithm; the header must merely agree with it.
    if header.alg.parse::<Algorithm>().ok() != Some(key.algorithm()) {
        return Err(InvalidToken::DisallowedAlgorithm);
    }
    // Checked before the signature so that a malformed signature cannot reach the verifier.
    let signature = decode_part(signature_part)?;
    let signing_input = &token[..header_part.len() + 1 + payload_part.len()];
    if !key.signature_matches(signing_input.as_bytes(), signature_part, &signature) {
        return Err(InvalidToken::BadSignature);
    }
    let payload = decode_part(payload_part)?;
    Ok(VerifiedJws { header, payload })
}
