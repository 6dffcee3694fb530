//! Credential sources: where a request carries a credential, and who resolves it.
//!
//! [`AuthLayer`](crate::AuthLayer) asks its sources in order. Each answers one of three things
//! (DESIGN §1):
//!
//! * `Ok(None)`: no credential of its kind here; the next source is asked;
//! * `Err(_)`: a credential of its kind is here and it is bad; the request is refused at once
//!   and **no later source is asked**, so a bad token can never fall through to a weaker one;
//! * `Ok(Some(identity))`: authenticated; later sources are not asked.
//!
//! Sources that read a token ([`Bearer`], [`QueryToken`]) delegate to a [`TokenResolver`]
//! ([`ApiKeys`](crate::ApiKeys), [`AccessTokens`](crate::AccessTokens)), so where a token is
//! found and what kind of token it is are separate choices.

mod authorization;
mod bearer;
mod internal;
mod query;

use async_trait::async_trait;
use http::request::Parts;

pub use authorization::bearer_token;
pub use bearer::Bearer;
pub use internal::{InternalKey, InternalKeyTooShort};
pub use query::QueryToken;

use crate::error::AuthError;
use crate::identity::Identity;

/// One place a request can carry a credential. See the [module docs](self) for the contract.
///
/// ```
/// use async_trait::async_trait;
/// use http::request::Parts;
/// use portcullis::{AuthError, Identity, source::CredentialSource};
///
/// /// Lets health checks from the load balancer through as a service identity.
/// struct HealthChecker;
///
/// #[async_trait]
/// impl CredentialSource for HealthChecker {
///     async fn authenticate(&self, request: &Parts) -> Result<Option<Identity>, AuthError> {
///         let is_probe = request.uri.path() == "/healthz"
///             && request.headers.get("x-probe").is_some_and(|v| v == "lb");
///         Ok(is_probe.then(|| Identity::service("load-balancer")))
///     }
/// }
/// ```
#[async_trait]
pub trait CredentialSource: Send + Sync + 'static {
    /// A cheap, synchronous look: could `request` carry this source's credential? When it
    /// answers `false`, [`authenticate`](Self::authenticate) is not called, so a request
    /// without credentials costs no allocation. Answer `true` when unsure (the default).
    fn applies(&self, request: &Parts) -> bool {
        let _ = request;
        true
    }

    /// Looks for this source's credential in `request`.
    async fn authenticate(&self, request: &Parts) -> Result<Option<Identity>, AuthError>;
}

/// Turns a token string into an identity: the part of a credential source that knows what a
/// token means, independent of where it was found.
#[async_trait]
pub trait TokenResolver: Send + Sync + 'static {
    /// Whether `token` is of this resolver's kind (by prefix or shape). A recognised token
    /// that then fails to resolve is a bad credential, not someone else's.
    fn recognizes(&self, token: &str) -> bool;

    /// Resolves a recognised token.
    async fn resolve(&self, token: &str) -> Result<Identity, AuthError>;
}

#[async_trait]
impl<R: TokenResolver + ?Sized> TokenResolver for std::sync::Arc<R> {
    fn recognizes(&self, token: &str) -> bool {
        (**self).recognizes(token)
    }

    async fn resolve(&self, token: &str) -> Result<Identity, AuthError> {
        (**self).resolve(token).await
    }
}
