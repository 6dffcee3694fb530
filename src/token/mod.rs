//! Token formats: opaque secrets and their digests, and JSON Web Tokens.
//!
//! This module is pure: it formats, parses, signs and verifies, and never touches a store. The
//! services that issue and resolve tokens against a store are [`ApiKeys`](crate::ApiKeys),
//! [`RefreshTokens`](crate::RefreshTokens) and [`AccessTokens`](crate::AccessTokens).

mod code_key;
mod digest;
pub mod jwt;
mod opaque;

pub use code_key::{CodeKey, MIN_CODE_KEY_LEN, WeakCodeKey};
pub use digest::TokenDigest;
pub use opaque::{
    GeneratedToken, InvalidPrefix, ParsedToken, RandomnessUnavailable, TokenFormat,
    TokenFormatError, TokenSecret,
};
