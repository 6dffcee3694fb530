//! Authentication and authorization failures, and how they become HTTP responses.
//!
//! The default rendering follows RFC 6750 §3: `401` with a `WWW-Authenticate: Bearer` challenge
//! (no error code when no credential was sent, `error="invalid_token"` when one was bad), `400
//! invalid_request` for a malformed `Authorization` header, `403 insufficient_scope`. The body is
//! `{"detail": "..."}`, the shape FastAPI and Django REST clients already read. Details never
//! say which half of a credential was wrong.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::store::StoreError;

/// Why a request was refused.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented where one is required.
    #[error("authentication required")]
    MissingCredentials,
    /// A credential was presented and is not valid.
    #[error("invalid credential: {0}")]
    InvalidToken(InvalidToken),
    /// The `Authorization` header is malformed (RFC 6750 §3.1 `invalid_request`).
    #[error("malformed authorization header: {0}")]
    InvalidRequest(&'static str),
    /// The credential is valid but its owner's account is deactivated.
    #[error("the account is inactive")]
    InactiveUser,
    /// The identity is authenticated but not allowed; `scope` names a missing scope, if any.
    #[error("forbidden")]
    Forbidden {
        /// The scope that would have allowed the request (RFC 6750 §3.1 `insufficient_scope`).
        scope: Option<String>,
    },
    /// The credential is valid, but the action needs a more recent sign-in than the
    /// credential's (RFC 9470): `401` with an `insufficient_user_authentication` challenge
    /// naming `max_age`, so the client signs in again and retries. See
    /// [`Auth::require_recent_sign_in`](crate::Auth::require_recent_sign_in).
    #[error("a sign-in within the last {max_age:?} is required")]
    StaleAuthentication {
        /// How recent the sign-in must be.
        max_age: Duration,
    },
    /// The credential is valid, but the action needs a stronger sign-in than the
    /// credential's (RFC 9470): `401` with an `insufficient_user_authentication` challenge
    /// naming the level in `acr_values`, so the client signs in with a second factor and
    /// retries. See [`guard::assurance`](crate::guard::assurance).
    #[error("a sign-in at {required:?} is required")]
    InsufficientAssurance {
        /// The level the action needs.
        required: crate::assurance::Assurance,
    },
    /// An unsafe request that a browser's session cookie would authenticate came from another
    /// site (see [`CrossOrigin`](crate::csrf::CrossOrigin)): `403`, with no challenge, since
    /// no other credential would make it acceptable.
    #[error("cross-site request refused")]
    CrossSiteRequest,
    /// Too many requests; try again after the given delay.
    #[error("rate limited")]
    RateLimited {
        /// How long until a retry can succeed.
        retry_after: Duration,
    },
    /// The credential store could not be reached. Never reported as "unauthenticated".
    #[error("credential store unavailable")]
    Unavailable(#[source] Arc<StoreError>),
}

/// The specific reason a credential was rejected, for logs and tests.
///
/// Responses collapse these to a generic message (except [`InvalidToken::Expired`], which
/// clients need to know to refresh), so an attacker learns nothing from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not in the expected format (bad prefix, length, characters, base64 or JSON).
    #[error("malformed")]
    Malformed,
    /// The opaque token's checksum does not match.
    #[error("bad checksum")]
    BadChecksum,
    /// Larger than the configured maximum; rejected before parsing.
    #[error("too large")]
    TooLarge,
    /// Well formed but not known to the store.
    #[error("unknown")]
    Unknown,
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Revoked (logout, deletion, rotation, reuse, password change).
    #[error("revoked")]
    Revoked,
    /// Its `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// Its `iat` is in the future.
    #[error("issued in the future")]
    IssuedInFuture,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Its algorithm is not the one configured for its key (including `none`).
    #[error("algorithm not allowed")]
    DisallowedAlgorithm,
    /// Its `kid` names no configured key.
    #[error("unknown key id")]
    UnknownKey,
    /// It carries a `crit` header this verifier does not understand (RFC 7515 §4.1.11).
    #[error("unsupported critical header")]
    CriticalHeader,
    /// It is a different type of token (e.g. a refresh or ID token presented as access token,
    /// RFC 8725 §3.11).
    #[error("wrong token type")]
    WrongType,
    /// Its issuer is not the configured one.
    #[error("wrong issuer")]
    WrongIssuer,
    /// It is not meant for this audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("missing or malformed claim {0}")]
    BadClaim(&'static str),
    /// A refresh token that was already rotated was presented again; its family is revoked.
    #[error("refresh token reused")]
    Reused,
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        Self::InvalidToken(reason)
    }
}

