//! [`RequireLayer`]: one guard type, with a constructor per common requirement.

use tower_layer::Layer;

use super::requirement::{self, Requirement};
use super::service::RequireService;
use crate::assurance::Assurance;

/// Enforces a [`Requirement`] on every request; see the [module docs](super).
///
/// Each constructor is named after the requirement it enforces, as the functions of
/// [`guard`](super) are: `RequireLayer::scope("documents:write")` is
/// `RequireLayer::new(guard::scope("documents:write"))`. Compose anything else with
/// [`new`](Self::new).
///
/// ```
/// use axum::{Router, handler::Handler, routing::get};
/// use portcullis::guard::{self, RequireLayer};
///
/// async fn page() -> &'static str {
///     "page"
/// }
///
/// let app: Router = Router::new()
///     .route("/me", get(page.layer(RequireLayer::authenticated())))
///     .route("/admin", get(page.layer(RequireLayer::any_role(["admin"]))))
///     .route(
///         "/reports",
///         get(page.layer(RequireLayer::new(
///             guard::scope("reports:read").and(guard::not(guard::role("suspended"))),
///         ))),
///     );
/// ```
#[derive(Clone, Debug)]
pub struct RequireLayer {
    requirement: Requirement,
}

impl RequireLayer {
    /// A layer enforcing `requirement`.
    pub fn new(requirement: Requirement) -> Self {
        Self { requirement }
    }

    /// Any authenticated identity ([`guard::authenticated`](super::authenticated)).
    pub fn authenticated() -> Self {
        Self::new(requirement::authenticated())
    }

    /// A person's sign-in, not a program's credential ([`guard::signed_in`](super::signed_in)).
    pub fn signed_in() -> Self {
        Self::new(requirement::signed_in())
    }

    /// A sign-in at `level` or above ([`guard::assurance`](super::assurance)).
    pub fn assurance(level: Assurance) -> Self {
        Self::new(requirement::assurance(level))
    }

    /// A user holding `name` ([`guard::role`](super::role)).
    pub fn role(name: impl Into<String>) -> Self {
        Self::new(requirement::role(name))
    }

    /// A user holding at least one of `names` ([`guard::any_role`](super::any_role)).
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self::new(requirement::any_role(names))
    }

    /// A user holding every one of `names`.
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self::new(requirement::all(names.into_iter().map(requirement::role)))
    }

    /// A credential allowed `name` ([`guard::scope`](super::scope)); refused with
    /// `insufficient_scope` naming it.
    pub fn scope(name: impl Into<String>) -> Self {
        Self::new(requirement::scope(name))
    }

    /// A credential allowed every one of `names`.
    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self::new(requirement::all(names.into_iter().map(requirement::scope)))
    }

    /// A trusted internal service ([`guard::service`](super::service)).
    pub fn service() -> Self {
        Self::new(requirement::service())
    }
}

impl From<Requirement> for RequireLayer {
    fn from(requirement: Requirement) -> Self {
        Self::new(requirement)
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService::new(inner, self.requirement.clone())
    }
}

/// Shorthand kept from 0.1: any authenticated identity.
#[derive(Clone, Copy, Debug)]
#[deprecated(since = "0.2.0", note = "use `RequireLayer::authenticated()`")]
pub struct RequireAuth;

#[allow(deprecated)]
impl RequireAuth {
    /// `RequireLayer::authenticated()`.
    #[deprecated(since = "0.2.0", note = "use `RequireLayer::authenticated()`")]
    pub fn layer() -> RequireLayer {
        RequireLayer::authenticated()
    }
}

/// Shorthand kept from 0.1: role requirements.
#[derive(Clone, Copy, Debug)]
#[deprecated(
    since = "0.2.0",
    note = "use `RequireLayer::any_role(..)` or `RequireLayer::all_roles(..)`"
)]
pub struct RequireRole;

#[allow(deprecated)]
impl RequireRole {
    /// `RequireLayer::any_role(roles)`.
    #[deprecated(since = "0.2.0", note = "use `RequireLayer::any_role(..)`")]
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
        RequireLayer::any_role(roles)
    }

    /// `RequireLayer::all_roles(roles)`.
    #[deprecated(since = "0.2.0", note = "use `RequireLayer::all_roles(..)`")]
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> RequireLayer {
        RequireLayer::all_roles(roles)
    }
}

/// Shorthand kept from 0.1: scope requirements.
#[derive(Clone, Copy, Debug)]
#[deprecated(
    since = "0.2.0",
    note = "use `RequireLayer::scope(..)` or `RequireLayer::all_scopes(..)`"
)]
pub struct RequireScope;

#[allow(deprecated)]
impl RequireScope {
    /// `RequireLayer::scope(scope)`.
    #[deprecated(since = "0.2.0", note = "use `RequireLayer::scope(..)`")]
    #[allow(clippy::new_ret_no_self)]
    pub fn new(scope: impl Into<String>) -> RequireLayer {
        RequireLayer::scope(scope)
    }

    /// `RequireLayer::all_scopes(scopes)`.
    #[deprecated(since = "0.2.0", note = "use `RequireLayer::all_scopes(..)`")]
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireLayer {
        RequireLayer::all_scopes(scopes)
    }
}
