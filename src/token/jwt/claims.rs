//! Access-token claims, parsed strictly.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::InvalidToken;

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is among them.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The claims of a portcullis access token.
///
/// Every field but `nbf`, `sid` and `scope` is required. Numeric dates must be JSON integers: a
/// string (`"exp": "1700000000"`) or a fraction is a malformed token, never a skipped check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// The session (refresh family) the token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Always `"access"` for an access token.
    pub token_use: String,
    /// Space-separated scopes the token is limited to (RFC 8693 §4.2); absent means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl AccessClaims {
    /// Parses a JWS payload. Duplicate claim names resolve to the last one (RFC 7519 §4).
    pub fn from_payload(payload: &[u8]) -> Result<Self, InvalidToken> {
        let claims: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|_| InvalidToken::Malformed)?;
        let aud = match claims.get("aud") {
            Some(Value::String(one)) => Audience::One(one.clone()),
            Some(Value::Array(many)) => Audience::Many(
                many.iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(InvalidToken::BadClaim("aud"))?,
            ),
            _ => return Err(InvalidToken::BadClaim("aud")),
        };
        Ok(Self {
            iss: string(&claims, "iss")?,
            sub: string(&claims, "sub")?,
            aud,
            exp: integer(&claims, "exp")?,
            nbf: optional(&claims, "nbf", integer)?,
            iat: integer(&claims, "iat")?,
            jti: string(&claims, "jti")?,
            sid: optional(&claims, "sid", string)?,
            token_use: string(&claims, "token_use")?,
            scope: optional(&claims, "scope", string)?,
        })
    }

    /// The scopes, split on spaces.
    pub fn scopes(&self) -> Option<Vec<String>> {
        self.scope.as_ref().map(|scope| {
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

fn string(claims: &Map<String, Value>, name: &'static str) -> Result<String, InvalidToken> {
    match claims.get(name) {
        Some(Value::String(value)) => Ok(value.clone()),
        _ => Err(InvalidToken::BadClaim(name)),
    }
}

fn integer(claims: &Map<String, Value>, name: &'static str) -> Result<i64, InvalidToken> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(InvalidToken::BadClaim(name))
}

fn optional<T>(
    claims: &Map<String, Value>,
    name: &'static str,
    parse: fn(&Map<String, Value>, &'static str) -> Result<T, InvalidToken>,
) -> Result<Option<T>, InvalidToken> {
    if claims.contains_key(name) {
        parse(claims, name).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "iss": "i", "sub": "1", "aud": "a", "exp": 2_000_000_000, "iat": 1_000_000_000,
            "jti": "j", "token_use": "access"
        })
    }

    fn parse(value: &Value) -> Result<AccessClaims, InvalidToken> {
        AccessClaims::from_payload(value.to_string().as_bytes())
    }

    #[test]
    fn a_complete_payload_parses() {
        let claims = parse(&valid()).unwrap();
        assert_eq!(claims.exp, 2_000_000_000);
        assert!(claims.aud.contains("a"));
    }

    #[test]
    fn each_required_claim_is_required() {
        for name in ["iss", "sub", "aud", "exp", "iat", "jti", "token_use"] {
            let mut claims = valid();
            claims.as_object_mut().unwrap().remove(name);
            assert_eq!(parse(&claims), Err(InvalidToken::BadClaim(name)), "{name}");
        }
    }

    #[test]
    fn cve_2026_25537_string_exp_and_nbf_are_malformed_not_skipped() {
        let mut claims = valid();
        claims["exp"] = json!("2000000000");
        assert_eq!(parse(&claims), Err(InvalidToken::BadClaim("exp")));
        let mut claims = valid();
        claims["nbf"] = json!("0");
        assert_eq!(parse(&claims), Err(InvalidToken::BadClaim("nbf")));
        let mut claims = valid();
        claims["exp"] = json!(2.5e9);
        assert_eq!(parse(&claims), Err(InvalidToken::BadClaim("exp")));
    }

    #[test]
    fn audience_may_be_an_array_of_strings_only() {
        let mut claims = valid();
        claims["aud"] = json!(["x", "a"]);
        assert!(parse(&claims).unwrap().aud.contains("a"));
        claims["aud"] = json!(["x", 1]);
        assert_eq!(parse(&claims), Err(InvalidToken::BadClaim("aud")));
    }

    #[test]
    fn non_object_payloads_are_malformed() {
        for payload in [&b"[]"[..], b"null", b"\"x\"", b"{", b""] {
            assert_eq!(
                AccessClaims::from_payload(payload),
                Err(InvalidToken::Malformed)
            );
        }
    }
}
