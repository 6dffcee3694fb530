//! The response future of [`AuthService`](super::AuthService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::Response;
use pin_project_lite::pin_project;

type Authenticating<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// Response future for [`AuthService`](super::AuthService).
    ///
    /// A request that carries no credential goes straight to the inner service's future. One
    /// that does runs the credential sources first; they are asynchronous trait objects, so
    /// that step is a boxed future.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Direct { #[pin] future: F },
        Authenticating { future: Authenticating<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn direct(future: F) -> Self {
        Self {
            state: State::Direct { future },
        }
    }

    pub(super) fn authenticating(
        future: impl Future<Output = Result<Response, E>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Authenticating {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Direct { future } => future.poll(cx),
            StateProj::Authenticating { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
