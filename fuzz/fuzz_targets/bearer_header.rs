//! The `Authorization: Bearer` parser: never panics; an accepted token is an RFC 6750
//! `b64token` taken from the end of the header.
#![no_main]

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use portcullis::source::bearer_token;

fuzz_target!(|data: &[u8]| {
    // Up to three header values, split on NUL, to exercise duplicates too.
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == 0).take(3) {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.append(AUTHORIZATION, value);
        }
    }
    if let Ok(Some(token)) = bearer_token(&headers) {
        assert!(!token.is_empty());
        let value = headers.get(AUTHORIZATION).unwrap().to_str().unwrap();
        assert!(value.ends_with(token));
        assert!(!token.contains(' '));
    }
});
