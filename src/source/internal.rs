//! A shared key for service-to-service calls, compared in constant time.

use async_trait::async_trait;
use http::HeaderName;
use http::request::Parts;

use super::{CredentialSource, Credentials, Lookup};
use crate::error::{AuthError, InvalidToken};
use crate::identity::Identity;
use crate::token::TokenDigest;

/// Authenticates trusted internal services by a shared key in a header (default
/// `X-Internal-Api-Key`), as a service [`Identity`] with no user account.
///
/// The key is kept only as its SHA-256 digest and compared in constant time, so neither its
/// content nor its length leaks through timing (unlike a plain `==`).
///
/// ```
/// use portcullis::source::InternalKey;
///
/// let source = InternalKey::new("worker", "a-long-random-shared-secret-of-32-bytes")?;
/// # Ok::<(), portcullis::source::InternalKeyTooShort>(())
/// ```
#[derive(Clone)]
pub struct InternalKey {
    header: HeaderName,
    digest: TokenDigest,
    /// Built once: every request with the key gets a clone of the same identity.
    identity: Identity,
}

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalKey")
            .field("header", &self.header)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The shortest internal key accepted, in bytes: 32 random bytes' worth of guessing (the
/// key is compared in constant time, but a short one falls to plain enumeration).
pub const MIN_INTERNAL_KEY_LEN: usize = 32;

/// An internal key shorter than [`MIN_INTERNAL_KEY_LEN`] bytes was configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the internal API key must be at least 32 bytes long")]
pub struct InternalKeyTooShort;

impl InternalKey {
    /// Accepts `key` in `X-Internal-Api-Key`, authenticating as the service `service`.
    pub fn new(service: impl Into<String>, key: &str) -> Result<Self, InternalKeyTooShort> {
        if key.len() < MIN_INTERNAL_KEY_LEN {
            return Err(InternalKeyTooShort);
        }
        Ok(Self {
            header: HeaderName::from_static("x-internal-api-key"),
            digest: TokenDigest::of(key),
            identity: Identity::service(service),
        })
    }

    /// Reads the key from another header.
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

#[async_trait]
impl CredentialSource for InternalKey {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        match self.check(request.parts()) {
            Ok(None) => Lookup::Absent,
            Ok(Some(identity)) => Lookup::Ready(Ok(identity)),
            Err(error) => Lookup::Ready(Err(error)),
        }
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        self.check(request.parts())
    }
}

impl InternalKey {
    /// Entirely synchronous: a constant-time comparison of digests.
    fn check(&self, request: &Parts) -> Result<Option<Identity>, AuthError> {
        let mut values = request.headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::InvalidRequest(
                "more than one internal key header",
            ));
        }
        // Digests of equal length, compared in constant time (`TokenDigest`'s equality).
        let presented = TokenDigest::of(value.to_str().unwrap_or(""));
        if presented == self.digest {
            Ok(Some(self.identity.clone()))
        } else {
            Err(InvalidToken::Unknown.into())
        }
    }
}
