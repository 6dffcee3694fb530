//! Credential sources: where a request carries a credential, and who resolves it.
//!
//! [`AuthLayer`](crate::AuthLayer) asks its sources in order. Each answers one of three things:
//!
//! * `Ok(None)`: no credential of its kind here; the next source is asked;
//! * `Err(_)`: a credential of its kind is here and it is bad; the request is refused at once
//!   and **no later source is asked**, so a bad token can never fall through to a weaker one;
//! * `Ok(Some(identity))`: authenticated; later sources are not asked.
//!
//! Sources that read a token ([`Bearer`], [`QueryToken`], [`SubprotocolToken`]) delegate to a [`TokenResolver`]
//! ([`ApiKeys`](crate::ApiKeys), [`AccessTokens`](crate::AccessTokens)), so where a token is
//! found and what kind of token it is are separate choices.

mod authorization;
mod bearer;
mod client_app;
mod internal;
mod query;
mod session;
mod single_user;
mod subprotocol;

use std::sync::OnceLock;

use async_trait::async_trait;
use http::request::Parts;

pub use authorization::bearer_token;
pub use bearer::Bearer;
pub use client_app::{ClientApplication, ClientRegistry, MemoryClients, RegisteredClient};
pub use internal::{InternalKey, InternalKeyTooShort, MIN_INTERNAL_KEY_LEN};
pub use query::QueryToken;
pub use session::SessionCookie;
pub use single_user::SingleUser;
pub use subprotocol::{ProtocolToken, SubprotocolToken, protocol_token};

use crate::error::AuthError;
use crate::identity::Identity;

/// A request as credential sources see it: its parts, and what several sources would otherwise
/// each work out again (the `Authorization: Bearer` token is parsed once per request).
pub struct Credentials<'a> {
    parts: &'a Parts,
    bearer: OnceLock<Result<Option<&'a str>, AuthError>>,
}

impl<'a> Credentials<'a> {
    /// The credentials of `parts`.
    pub fn new(parts: &'a Parts) -> Self {
        Self {
            parts,
            bearer: OnceLock::new(),
        }
    }

    /// The request's method, URI, headers and extensions.
    pub fn parts(&self) -> &'a Parts {
        self.parts
    }

    /// The `Authorization: Bearer` token (see [`bearer_token`]), parsed on first use.
    pub fn bearer_token(&self) -> Result<Option<&'a str>, AuthError> {
        self.bearer
            .get_or_init(|| bearer_token(&self.parts.headers))
            .clone()
    }
}

/// Shows the method and path only: headers and query carry secrets, which never reach a log.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.parts.method)
            .field("path", &self.parts.uri.path())
            .finish_non_exhaustive()
    }
}

/// The answer of [`CredentialSource::lookup`]: what a source can say without waiting.
#[derive(Debug)]
pub enum Lookup {
    /// No credential of this source's kind: ask the next source.
    Absent,
    /// Answered from memory: authenticated, or refused (a bad credential of this kind).
    Ready(Result<Identity, AuthError>),
    /// A credential of this kind that needs [`authenticate`](CredentialSource::authenticate)
    /// (a store query, say).
    Pending,
}

/// One place a request can carry a credential. See the [module docs](self) for the contract.
///
/// [`authenticate`](Self::authenticate) is all a source must write. Sources that can often
/// answer from memory also implement [`lookup`](Self::lookup): when every source answers there,
/// a request goes through the [`AuthLayer`](crate::AuthLayer) without an allocation or an
/// `await`.
///
/// ```
/// use async_trait::async_trait;
/// use portcullis::{AuthError, Identity};
/// use portcullis::source::{CredentialSource, Credentials};
///
/// /// Lets health checks from the load balancer through as a service identity.
/// struct HealthChecker;
///
/// #[async_trait]
/// impl CredentialSource for HealthChecker {
///     async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
///         let parts = request.parts();
///         let is_probe = parts.uri.path() == "/healthz"
///             && parts.headers.get("x-probe").is_some_and(|v| v == "lb");
///         Ok(is_probe.then(|| Identity::service("load-balancer")))
///     }
/// }
/// ```
#[async_trait]
pub trait CredentialSource: Send + Sync + 'static {
    /// What this source can say about `request` without waiting. The default,
    /// [`Lookup::Pending`], always defers to [`authenticate`](Self::authenticate).
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        let _ = request;
        Lookup::Pending
    }

    /// Looks for this source's credential in `request`.
    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError>;
}

/// Turns a token string into an identity: the part of a credential source that knows what a
/// token means, independent of where it was found.
#[async_trait]
pub trait TokenResolver: Send + Sync + 'static {
    /// Whether `token` is of this resolver's kind (by prefix or shape). A recognised token
    /// that then fails to resolve is a bad credential, not someone else's.
    fn recognizes(&self, token: &str) -> bool;

    /// Resolves a recognised token from memory (a cache hit, or a token refused on sight), or
    /// `None` when only [`resolve`](Self::resolve) can tell. The default always defers.
    fn resolve_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        let _ = token;
        None
    }

    /// Resolves a recognised token.
    async fn resolve(&self, token: &str) -> Result<Identity, AuthError>;
}

#[async_trait]
impl<R: TokenResolver + ?Sized> TokenResolver for std::sync::Arc<R> {
    fn recognizes(&self, token: &str) -> bool {
        (**self).recognizes(token)
    }

    fn resolve_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        (**self).resolve_now(token)
    }

    async fn resolve(&self, token: &str) -> Result<Identity, AuthError> {
        (**self).resolve(token).await
    }
}

/// The [`Lookup`] of a token source: what it found in the request for `resolver` — no token,
/// a token, or a malformed one — answered from memory when the resolver can.
pub(crate) fn lookup_found<T: AsRef<str>>(
    resolver: &impl TokenResolver,
    found: Result<Option<T>, AuthError>,
) -> Lookup {
    match found {
        Ok(None) => Lookup::Absent,
        Ok(Some(token)) => match resolver.resolve_now(token.as_ref()) {
            Some(answer) => Lookup::Ready(answer),
            None => Lookup::Pending,
        },
        Err(error) => Lookup::Ready(Err(error)),
    }
}

/// The [`CredentialSource::authenticate`] of a token source: resolves what it found.
pub(crate) async fn resolve_found<T: AsRef<str>>(
    resolver: &impl TokenResolver,
    found: Result<Option<T>, AuthError>,
) -> Result<Option<Identity>, AuthError> {
    match found? {
        Some(token) => resolver.resolve(token.as_ref()).await.map(Some),
        None => Ok(None),
    }
}
