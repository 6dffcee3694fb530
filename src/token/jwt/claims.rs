//! Access-token claims, parsed strictly.

use serde::{Deserialize, Serialize};

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
/// Every field but `nbf`, `sid`, `scope`, `auth_time` and `amr` is required. Numeric dates must be JSON integers: a
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
    /// When the user signed in to the session, seconds since the epoch (OpenID Connect Core
    /// §2, RFC 9470 §4); absent for a token issued outside a sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user signed in (RFC 8176 names, see
    /// [`Factors::amr`](crate::assurance::Factors::amr)); absent with `auth_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

impl AccessClaims {
    /// Parses a JWS payload. Duplicate claim names resolve to the last one (RFC 7519 §4).
    ///
    /// The payload is read in one pass into typed slots, not into a `serde_json::Value` tree:
    /// parsing claims is most of what a first-seen token costs after its signature check.
    pub fn from_payload(payload: &[u8]) -> Result<Self, InvalidToken> {
        let raw: RawClaims =
            serde_json::from_slice(payload).map_err(|_| InvalidToken::Malformed)?;
        let aud = match raw.aud {
            Some(Claim::Str(one)) => Audience::One(one),
            Some(Claim::Strings(many)) => Audience::Many(many),
            _ => return Err(InvalidToken::BadClaim("aud")),
        };
        Ok(Self {
            iss: required(raw.iss, "iss", Claim::string)?,
            sub: required(raw.sub, "sub", Claim::string)?,
            aud,
            exp: required(raw.exp, "exp", Claim::integer)?,
            nbf: optional(raw.nbf, "nbf", Claim::integer)?,
            iat: required(raw.iat, "iat", Claim::integer)?,
            jti: required(raw.jti, "jti", Claim::string)?,
            sid: optional(raw.sid, "sid", Claim::string)?,
            token_use: required(raw.token_use, "token_use", Claim::string)?,
            scope: optional(raw.scope, "scope", Claim::string)?,
            auth_time: optional(raw.auth_time, "auth_time", Claim::integer)?,
            amr: optional(raw.amr, "amr", Claim::strings)?,
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

fn required<T>(
    claim: Option<Claim>,
    name: &'static str,
    parse: fn(Claim) -> Option<T>,
) -> Result<T, InvalidToken> {
    claim.and_then(parse).ok_or(InvalidToken::BadClaim(name))
}

/// A claim that is absent is `None`; one that is present must have the right type (a `null`
/// is present and wrong).
fn optional<T>(
    claim: Option<Claim>,
    name: &'static str,
    parse: fn(Claim) -> Option<T>,
) -> Result<Option<T>, InvalidToken> {
    claim
        .map(|claim| parse(claim).ok_or(InvalidToken::BadClaim(name)))
        .transpose()
}

/// One claim's value, as far as the claims above care: any other JSON is `Other`.
enum Claim {
    Str(String),
    /// A JSON integer that fits an `i64`; fractions and exponents are `Other`.
    Int(i64),
    /// An array whose items are all strings.
    Strings(Vec<String>),
    Other,
}

impl Claim {
    fn string(self) -> Option<String> {
        match self {
            Self::Str(value) => Some(value),
            _ => None,
        }
    }

    fn strings(self) -> Option<Vec<String>> {
        match self {
            Self::Strings(values) => Some(values),
            _ => None,
        }
    }

    fn integer(self) -> Option<i64> {
        match self {
            Self::Int(value) => Some(value),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> serde::de::Visitor<'de> for ClaimVisitor {
    type Value = Claim;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, value: &str) -> Result<Claim, E> {
        Ok(Claim::Str(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Claim, E> {
        Ok(Claim::Str(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Claim, E> {
        Ok(Claim::Int(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Claim, E> {
        Ok(i64::try_from(value).map_or(Claim::Other, Claim::Int))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_unit<E>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Claim, A::Error> {
        let mut strings = Vec::new();
        let mut all_strings = true;
        while let Some(item) = items.next_element::<Claim>()? {
            match item {
                Claim::Str(value) if all_strings => strings.push(value),
                _ => all_strings = false,
            }
        }
        Ok(if all_strings {
            Claim::Strings(strings)
        } else {
            Claim::Other
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Claim, A::Error> {
        while entries
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Claim::Other)
    }
}

/// A claim name, borrowed from the payload unless it had to be unescaped.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> serde::de::Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(std::borrow::Cow::Borrowed(name)))
    }

    fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
        Ok(Name(std::borrow::Cow::Owned(name.to_owned())))
    }
}

/// The claims portcullis reads, each slot holding the last value given for its name.
#[derive(Default)]
struct RawClaims {
    iss: Option<Claim>,
    sub: Option<Claim>,
    aud: Option<Claim>,
    exp: Option<Claim>,
    nbf: Option<Claim>,
    iat: Option<Claim>,
    jti: Option<Claim>,
    sid: Option<Claim>,
    token_use: Option<Claim>,
    scope: Option<Claim>,
    auth_time: Option<Claim>,
    amr: Option<Claim>,
}

impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawClaimsVisitor)
    }
}

struct RawClaimsVisitor;

impl<'de> serde::de::Visitor<'de> for RawClaimsVisitor {
    type Value = RawClaims;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut entries: A,
    ) -> Result<RawClaims, A::Error> {
        let mut raw = RawClaims::default();
        while let Some(Name(name)) = entries.next_key::<Name<'de>>()? {
            let slot = match name.as_ref() {
                "iss" => &mut raw.iss,
                "sub" => &mut raw.sub,
                "aud" => &mut raw.aud,
                "exp" => &mut raw.exp,
                "nbf" => &mut raw.nbf,
                "iat" => &mut raw.iat,
                "jti" => &mut raw.jti,
                "sid" => &mut raw.sid,
                "token_use" => &mut raw.token_use,
                "scope" => &mut raw.scope,
                "auth_time" => &mut raw.auth_time,
                "amr" => &mut raw.amr,
                _ => {
                    entries.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(entries.next_value::<Claim>()?);
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    /// The straightforward reading the typed parser must agree with: a `Value` map.
    fn reference(payload: &[u8]) -> Result<AccessClaims, InvalidToken> {
        fn string(claims: &Map<String, Value>, name: &'static str) -> Result<String, InvalidToken> {
            match claims.get(name) {
                Some(Value::String(value)) => Ok(value.clone()),
                _ => Err(InvalidToken::BadClaim(name)),
            }
        }
        fn strings(
            claims: &Map<String, Value>,
            name: &'static str,
        ) -> Result<Vec<String>, InvalidToken> {
            match claims.get(name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(InvalidToken::BadClaim(name)),
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
        Ok(AccessClaims {
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
            auth_time: optional(&claims, "auth_time", integer)?,
            amr: optional(&claims, "amr", strings)?,
        })
    }

    /// JSON values of every kind, for claims.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-z\\\\\"]{0,6}".prop_map(Value::from),
            proptest::collection::vec("[a-z]{0,3}", 0..3).prop_map(Value::from),
            Just(json!(["a", 1])),
            Just(json!({"nested": {"exp": 1}})),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_value_reading(
            entries in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("iss"), Just("sub"), Just("aud"), Just("exp"), Just("nbf"),
                        Just("iat"), Just("jti"), Just("sid"), Just("token_use"), Just("scope"),
                        Just("auth_time"), Just("amr"), Just("other"), Just("\\u0065xp"),
                    ],
                    any_value(),
                ),
                0..14,
            ),
        ) {
            // Written by hand so that duplicate names survive into the payload.
            let body: Vec<String> = entries
                .iter()
                .map(|(name, value)| format!("\"{name}\":{value}"))
                .collect();
            let payload = format!("{{{}}}", body.join(","));
            prop_assert_eq!(
                AccessClaims::from_payload(payload.as_bytes()),
                reference(payload.as_bytes()),
                "{}", payload
            );
        }
    }

    #[test]
    fn the_last_of_duplicate_claims_wins() {
        let payload = br#"{"iss":"i","sub":"1","aud":"a","exp":1,"iat":1,"jti":"j","token_use":"refresh","token_use":"access"}"#;
        assert_eq!(
            AccessClaims::from_payload(payload).unwrap().token_use,
            "access"
        );
        let payload = br#"{"iss":"i","sub":"1","aud":"a","exp":1,"iat":1,"jti":"j","token_use":"access","\u0065xp":"1"}"#;
        assert_eq!(
            AccessClaims::from_payload(payload),
            Err(InvalidToken::BadClaim("exp")),
            "an escaped name is the same claim"
        );
    }

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
    fn rfc7519_4_1_3_the_audience_must_be_exactly_ours() {
        for (aud, ours) in [
            (json!("a"), true),
            (json!(["x", "a"]), true),
            (json!("b"), false),
            (json!("A"), false),
            (json!("a "), false),
            (json!(["x", "y"]), false),
            (json!([]), false),
        ] {
            let mut claims = valid();
            claims["aud"] = aud.clone();
            assert_eq!(parse(&claims).unwrap().aud.contains("a"), ours, "{aud}");
        }
    }

    #[test]
    fn the_session_family_is_read_when_present() {
        assert_eq!(parse(&valid()).unwrap().sid, None);
        let mut claims = valid();
        claims["sid"] = json!("family-1");
        assert_eq!(parse(&claims).unwrap().sid.as_deref(), Some("family-1"));
        claims["sid"] = json!(7);
        assert_eq!(parse(&claims), Err(InvalidToken::BadClaim("sid")));
    }

    #[test]
    fn scopes_are_split_on_spaces() {
        assert_eq!(parse(&valid()).unwrap().scopes(), None);
        let mut claims = valid();
        claims["scope"] = json!(" documents:read  keys:manage ");
        assert_eq!(
            parse(&claims).unwrap().scopes(),
            Some(vec!["documents:read".to_owned(), "keys:manage".to_owned()])
        );
        claims["scope"] = json!("");
        assert_eq!(parse(&claims).unwrap().scopes(), Some(vec![]));
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
