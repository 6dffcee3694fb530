//! Arbitrary strings through access-token verification: never panics, never verifies (the
//! fuzzer cannot forge an HMAC).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::store::MemoryStore;
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::{AccessTokens, Auth, JwtConfig};

fn tokens() -> &'static AccessTokens {
    static TOKENS: OnceLock<AccessTokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let auth = Auth::builder(MemoryStore::new()).build();
        let keys = JwtKeys::new(JwtKey::hs256(&[9; 32]).unwrap()).unwrap();
        AccessTokens::new(&auth, keys, JwtConfig::new("fuzz", "fuzz-api"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    assert!(tokens().verify(token).is_err());
});
