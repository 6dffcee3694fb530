//! [`Secret`]: a string that must not reach a log.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string (a password, a token, a key) whose `Debug` output is `[redacted]`, so a
/// request struct that holds one can derive `Debug` and still be logged safely (OWASP ASVS 5.0
/// V16.2.5: no secrets in logs). Deserializes from a JSON string; it deliberately does not
/// serialize, so it cannot be echoed into a response by accident: call
/// [`into_exposed`](Self::into_exposed) where handing it out is intended.
///
/// ```
/// use portcullis::Secret;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Login {
///     username: String,
///     password: Secret,
/// }
///
/// let login: Login = serde_json::from_str(r#"{"username": "ada", "password": "hunter2"}"#)?;
/// assert_eq!(login.password.expose(), "hunter2");
/// assert_eq!(format!("{login:?}"), r#"Login { username: "ada", password: [redacted] }"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call this only to check it or to hand it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes the wrapper, returning the secret.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Reads a string. serde's own errors quote a wrongly typed value ("invalid type: integer
/// `12345678`"), which would put a secret sent as a number into an error message; so every
/// type is taken (`deserialize_any`) and refused here, in words that quote nothing.
struct SecretVisitor;

impl SecretVisitor {
    fn wrong_type<E: serde::de::Error>() -> Result<Secret, E> {
        Err(E::custom("invalid type: expected a string"))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret::new(value))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret(value))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Secret, E> {
        Self::wrong_type()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Self::wrong_type()
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Self::wrong_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
    }

    #[test]
    fn a_wrong_type_is_a_deserialization_error_that_does_not_echo_the_input() {
        for wrong in [
            "12345678",
            "-12345678",
            "1234.5678",
            "true",
            "[\"s3cret\"]",
            "null",
        ] {
            let error = serde_json::from_str::<Secret>(wrong).unwrap_err();
            assert!(!error.to_string().contains("1234"), "{error}");
            assert!(!error.to_string().contains("s3cret"), "{error}");
        }
        assert_eq!(
            serde_json::from_str::<Secret>(r#""s3cret""#)
                .unwrap()
                .expose(),
            "s3cret"
        );
    }
}
