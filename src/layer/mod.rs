//! [`AuthLayer`]: runs the credential sources and puts the [`Identity`] in the request.
//!
//! The layer authenticates; it does not require authentication. A request without a credential
//! passes through anonymous (public routes share the layer) and the guards or extractors
//! further in refuse it where a principal is needed. A request with a bad credential is
//! refused here, before any handler runs.

mod future;
mod service;

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

pub use future::ResponseFuture;
pub use service::AuthService;

use crate::error::{AuthError, ErrorRenderer, InvalidToken, JsonErrors, Renderer, RequestHead};
use crate::identity::Identity;
use crate::source::{CredentialSource, Credentials, Lookup};

/// The authentication layer. Cheap to clone.
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{AccessTokens, ApiKeys, Auth, AuthLayer, Identity, JwtConfig};
/// use portcullis::source::Bearer;
/// use portcullis::store::MemoryStore;
/// use portcullis::token::{TokenFormat, jwt::{JwtKey, JwtKeys}};
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_")?);
/// let keys = JwtKeys::new(JwtKey::hs256(&[42u8; 32])?)?;
/// let access_tokens = AccessTokens::new(&auth, keys, JwtConfig::new("my-app", "my-app-api"));
///
/// let app: Router = Router::new()
///     .route("/me", get(|identity: Identity| async move { identity.name().to_owned() }))
///     .layer(
///         AuthLayer::builder()
///             .source(Bearer::new(api_keys))
///             .source(Bearer::new(access_tokens))
///             .build(),
///     );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    config: Arc<Config>,
}

struct Config {
    sources: Vec<Box<dyn CredentialSource>>,
    renderer: Renderer,
    /// Whether the renderer differs from the default, so that guards and extractors further in
    /// must be told about it (otherwise they fall back to the default without a lookup).
    custom_renderer: bool,
    refuse_unrecognized: bool,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("sources", &self.config.sources.len())
            .field("refuse_unrecognized", &self.config.refuse_unrecognized)
            .finish_non_exhaustive()
    }
}

/// Configures an [`AuthLayer`].
pub struct AuthLayerBuilder {
    sources: Vec<Box<dyn CredentialSource>>,
    renderer: Option<Arc<dyn ErrorRenderer>>,
    refuse_unrecognized: bool,
}

impl fmt::Debug for AuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Starts configuring a layer.
    pub fn builder() -> AuthLayerBuilder {
        AuthLayerBuilder {
            sources: Vec::new(),
            renderer: None,
            refuse_unrecognized: true,
        }
    }
}

impl AuthLayerBuilder {
    /// Adds a credential source; sources are asked in the order they are added.
    #[must_use]
    pub fn source(mut self, source: impl CredentialSource) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Replaces the error renderer (default: [`JsonErrors`] with realm `api`). Guards and
    /// extractors behind this layer use the same renderer.
    #[must_use]
    pub fn renderer(mut self, renderer: impl ErrorRenderer) -> Self {
        self.renderer = Some(Arc::new(renderer));
        self
    }

    /// Lets requests whose `Authorization` header no source understood through as anonymous.
    ///
    /// By default such a request is refused with `401 invalid_token`: a credential the server
    /// cannot read must not silently downgrade a request to anonymous. Use this only when
    /// another middleware further in reads `Authorization` itself.
    #[must_use]
    pub fn ignore_unrecognized_credentials(mut self) -> Self {
        self.refuse_unrecognized = false;
        self
    }

    /// Builds the layer.
    pub fn build(self) -> AuthLayer {
        AuthLayer {
            config: Arc::new(Config {
                sources: self.sources,
                custom_renderer: self.renderer.is_some(),
                renderer: Renderer(
                    self.renderer
                        .unwrap_or_else(|| Arc::new(JsonErrors::default())),
                ),
                refuse_unrecognized: self.refuse_unrecognized,
            }),
        }
    }
}

/// What the sources say about a request without waiting.
enum FirstLook {
    Anonymous,
    Authenticated(Identity),
    Refused(AuthError),
    /// The source at this index needs to wait (a store query).
    Pending(usize),
}

impl Config {
    /// Asks each source in order what it can say without waiting, stopping at the first
    /// answer or the first source that needs to wait.
    fn first_look(&self, request: &Credentials<'_>) -> FirstLook {
        for (index, source) in self.sources.iter().enumerate() {
            match source.lookup(request) {
                Lookup::Absent => {}
                Lookup::Ready(Ok(identity)) => return FirstLook::Authenticated(identity),
                Lookup::Ready(Err(error)) => return FirstLook::Refused(error),
                Lookup::Pending => return FirstLook::Pending(index),
            }
        }
        match self.unrecognized(request) {
            Some(error) => FirstLook::Refused(error),
            None => FirstLook::Anonymous,
        }
    }

    /// Continues from the source at `from`, which needs to wait, through the later sources.
    async fn authenticate_from(
        &self,
        from: usize,
        request: &Credentials<'_>,
    ) -> Result<Option<Identity>, AuthError> {
        if let Some(identity) = self.sources[from].authenticate(request).await? {
            return Ok(Some(identity));
        }
        for source in &self.sources[from + 1..] {
            let found = match source.lookup(request) {
                Lookup::Absent => None,
                Lookup::Ready(answer) => Some(answer?),
                Lookup::Pending => source.authenticate(request).await?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        match self.unrecognized(request) {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    fn refuse(
        &self,
        request: &http::request::Parts,
        error: &AuthError,
    ) -> axum_core::response::Response {
        tracing::debug!(%error, "request refused by AuthLayer");
        self.renderer.render(&RequestHead::of_parts(request), error)
    }

    /// A credential no source understood is refused, not ignored (unless configured so).
    fn unrecognized(&self, request: &Credentials<'_>) -> Option<AuthError> {
        let present = request
            .parts()
            .headers
            .contains_key(http::header::AUTHORIZATION);
        (self.refuse_unrecognized && present).then_some(InvalidToken::Malformed.into())
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, Arc::clone(&self.config))
    }
}
