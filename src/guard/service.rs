//! The [`RequireService`] middleware.

use std::task::{Context, Poll};

use axum_core::response::Response;
use http::Request;
use tower_service::Service;

use super::future::ResponseFuture;
use super::requirement::Requirement;
use crate::error::{Renderer, RequestHead};
use crate::identity::Identity;

/// The middleware [`RequireLayer`](super::RequireLayer) produces. It decides synchronously, so
/// refusing a request allocates nothing beyond the error response.
#[derive(Clone, Debug)]
pub struct RequireService<S> {
    inner: S,
    requirement: Requirement,
}

impl<S> RequireService<S> {
    pub(super) fn new(inner: S, requirement: Requirement) -> Self {
        Self { inner, requirement }
    }
}

impl<S, B> Service<Request<B>> for RequireService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let identity = request.extensions().get::<Identity>();
        match self.requirement.check(identity) {
            Ok(()) => ResponseFuture::allowed(self.inner.call(request)),
            Err(error) => ResponseFuture::refused(
                Renderer::of(request.extensions()).render(&RequestHead::of(&request), &error),
            ),
        }
    }
}
