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
    /// A request whose credential every source could judge without waiting (none, a cached
    /// one, or a bad one) goes straight to the inner service's future or its refusal. Only a
    /// source that must wait (a store query) makes a boxed future.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Direct { #[pin] future: F },
        Ready { response: Option<Response> },
        Authenticating { future: Authenticating<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn direct(future: F) -> Self {
        Self {
            state: State::Direct { future },
        }
    }

    pub(super) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
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
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            StateProj::Authenticating { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
