//! Arbitrary header and claims JSON behind a *valid* signature: exercises header and claim
//! parsing past the signature check. Never panics; accepts only well-typed claims.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use portcullis::store::MemoryStore;
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::{AccessTokens, Auth, JwtConfig};

const SECRET: [u8; 32] = [9; 32];

fn tokens() -> &'static AccessTokens {
    static TOKENS: OnceLock<AccessTokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let auth = Auth::builder(MemoryStore::new()).build();
        let keys = JwtKeys::new(JwtKey::hs256(&SECRET).unwrap()).unwrap();
        AccessTokens::new(&auth, keys, JwtConfig::new("fuzz", "fuzz-api"))
    })
}

fuzz_target!(|data: &[u8]| {
    // "<header JSON>\n<claims JSON>"
    let Some(split) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (header, claims) = (&data[..split], &data[split + 1..]);
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(&SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    if let Ok(claims) = tokens().verify(&format!("{input}.{signature}")) {
        assert_eq!(claims.token_use, "access");
        assert_eq!(claims.iss, "fuzz");
        assert!(claims.aud.contains("fuzz-api"));
    }
});
