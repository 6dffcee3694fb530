//! The [`AuthService`] middleware.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::Response;
use http::Request;
use tower_service::Service;

use super::{Config, FirstLook, ResponseFuture};
use crate::source::Credentials;

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
        if self.config.custom_renderer {
            parts.extensions.insert(self.config.renderer.clone());
        }
        let look = self.config.first_look(&Credentials::new(&parts));
        match look {
            FirstLook::Anonymous => {
                ResponseFuture::direct(self.inner.call(Request::from_parts(parts, body)))
            }
            FirstLook::Authenticated(identity) => {
                parts.extensions.insert(identity);
                ResponseFuture::direct(self.inner.call(Request::from_parts(parts, body)))
            }
            FirstLook::Refused(error) => ResponseFuture::ready(self.config.refuse(&parts, &error)),
            FirstLook::Pending(from) => {
                // The service that was polled ready handles this request; its clone stays behind.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let config = Arc::clone(&self.config);
                ResponseFuture::authenticating(async move {
                    let outcome = config
                        .authenticate_from(from, &Credentials::new(&parts))
                        .await;
                    match outcome {
                        Ok(Some(identity)) => {
                            parts.extensions.insert(identity);
                        }
                        Ok(None) => {}
                        Err(error) => return Ok(config.refuse(&parts, &error)),
                    }
                    inner.call(Request::from_parts(parts, body)).await
                })
            }
        }
    }
}
