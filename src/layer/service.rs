//! The [`AuthService`] middleware.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::Response;
use http::Request;
use tower_service::Service;

use super::{Config, ResponseFuture};

/// The middleware [`AuthLayer`](super::AuthLayer) produces.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S> AuthService<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(self.config.renderer.clone());
        if !self.config.needs_authentication(&parts) {
            return ResponseFuture::direct(self.inner.call(Request::from_parts(parts, body)));
        }
        // The service that was polled ready handles this request; its clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture::authenticating(async move {
            match config.authenticate(&parts).await {
                Ok(Some(identity)) => {
                    parts.extensions.insert(identity);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%error, "request refused by AuthLayer");
                    return Ok(config.renderer.render(&error));
                }
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
