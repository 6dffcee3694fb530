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

use http::request::Parts;
use tower_layer::Layer;

pub use future::ResponseFuture;
pub use service::AuthService;

use crate::error::{AuthError, ErrorRenderer, InvalidToken, JsonErrors, Renderer};
use crate::identity::Identity;
use crate::source::CredentialSource;

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
    renderer: Arc<dyn ErrorRenderer>,
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
            renderer: Arc::new(JsonErrors::default()),
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
        self.renderer = Arc::new(renderer);
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
                renderer: Renderer(self.renderer),
                refuse_unrecognized: self.refuse_unrecognized,
            }),
        }
    }
}

impl Config {
    /// Whether authenticating `request` needs any asynchronous work at all; `false` for the
    /// common anonymous request, which then passes through without an allocation.
    fn needs_authentication(&self, request: &Parts) -> bool {
        self.refuse_unrecognized && request.headers.contains_key(http::header::AUTHORIZATION)
            || self.sources.iter().any(|source| source.applies(request))
    }

    async fn authenticate(&self, request: &Parts) -> Result<Option<Identity>, AuthError> {
        for source in &self.sources {
            if !source.applies(request) {
                continue;
            }
            if let Some(identity) = source.authenticate(request).await? {
                return Ok(Some(identity));
            }
        }
        if self.refuse_unrecognized && request.headers.contains_key(http::header::AUTHORIZATION) {
            return Err(InvalidToken::Malformed.into());
        }
        Ok(None)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, Arc::clone(&self.config))
    }
}
