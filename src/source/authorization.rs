//! Parsing the `Authorization: Bearer` header (RFC 6750 §2.1).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::AuthError;

/// Extracts the token from an `Authorization: Bearer <token>` header.
///
/// * no `Authorization` header, or another scheme (`Basic …`): `Ok(None)`;
/// * a well-formed bearer credential: `Ok(Some(token))`;
/// * several `Authorization` headers, non-ASCII bytes, an empty token, or characters outside
///   RFC 6750's `b64token` (`A-Z a-z 0-9 - . _ ~ + /` then `=` padding):
///   `Err(AuthError::InvalidRequest)` (400).
///
/// The scheme is matched case-insensitively (RFC 9110 §11.1); one or more spaces may follow it.
///
/// ```
/// use http::HeaderMap;
/// use portcullis::source::bearer_token;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers).unwrap(), None);
/// headers.insert("authorization", "bearer abc.def-ghi".parse().unwrap());
/// assert_eq!(bearer_token(&headers).unwrap(), Some("abc.def-ghi"));
/// headers.insert("authorization", "Bearer a b".parse().unwrap());
/// assert!(bearer_token(&headers).is_err());
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    // Bytes, not `to_str`: the token check below admits only ASCII, so the common case walks
    // the header once; the slower checks run only to name what is wrong.
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(space) => (&bytes[..space], &bytes[space + 1..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        value.to_str().map_err(|_| not_visible_ascii())?;
        return Ok(None);
    }
    let first = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[first..];
    if token.is_empty() {
        value.to_str().map_err(|_| not_visible_ascii())?;
        return Err(AuthError::InvalidRequest("empty bearer token"));
    }
    match std::str::from_utf8(token) {
        Ok(token) if is_b64token(token.as_bytes()) => Ok(Some(token)),
        _ => {
            value.to_str().map_err(|_| not_visible_ascii())?;
            Err(AuthError::InvalidRequest(
                "bearer token has invalid characters",
            ))
        }
    }
}

fn not_visible_ascii() -> AuthError {
    AuthError::InvalidRequest("Authorization header is not visible ASCII")
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(super) fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    // A fold without early exit over plain comparisons compiles to SIMD: a JWT's few hundred
    // bytes take tens of nanoseconds instead of one table lookup and branch per byte.
    !body.is_empty() && body.iter().fold(true, |all, &b| all & is_b64token_char(b))
}

/// Whether RFC 6750's `b64token` allows `b` before its padding.
fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn rfc6750_2_1_accepts_b64token_characters_and_padding() {
        let h = headers(&["Bearer mF_9.B5f-4.1JqM+/~=="]);
        assert_eq!(bearer_token(&h).unwrap(), Some("mF_9.B5f-4.1JqM+/~=="));
    }

    #[test]
    fn rfc9110_11_1_scheme_is_case_insensitive() {
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            let h = headers(&[&format!("{scheme} tok")]);
            assert_eq!(bearer_token(&h).unwrap(), Some("tok"));
        }
    }

    #[test]
    fn other_schemes_are_not_ours() {
        assert_eq!(
            bearer_token(&headers(&["Basic YWxhZGRpbjpvcGVu"])).unwrap(),
            None
        );
        assert_eq!(bearer_token(&headers(&["Bearertoken"])).unwrap(), None);
    }

    #[test]
    fn rfc6750_3_1_malformed_headers_are_invalid_request() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer ===",
            "Bearer a=b",
            "Bearer {x}",
        ] {
            assert!(
                matches!(
                    bearer_token(&headers(&[value])),
                    Err(AuthError::InvalidRequest(_))
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_invalid_request() {
        let h = headers(&["Bearer a", "Bearer b"]);
        assert!(matches!(
            bearer_token(&h),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn non_ascii_header_bytes_are_invalid_request() {
        let mut map = HeaderMap::new();
        map.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert!(matches!(
            bearer_token(&map),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_header_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut map = HeaderMap::new();
                map.insert(AUTHORIZATION, value);
                let _ = bearer_token(&map);
            }
        }

        #[test]
        fn accepted_tokens_are_always_b64tokens(value in "[ -~]{0,80}") {
            let map = headers(&[&value]);
            if let Ok(Some(token)) = bearer_token(&map) {
                prop_assert!(is_b64token(token.as_bytes()));
                prop_assert!(value.ends_with(token));
            }
        }

        /// The byte-level parser answers exactly as the straightforward reading of RFC 6750
        /// §2.1 does, errors included.
        #[test]
        fn agrees_with_the_reference_reading(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b' '), Just(b'='), Just(b'.'), Just(b'\t'), Just(0x80u8), Just(0xffu8),
                    any::<u8>(), b'a'..=b'z', b'A'..=b'Z',
                ],
                0..40,
            ),
            scheme in prop_oneof![Just("Bearer "), Just("bearer  "), Just("Basic "), Just("")],
        ) {
            let mut value = scheme.as_bytes().to_vec();
            value.extend(bytes);
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let mut map = HeaderMap::new();
                map.insert(AUTHORIZATION, value);
                prop_assert_eq!(
                    format!("{:?}", bearer_token(&map)),
                    format!("{:?}", reference(&map))
                );
            }
        }
    }

    fn reference(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
        let value = headers.get(AUTHORIZATION).unwrap();
        let value = value.to_str().map_err(|_| not_visible_ascii())?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let token = rest.trim_start_matches(' ');
        if token.is_empty() {
            return Err(AuthError::InvalidRequest("empty bearer token"));
        }
        let body = token.trim_end_matches('=');
        let valid = !body.is_empty()
            && body.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            });
        if !valid {
            return Err(AuthError::InvalidRequest(
                "bearer token has invalid characters",
            ));
        }
        Ok(Some(token))
    }
}
