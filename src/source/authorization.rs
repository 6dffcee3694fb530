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
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("Authorization header is not visible ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("empty bearer token"));
    }
    if !is_b64token(token) {
        return Err(AuthError::InvalidRequest(
            "bearer token has invalid characters",
        ));
    }
    Ok(Some(token))
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
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
                prop_assert!(is_b64token(token));
                prop_assert!(value.ends_with(token));
            }
        }
    }
}
