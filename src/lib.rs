//! # portcullis
//!
//! Authentication and authorization for [tower] and [axum] services: one [`AuthLayer`] with
//! ordered credential sources (browser [sessions](session) with CSRF protection and
//! [safe post-login redirects](redirect), API keys, JWT
//! access tokens, an internal service key, WebSocket query tokens), runtime-composable [guards](guard), extractors, refresh-token rotation with
//! reuse detection, Argon2id passwords, and pluggable [stores](store) (users, tokens, one-time
//! secrets, counters, events) behind a cached SHA-256 token lookup.
//!
//! ## The request path
//!
//! ```text
//! request ─▶ AuthLayer: sources in order ─▶ Identity in the request extensions (or none)
//!         ─▶ guards: RequireLayer::authenticated / any_role / scope / new(all / any / not)
//!         ─▶ handler: Identity, Option<Identity>, CurrentUser extractors
//! ```
//!
//! ## The sign-in path
//!
//! ```text
//! first factor (PasswordLogin::sign_in, …) ─▶ SignIn pipeline: second factors the user is enrolled in
//!         ─▶ SignedIn(Authenticated) ─▶ Sessions::start (cookie) or TokenPairs::issue (bearer pair)
//!            recording the factors (amr) and auth_time that guard::assurance and
//!            Auth::require_recent_sign_in check later
//! ```
//!
//! See [`sign_in`] and [`assurance`].
//!
//! ## Quick start
//!
//! ```
//! use axum::{Router, handler::Handler, routing::get};
//! use portcullis::{AccessTokens, ApiKeys, Auth, AuthLayer, CurrentUser, JwtConfig};
//! use portcullis::guard::RequireLayer;
//! use portcullis::source::Bearer;
//! use portcullis::store::MemoryStore;
//! use portcullis::token::{TokenFormat, jwt::{JwtKey, JwtKeys}};
//!
//! let auth = Auth::builder(MemoryStore::new()).build();
//! let api_keys = ApiKeys::new(&auth, TokenFormat::new("myapp_")?);
//! let keys = JwtKeys::new(JwtKey::hs256(b"at least thirty-two bytes of secret!")?)?;
//! let jwts = AccessTokens::new(&auth, keys, JwtConfig::new("myapp", "myapp-api"));
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|user: CurrentUser| async move { user.username.clone() }))
//!     .route("/reports", get(reports.layer(RequireLayer::scope("reports:read"))))
//!     .layer(AuthLayer::builder().source(Bearer::new(api_keys)).source(Bearer::new(jwts)).build());
//!
//! async fn reports() -> &'static str {
//!     "…"
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A guard goes on the handler (`Handler::layer`, as here) or on a router of routes sharing
//! it; on a method router (`get(reports).layer(..)`) it works too, but axum then boxes the
//! route once more for every request (see [`guard`]).
//!
//! ## Features
//!
//! | feature | adds |
//! |---|---|
//! | *(default)* | everything above with [`MemoryStore`](store::MemoryStore) |
//! | `sqlite` | `SqliteStore` (sqlx, embedded migrations) |
//! | `postgres` | `PostgresStore` (sqlx, embedded migrations) and `PostgresBus` (`LISTEN/NOTIFY`) |
//! | `redis` | `RedisSessions` (sessions and one-time secrets in Redis) and `RedisBus` |
//! | `ratelimit` | `RateLimitLayer`, `LoginThrottle`, `QuotaLayer`, `ClientIp` (with `redis`: shared through Redis) |
//! | `smtp` | `mail::SmtpMailer` (lettre, rustls) |
//! | `oidc` | `flows::OidcSignIn`: sign-in with Google or any OpenID Connect provider (openidconnect; reqwest, rustls) |
//! | `bcrypt` | verification of legacy bcrypt password hashes, rehashed to Argon2id at login |
//! | `conformance` | the store conformance tests as a kit for third-party stores (`store_conformance!`) |
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_token;
mod api_key;
pub mod assurance;
pub mod audit;
mod auth;
pub mod bus;
mod cache;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod csrf;
mod error;
mod extract;
pub mod flows;
pub mod guard;
mod identity;
mod layer;
mod login_redirect;
pub mod mail;
mod one_time;
mod password;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
pub mod redirect;
mod refresh_token;
mod secret;
pub mod server_secret;
pub mod session;
pub mod sign_in;
pub mod source;
pub mod store;
pub mod token;
mod token_pair;
mod usage;

pub use access_token::{ACCESS_TOKEN_TYP, AccessTokens, IssueError, IssuedAccessToken, JwtConfig};
pub use api_key::{ApiKeyError, ApiKeys, CreatedApiKey, MAX_KEY_NAME_LEN, NewApiKey};
pub use auth::{Auth, AuthBuilder, Credentials};
pub use cache::CacheConfig;
pub use error::{AuthError, ErrorRenderer, InvalidToken, JsonErrors, RequestHead, json_detail};
pub use extract::{AuthRejection, CurrentUser};
pub use identity::{AuthMethod, Identity, Scopes, Subject};
pub use layer::{AuthLayer, AuthLayerBuilder, AuthService, ResponseFuture};
pub use one_time::{
    DEFAULT_CODE_ATTEMPTS, DEFAULT_CODE_DIGITS, IssueSecretError, IssuedCode, IssuedLink,
    OneTimeSecrets, RedeemError, SecretRequest,
};
pub use password::{PasswordError, PasswordPolicy, Passwords, PolicyViolation, Verification};
pub use refresh_token::{
    DEFAULT_FAMILY_LIFETIME, IssueRefreshError, IssuedRefreshToken, RefreshTokens, Refreshed,
};
pub use secret::Secret;
pub use token_pair::{TokenPair, TokenPairs};
