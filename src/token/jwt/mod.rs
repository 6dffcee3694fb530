//! JSON Web Tokens: keys, compact JWS verification and access-token claims.
//!
//! The verifier follows RFC 8725 (JWT Best Current Practices): the algorithm comes from the
//! configured key, never from the token (§3.1); `none` is never accepted; keys are selected by
//! `kid` only among configured keys (header `jku`, `jwk`, `x5u` are ignored); a `crit` header is
//! rejected because no extension is understood (RFC 7515 §4.1.11); access tokens are explicitly
//! typed (`typ: at+jwt`, RFC 9068 §2.1, and `token_use: access`, §3.11) so that a refresh or ID
//! token never passes as one; tokens over a size cap are rejected before any parsing.

mod claims;
mod jws;
mod keys;

pub use claims::{AccessClaims, Audience};
pub use jsonwebtoken::Algorithm;
pub use keys::{JwtKey, JwtKeys, KeyError};

/// The default cap on a token's length, in bytes. Real access tokens are a few hundred bytes;
/// an RSA-4096 signature adds about 700.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Whether `token` has the shape of a compact JWS (three dot-separated parts), so that a
/// credential source can tell it from an opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    // `split` finds the dots with memchr; counting bytes one by one cost ~100 ns per JWT.
    token.splitn(4, '.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;
    use proptest::prelude::*;

    proptest! {
        /// Exactly two dots, whatever else the string holds.
        #[test]
        fn looks_like_jwt_means_exactly_two_dots(token in "[a-z.=_\\-]{0,40}") {
            let dots = token.bytes().filter(|&b| b == b'.').count();
            prop_assert_eq!(looks_like_jwt(&token), dots == 2);
        }
    }
}