impl From<crate::token::TokenFormatError> for InvalidToken {
    fn from(error: crate::token::TokenFormatError) -> Self {
        match error {
            crate::token::TokenFormatError::BadChecksum => Self::BadChecksum,
            _ => Self::Malformed,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(Arc::new(error))
    }
}

impl AuthError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials
            | Self::InvalidToken(_)
            | Self::InactiveUser
            | Self::StaleAuthentication { .. }
            | Self::InsufficientAssurance { .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The human-readable `detail` shown to the client.
    pub fn detail(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "Not authenticated",
            Self::InvalidToken(InvalidToken::Expired) => "Token has expired",
            Self::InvalidToken(_) => "Could not validate credentials",
            Self::InvalidRequest(_) => "Malformed Authorization header",
            Self::InactiveUser => "Inactive user",
            Self::Forbidden { .. } => "Not enough permissions",
            Self::StaleAuthentication { .. } => {
                "A more recent sign-in is required: sign in again and retry"
            }
            Self::InsufficientAssurance { .. } => {
                "A stronger sign-in is required: sign in with a second factor and retry"
            }
            Self::CrossSiteRequest => "Cross-site request refused",
            Self::RateLimited { .. } => "Too many requests",
            Self::Unavailable(_) => "Authentication service temporarily unavailable",
        }
    }

    /// The RFC 6750 §3 `WWW-Authenticate` challenge for this error, if it has one.
    pub fn challenge(&self, realm: &str) -> Option<String> {
        let realm = quote(realm);
        match self {
            // §3.1: with no authentication information, no error code.
            Self::MissingCredentials => Some(format!("Bearer realm={realm}")),
            Self::InvalidToken(reason) => {
                let description = match reason {
                    InvalidToken::Expired => "The access token expired",
                    _ => "The access token is invalid",
                };
                Some(format!(
                    "Bearer realm={realm}, error=\"invalid_token\", error_description=\"{description}\""
                ))
            }
            Self::InactiveUser => Some(format!(
                "Bearer realm={realm}, error=\"invalid_token\", error_description=\"The account is inactive\""
            )),
            Self::InvalidRequest(_) => {
                Some(format!("Bearer realm={realm}, error=\"invalid_request\""))
            }
            Self::Forbidden { scope } => Some(match scope {
                Some(scope) => format!(
                    "Bearer realm={realm}, error=\"insufficient_scope\", scope={}",
                    quote(scope)
                ),
                None => format!("Bearer realm={realm}, error=\"insufficient_scope\""),
            }),
            // RFC 9470 §3: the error code, and the largest acceptable age in seconds.
            Self::StaleAuthentication { max_age } => Some(format!(
                "Bearer realm={realm}, error=\"insufficient_user_authentication\", \
                 error_description=\"A more recent authentication is required\", max_age={}",
                max_age.as_secs()
            )),
            // RFC 9470 §3: the error code, and the acceptable authentication context classes.
            Self::InsufficientAssurance { required } => Some(format!(
                "Bearer realm={realm}, error=\"insufficient_user_authentication\", \
                 error_description=\"A stronger authentication is required\", acr_values=\"{}\"",
                required.acr()
            )),
            Self::CrossSiteRequest | Self::RateLimited { .. } | Self::Unavailable(_) => None,
        }
    }
}

