//! [`RequireLayer`] and its named shorthands.

use tower_layer::Layer;

use super::requirement::{self, Requirement};
use super::service::RequireService;

/// Enforces a [`Requirement`] on every request; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct RequireLayer {
    requirement: Requirement,
}

impl RequireLayer {
    /// A layer enforcing `requirement`.
    pub fn new(requirement: Requirement) -> Self {
        Self { requirement }
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService::new(inner, self.requirement.clone())
    }
}

/// Shorthand: any authenticated identity.
#[derive(Clone, Copy, Debug)]
pub struct RequireAuth;

impl RequireAuth {
    /// `RequireLayer::new(authenticated())`.
    pub fn layer() -> RequireLayer {
        RequireLayer::new(requirement::authenticated())
    }
}

/// Shorthand: role requirements.
#[derive(Clone, Copy, Debug)]
pub struct RequireRole;

impl RequireRole {
    /// A user holding at least one of `roles`.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
        RequireLayer::new(requirement::any_role(roles))
    }

    /// A user holding every one of `roles`.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
        RequireLayer::new(requirement::all(roles.into_iter().map(requirement::role)))
    }
}

/// Shorthand: scope requirements.
#[derive(Clone, Copy, Debug)]
pub struct RequireScope;

impl RequireScope {
    /// A credential allowed `scope`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(scope: impl Into<String>) -> RequireLayer {
        RequireLayer::new(requirement::scope(scope))
    }

    /// A credential allowed every one of `scopes`.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireLayer {
        RequireLayer::new(requirement::all(scopes.into_iter().map(requirement::scope)))
    }
}
