//! Guards: runtime-composable requirements on the request's [`Identity`](crate::Identity).
//!
//! A [`Requirement`] is a boolean expression over the identity (authenticated, has a role, is
//! allowed a scope, …) built with [`all`], [`any`] and [`not`]. [`RequireLayer`] enforces one:
//! an anonymous request that fails it gets `401`, an authenticated one `403` (with
//! `insufficient_scope` naming the scope when a scope was missing, RFC 6750 §3.1).
//!
//! Put a guard on the handler, with axum's [`Handler::layer`](https://docs.rs/axum/latest/axum/handler/trait.Handler.html#method.layer):
//!
//! ```
//! use axum::{Router, handler::Handler, routing::{get, post}};
//! use portcullis::guard::{self, RequireLayer};
//!
//! async fn ok() -> &'static str {
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/admin", get(ok.layer(RequireLayer::any_role(["admin", "manager"]))))
//!     .route("/docs", post(ok.layer(RequireLayer::scope("documents:write"))))
//!     .route(
//!         "/reports",
//!         get(ok.layer(RequireLayer::new(guard::all([
//!             guard::authenticated(),
//!             guard::not(guard::role("suspended")),
//!         ])))),
//!     )
//!     .route("/me", get(ok.layer(RequireLayer::authenticated())));
//! ```
//!
//! On a method router (`get(ok).layer(guard)`) a guard works the same, but axum boxes the
//! route once more and clones that box for every request: in `peers/benches/matrix.rs` a
//! cached API key behind a method-router guard costs about 120 ns more than behind one stacked
//! layer, behind a handler guard about 50 ns more. Routes sharing one requirement can take it
//! in the same `Router::layer` call as the authentication, which costs nothing beyond the check:
//!
//! ```
//! use axum::{Router, routing::get};
//! use portcullis::{Auth, ApiKeys, AuthLayer, guard::RequireLayer, source::Bearer};
//! use portcullis::{store::MemoryStore, token::TokenFormat};
//!
//! let auth = Auth::builder(MemoryStore::new()).build();
//! let api_keys = ApiKeys::new(&auth, TokenFormat::new("myapp_")?);
//! let auth_layer = AuthLayer::builder().source(Bearer::new(api_keys)).build();
//! let private: Router = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .route("/reports", get(|| async { "reports" }))
//!     .layer((auth_layer, RequireLayer::authenticated()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
