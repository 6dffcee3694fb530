//! Guards: runtime-composable requirements on the request's [`Identity`](crate::Identity).
//!
//! A [`Requirement`] is a boolean expression over the identity (authenticated, has a role, is
//! allowed a scope, …) built with [`all`], [`any`] and [`not`]. [`RequireLayer`] enforces one:
//! an anonymous request that fails it gets `401`, an authenticated one `403` (with
//! `insufficient_scope` naming the scope when a scope was missing, RFC 6750 §3.1).
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use portcullis::guard::{self, RequireLayer};
//!
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }).layer(RequireLayer::any_role(["admin", "manager"])))
//!     .route("/docs", post(|| async { "ok" }).layer(RequireLayer::scope("documents:write")))
//!     .route(
//!         "/reports",
//!         get(|| async { "ok" }).layer(RequireLayer::new(guard::all([
//!             guard::authenticated(),
//!             guard::not(guard::role("suspended")),
//!         ]))),
//!     )
//!     .route("/me", get(|| async { "me" }).layer(RequireLayer::authenticated()));
//! ```

mod future;
mod layer;
mod requirement;
mod service;
#[cfg(test)]
mod tests;

pub use future::ResponseFuture;
pub use layer::RequireLayer;
#[allow(deprecated)]
pub use layer::{RequireAuth, RequireRole, RequireScope};
pub use requirement::{
    Requirement, all, any, any_role, assurance, authenticated, custom, not, role, scope, service,
    signed_in,
};
pub use service::RequireService;
