//! The API's error shape (`{"detail": ...}`, as FastAPI answers) and a JSON extractor whose
//! every rejection is a clear 4xx in that shape.

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use portcullis::store::StoreError;
use portcullis::{AuthError, JsonErrors, json_detail};
use serde::de::DeserializeOwned;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error response: a status and a detail message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    auth: Option<AuthError>,
    retry_after: Option<u64>,
    close_connection: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            auth: None,
            retry_after: None,
            close_connection: false,
        }
    }

    /// Adds `Connection: close`: the request's body was left unread, so the connection cannot
    /// carry another request, and a client must not put it back in its pool (RFC 9112 §9.6).
    pub fn closing_connection(mut self) -> Self {
        self.close_connection = true;
        self
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 401 with a Bearer challenge and a detail of the caller's choosing.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            detail: detail.into(),
            auth: Some(AuthError::MissingCredentials),
            retry_after: None,
            close_connection: false,
        }
    }

    /// The message for a person to read.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use portcullis::ErrorRenderer;
        let mut response = json_detail(self.status, &self.detail);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        if self.close_connection {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        // Authentication failures keep their RFC 6750 challenge and headers.
        if let Some(error) = self.auth {
            let rendered = JsonErrors::new("semantik").render(&error);
            response.headers_mut().extend(
                rendered
                    .headers()
                    .iter()
                    .filter(|(name, _)| *name != http::header::CONTENT_TYPE)
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let AuthError::Unavailable(cause) = &error {
            tracing::error!(error = %cause, "credential store unavailable");
        }
        Self {
            status: error.status(),
            detail: error.detail().to_owned(),
            auth: Some(error),
            retry_after: None,
            close_connection: false,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // Client text the store cannot keep (U+0000): the client's mistake, not an outage.
            StoreError::InvalidInput(field) => {
                Self::unprocessable(format!("{field} contains a character that is not allowed"))
            }
            other => AuthError::from(other).into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::unavailable(error).into()
    }
}

/// A JSON object body whose every rejection is a `{"detail"}` response: 415 without a JSON
/// content type, 413 when larger than [`MAX_BODY_BYTES`], 400 for malformed JSON, 422 for
/// anything but an object of the expected shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        declares_json(&request)?;
        let bytes = read_body(request).await?;
        parse_object(&bytes).map(Self)
    }
}

/// A 415 unless the request says its body is JSON.
fn declares_json(request: &Request) -> Result<(), ApiError> {
    let is_json = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json);
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        ))
    }
}

/// `application/json` or an `application/*+json` type, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(request: Request) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let body = request.into_body();
    // A declared Content-Length over the limit is refused before any of the body is read, so
    // a client cannot hold the connection by announcing megabytes and sending them slowly.
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large().closing_connection());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large().closing_connection())
}

/// Parses a JSON object into `T`. serde would also fill a struct from an array, positionally;
/// an API that documents objects must not accept that.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Request body is not valid JSON"))?;
    if !value.is_object() {
        return Err(ApiError::unprocessable(
            "Invalid request body: expected a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|error| ApiError::unprocessable(format!("Invalid request body: {error}")))
}

/// Parses an optional JSON object body: an empty body is `T::default()`.
pub async fn optional_json<T: DeserializeOwned + Default>(request: Request) -> Result<T, ApiError> {
    // An empty body needs no type; one with content must say it is JSON.
    let declared = declares_json(&request);
    let bytes = read_body(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    declared?;
    parse_object(&bytes)
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// Checks a string field's length in characters, and that it holds no control characters
/// (a NUL or an escape sequence in a name is an attack, never a name).
pub fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::unprocessable(format!(
            "{field} must be between {min} and {max} characters long"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

// Documentation only: the responses themselves are written by `json_detail`.
/// The body of every error response, as FastAPI answers.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    detail: String,
}

/// The refusals of an [`ApiJson`] body, in the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// 400.
    #[response(status = 400, description = "The body is not valid JSON")]
    Malformed(#[to_schema] ErrorBody),
    /// 413.
    #[response(status = 413, description = "The body is larger than 64 KiB")]
    TooLarge(#[to_schema] ErrorBody),
    /// 415.
    #[response(status = 415, description = "The body is not `application/json`")]
    NotJson(#[to_schema] ErrorBody),
    /// 422.
    #[response(
        status = 422,
        description = "The body is not an object of the expected shape, or a field is invalid"
    )]
    Invalid(#[to_schema] ErrorBody),
}

/// The refusals of a route that needs a credential, in the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AccessErrors {
    /// 401.
    #[response(
        status = 401,
        description = "No credential, or an invalid, expired or revoked one (RFC 6750 §3)",
        headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))
    )]
    Unauthorized(#[to_schema] ErrorBody),
    /// 403.
    #[response(
        status = 403,
        description = "The credential lacks the scope, role or active account the route needs"
    )]
    Forbidden(#[to_schema] ErrorBody),
}

/// 404, in the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum NotFound {
    /// 404.
    #[response(status = 404, description = "No such resource, or not the caller's")]
    NotFound(#[to_schema] ErrorBody),
}

/// 429, in the OpenAPI document: every route has a rate limit.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum RateLimited {
    /// 429.
    #[response(
        status = 429,
        description = "Over a rate limit (on login, also: too many failed attempts)",
        headers(("Retry-After" = u64, description = "Seconds until a retry may succeed"))
    )]
    RateLimited(#[to_schema] ErrorBody),
}
