//! The browser-session request path: the `Cookie` header parser, the cross-origin (CSRF)
//! check and the session-id lookup never panic; a found session id is a single, non-empty
//! cookie value taken verbatim from one header.
#![no_main]

use std::sync::OnceLock;

use http::header::{COOKIE, HOST, ORIGIN};
use http::{HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;
use portcullis::Auth;
use portcullis::session::{Sessions, session_cookie};
use portcullis::store::MemoryStore;
use portcullis::token::TokenFormat;

const NAME: &str = "__Host-session";

fn sessions() -> &'static Sessions {
    static SESSIONS: OnceLock<Sessions> = OnceLock::new();
    SESSIONS.get_or_init(|| {
        let auth = Auth::builder(MemoryStore::new()).build();
        Sessions::new(&auth, TokenFormat::new("pcs_").expect("valid prefix"))
    })
}

fuzz_target!(|data: &[u8]| {
    // method, Sec-Fetch-Site, Origin, Host, then up to three Cookie headers, split on NUL.
    let mut parts = data.split(|&b| b == 0);
    let method = match parts.next().and_then(|m| m.first()) {
        Some(b) if b % 2 == 0 => Method::POST,
        _ => Method::GET,
    };
    let mut request = Request::builder().method(method).uri("/settings");
    let headers = request.headers_mut().expect("no error yet");
    for name in ["sec-fetch-site", ORIGIN.as_str(), HOST.as_str()] {
        if let Some(value) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok())
            && !value.is_empty()
        {
            headers.append(name, value);
        }
    }
    for part in parts.take(3) {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.append(COOKIE, value);
        }
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();

    let allowed = sessions().cross_origin_check().check(&parts).is_ok();
    if parts.method == Method::GET {
        assert!(allowed, "safe methods always pass");
    }

    if let Some(id) = session_cookie(&parts.headers, NAME) {
        assert!(!id.is_empty());
        assert!(!id.contains(';'));
        assert!(
            parts
                .headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains(id))
        );
        // An id that is not a well-formed token is refused from memory, never looked up.
        if !id.starts_with("pcs_") {
            assert!(matches!(sessions().resolve_now(id), Some(Err(_))));
        }
    }
});