/// A quoted-string (RFC 9110 §5.6.4) with anything outside visible ASCII replaced, so that a
/// configured realm or scope can never produce an invalid header.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Turns an [`AuthError`] into a response. Replace it to answer browsers with a redirect to a
/// login page (see [`LoginRedirect`](crate::redirect::LoginRedirect)), to emit RFC 9457
/// problem details, or to match an existing API's error shape.
///
/// ```
/// use axum_core::response::{IntoResponse, Response};
/// use portcullis::{AuthError, ErrorRenderer, RequestHead};
///
/// /// Answers in plain text, and says which path was refused.
/// struct PlainText;
///
/// impl ErrorRenderer for PlainText {
///     fn render(&self, error: &AuthError) -> Response {
///         (error.status(), error.detail()).into_response()
///     }
///
///     fn render_for(&self, request: &RequestHead<'_>, error: &AuthError) -> Response {
///         let text = format!("{}: {}", request.uri().path(), error.detail());
///         (error.status(), text).into_response()
///     }
/// }
/// ```
pub trait ErrorRenderer: Send + Sync + 'static {
    /// The response for `error`.
    fn render(&self, error: &AuthError) -> Response;

    /// The response for `error` refusing `request`: what the layer, the guards and the
    /// extractors call. By default [`render`](Self::render); override it to answer by what was
    /// asked (a browser navigation, an `Accept` header).
    fn render_for(&self, request: &RequestHead<'_>, error: &AuthError) -> Response {
        let _ = request;
        self.render(error)
    }
}

/// What an [`ErrorRenderer`] may read of the request it refuses: method, URI and headers.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a http::Method,
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of a request, from its parts.
    pub fn new(method: &'a http::Method, uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Self {
        Self {
            method,
            uri,
            headers,
        }
    }

    /// The head of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        Self::new(request.method(), request.uri(), request.headers())
    }

    /// The head in `parts`.
    pub fn of_parts(parts: &'a http::request::Parts) -> Self {
        Self::new(&parts.method, &parts.uri, &parts.headers)
    }

    /// The method.
    pub fn method(&self) -> &'a http::Method {
        self.method
    }

    /// The URI as the request gave it.
    pub fn uri(&self) -> &'a http::Uri {
        self.uri
    }

    /// The headers.
    pub fn headers(&self) -> &'a http::HeaderMap {
        self.headers
    }
}

/// The default renderer: RFC 6750 challenges and a `{"detail": "..."}` JSON body.
#[derive(Clone, Debug)]
pub struct JsonErrors {
    realm: String,
}

impl JsonErrors {
    /// A renderer whose challenges name `realm`.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
        }
    }
}

impl Default for JsonErrors {
    fn default() -> Self {
        Self::new("api")
    }
}

