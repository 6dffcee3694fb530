//! The `Sec-WebSocket-Protocol` token reader: never panics; an accepted token is an RFC 6750
//! `b64token` that one offered protocol carries after the prefix, and the protocol to echo is
//! that offered item whole.
#![no_main]

use http::{HeaderMap, HeaderValue, header::SEC_WEBSOCKET_PROTOCOL};
use libfuzzer_sys::fuzz_target;
use portcullis::source::protocol_token;

const PREFIX: &str = "access_token.";

fuzz_target!(|data: &[u8]| {
    // Up to three header lines, split on NUL, to exercise repeated headers too.
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == 0).take(3) {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.append(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    if let Ok(Some(found)) = protocol_token(&headers, PREFIX) {
        assert!(!found.token().is_empty());
        assert_eq!(found.protocol(), format!("{PREFIX}{}", found.token()));
        let offered = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.to_str().unwrap().split(','))
            .map(|item| item.trim_matches([' ', '\t']))
            .filter(|item| item.starts_with(PREFIX))
            .collect::<Vec<_>>();
        assert_eq!(offered, [found.protocol()]);
    }
});
