//! [`CrossOriginService`]: the [`CrossOrigin`] check as middleware.

use std::task::{Context, Poll};

use axum_core::response::Response;
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::CrossOrigin;
use crate::error::{AuthError, Renderer, RequestHead};
use crate::guard::ResponseFuture;

/// Refuses every cross-site unsafe request with `403`, whatever credential it carries.
///
/// The [`SessionCookie`](crate::source::SessionCookie) source already refuses cross-site
/// requests its cookie would authenticate; this layer is for the routes a browser posts to
/// *before* it has a session. A login form is the classic case: a forged cross-site post would
/// log the victim into the attacker's account (login CSRF).
///
/// ```
/// use axum::{Router, routing::post};
/// use portcullis::csrf::CrossOrigin;
///
/// let app: Router = Router::new()
///     .route("/login", post(|| async { "welcome" }).layer(CrossOrigin::new()));
/// ```
impl<S> Layer<S> for CrossOrigin {
    type Service = CrossOriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginService {
            inner,
            check: self.clone(),
        }
    }
}

/// The middleware a [`CrossOrigin`] layer produces.
#[derive(Clone, Debug)]
pub struct CrossOriginService<S> {
    inner: S,
    check: CrossOrigin,
}

impl<S, B> Service<Request<B>> for CrossOriginService<S>
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
        let allowed = self.check.check_headers(
            request.method(),
            request.headers(),
            request.uri().authority(),
        );
        match allowed {
            Ok(()) => ResponseFuture::allowed(self.inner.call(request)),
            Err(_) => ResponseFuture::refused(
                Renderer::of(request.extensions())
                    .render(&RequestHead::of(&request), &AuthError::CrossSiteRequest),
            ),
        }
    }
}
