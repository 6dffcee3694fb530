//! Token formats: opaque secrets and their digests, and JSON Web Tokens.
//!
//! This module is pure: it formats, parses, signs and verifies, and never touches a store. The
//! services that issue and resolve tokens against a store are [`ApiKeys`](crate::ApiKeys),
//! [`RefreshTokens`](crate::RefreshTokens) and [`AccessTokens`](crate::AccessTokens).

mod digest;
pub mod jwt;
mod opaque;

pub use digest::TokenDigest;
pub use opaque::{
    GeneratedToken, InvalidPrefix, ParsedToken, RandomnessUnavailable, TokenFormat,
    TokenFormatError, TokenSecret,
};