impl ErrorRenderer for JsonErrors {
    fn render(&self, error: &AuthError) -> Response {
        let mut response = json_detail(error.status(), error.detail());
        let headers = response.headers_mut();
        if let Some(challenge) = error.challenge(&self.realm)
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let AuthError::RateLimited { retry_after } = error {
            // Round up: retrying after a truncated delay would be refused again.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let AuthError::Unavailable(_) = error {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON `{"detail": detail}` response with the given status.
///
/// ```
/// let response = portcullis::json_detail(http::StatusCode::NOT_FOUND, "Not Found");
/// assert_eq!(response.status(), 404);
/// ```
pub fn json_detail(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({ "detail": detail }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The renderer the [`AuthLayer`](crate::AuthLayer) configured, carried in the request
/// extensions so that guards and extractors further in answer the same way.
#[derive(Clone)]
pub(crate) struct Renderer(pub(crate) Arc<dyn ErrorRenderer>);

impl Renderer {
    pub(crate) fn of(extensions: &http::Extensions) -> Renderer {
        extensions
            .get::<Renderer>()
            .cloned()
            .unwrap_or_else(|| Renderer(Arc::new(JsonErrors::default())))
    }

    pub(crate) fn render(&self, request: &RequestHead<'_>, error: &AuthError) -> Response {
        self.0.render_for(request, error)
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Renderer(..)")
    }
}

impl IntoResponse for AuthError {
    /// Renders with [`JsonErrors::default`]. Inside an [`AuthLayer`](crate::AuthLayer), prefer the
    /// extractors, which use the layer's configured renderer.
    fn into_response(self) -> Response {
        JsonErrors::default().render(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_of(response: &Response) -> Option<&str> {
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_bad_checksum_keeps_its_name_and_other_format_errors_are_malformed() {
        use crate::token::TokenFormatError;
        assert_eq!(
            InvalidToken::from(TokenFormatError::BadChecksum),
            InvalidToken::BadChecksum
        );
        for error in [
            TokenFormatError::WrongPrefix,
            TokenFormatError::WrongLength,
            TokenFormatError::InvalidCharacter,
        ] {
            assert_eq!(InvalidToken::from(error), InvalidToken::Malformed);
        }
    }

    #[test]
    fn rfc6750_3_an_expired_token_says_so_in_the_challenge() {
        let challenge = AuthError::from(InvalidToken::Expired).challenge("app");
        assert_eq!(
            challenge.as_deref(),
            Some(
                "Bearer realm=\"app\", error=\"invalid_token\", \
                 error_description=\"The access token expired\""
            )
        );
    }

    #[test]
    fn an_error_outside_a_layer_renders_with_the_default_renderer() {
        let response = AuthError::MissingCredentials.into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(challenge_of(&response), Some("Bearer realm=\"api\""));
        let renderer = Renderer(Arc::new(JsonErrors::default()));
        assert_eq!(format!("{renderer:?}"), "Renderer(..)");
    }

    #[test]
    fn rfc6750_missing_token_has_no_error_code() {
        let response = JsonErrors::new("semantik").render(&AuthError::MissingCredentials);
        assert_eq!(response.status(), 401);
        assert_eq!(challenge_of(&response), Some("Bearer realm=\"semantik\""));
    }

    #[test]
    fn rfc6750_invalid_token_is_401_with_invalid_token_code() {
        let response = JsonErrors::default().render(&InvalidToken::BadSignature.into());
        assert_eq!(response.status(), 401);
        let challenge = challenge_of(&response).unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    #[test]
    fn rfc6750_malformed_request_is_400_invalid_request() {
        let response = JsonErrors::default().render(&AuthError::InvalidRequest("two headers"));
        assert_eq!(response.status(), 400);
        assert!(challenge_of(&response).unwrap().contains("invalid_request"));
    }

    #[test]
    fn rfc6750_insufficient_scope_is_403_and_names_the_scope() {
        let error = AuthError::Forbidden {
            scope: Some("collections:write".into()),
        };
        let response = JsonErrors::default().render(&error);
        assert_eq!(response.status(), 403);
        assert_eq!(
            challenge_of(&response),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"collections:write\"")
        );
    }

    #[test]
    fn rfc9470_3_a_weak_sign_in_is_401_insufficient_user_authentication_with_acr_values() {
        let error = AuthError::InsufficientAssurance {
            required: crate::assurance::Assurance::Aal2,
        };
        let response = JsonErrors::default().render(&error);
        assert_eq!(response.status(), 401);
        assert_eq!(
            challenge_of(&response),
            Some(
                "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
                 error_description=\"A stronger authentication is required\", acr_values=\"aal2\""
            )
        );
    }

    #[test]
    fn rfc9470_3_a_stale_sign_in_is_401_insufficient_user_authentication_with_max_age() {
        let error = AuthError::StaleAuthentication {
            max_age: Duration::from_secs(900),
        };
        let response = JsonErrors::default().render(&error);
        assert_eq!(response.status(), 401);
        assert_eq!(
            challenge_of(&response),
            Some(
                "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
                 error_description=\"A more recent authentication is required\", max_age=900"
            )
        );
    }

    #[test]
    fn details_do_not_say_which_check_failed() {
        let reasons = [
            InvalidToken::Unknown,
            InvalidToken::BadSignature,
            InvalidToken::Revoked,
            InvalidToken::WrongAudience,
            InvalidToken::BadChecksum,
        ];
        for reason in reasons {
            assert_eq!(
                AuthError::from(reason).detail(),
                "Could not validate credentials"
            );
        }
    }

    #[test]
    fn rate_limited_rounds_retry_after_up() {
        let error = AuthError::RateLimited {
            retry_after: Duration::from_millis(1200),
        };
        let response = JsonErrors::default().render(&error);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn unavailable_store_is_503_not_401() {
        let error = AuthError::from(StoreError::Corrupt("x".into()));
        assert_eq!(JsonErrors::default().render(&error).status(), 503);
    }

    #[test]
    fn hostile_realm_cannot_break_the_header() {
        let response = JsonErrors::new("a\"b\r\nX-Evil: 1").render(&AuthError::MissingCredentials);
        assert_eq!(
            challenge_of(&response),
            Some("Bearer realm=\"a\\\"b??X-Evil: 1\"")
        );
    }
}
