//! axum extractors for the request's identity.

use std::convert::Infallible;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::error::{AuthError, Renderer, RequestHead};
use crate::identity::Identity;
use crate::store::User;

/// The rejection of the [`Identity`] and [`CurrentUser`] extractors: the configured renderer's
/// `401` (no identity) or `403` (a service where a user is required).
#[derive(Debug)]
pub struct AuthRejection(Response);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0
    }
}

fn reject(parts: &Parts, error: &AuthError) -> AuthRejection {
    AuthRejection(Renderer::of(&parts.extensions).render(&RequestHead::of_parts(parts), error))
}

/// Requires an authenticated request: a handler taking `Identity` answers `401` to anonymous
/// requests without running.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| reject(parts, &AuthError::MissingCredentials))
    }
}

/// `Option<Identity>`: the identity if the request authenticated, `None` if it is anonymous.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The authenticated user: `401` for anonymous requests, `403` for internal services (which
/// have no user account).
///
/// ```
/// use portcullis::CurrentUser;
///
/// async fn me(user: CurrentUser) -> String {
///     format!("hello {}", user.username)
/// }
/// ```
#[derive(Clone, Debug)]
pub struct CurrentUser(Identity);

impl CurrentUser {
    /// The identity the user authenticated as (method, scopes).
    pub fn identity(&self) -> &Identity {
        &self.0
    }

    /// The user record.
    pub fn user(&self) -> &User {
        self.deref()
    }
}

impl Deref for CurrentUser {
    type Target = User;

    fn deref(&self) -> &User {
        match self.0.user_record() {
            Some(user) => user,
            // Unreachable: the extractor only builds `CurrentUser` from user identities.
            None => unreachable!("CurrentUser always holds a user identity"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = <Identity as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if identity.user_record().is_none() {
            return Err(reject(parts, &AuthError::Forbidden { scope: None }));
        }
        Ok(Self(identity))
    }
}
