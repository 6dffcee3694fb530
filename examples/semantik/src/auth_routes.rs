//! `/api/auth/*`: register, login, refresh, logout, me.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use http::StatusCode;
use portcullis::flows::{RegisterError, Registration};
use portcullis::sign_in::{Refusal, SignInError, SignInOutcome};
use portcullis::store::{SUPERUSER_ROLE, User};
use portcullis::{AuthError, CurrentUser, Secret, TokenPair};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::api::{
    AccessErrors, ApiError, ApiJson, BodyErrors, ErrorBody, RateLimited, check_len, optional_json,
};
use super::limits::ClientAddress;

/// Semantik's `User` response, with every field upstream returns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    /// Semantik's web app shows its admin pages only when this is true.
    pub is_superuser: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
}

impl From<&User> for UserOut {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.0,
            username: user.username.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
            is_active: user.is_active,
            is_superuser: user.is_superuser(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login: user.last_login,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserCreate {
    #[schema(min_length = 3, max_length = 50, pattern = "^[A-Za-z0-9_-]+$")]
    username: String,
    #[schema(max_length = 254)]
    email: String,
    #[schema(value_type = String, min_length = 8)]
    password: Secret,
    #[serde(default)]
    #[schema(max_length = 255)]
    full_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserLogin {
    username: String,
    #[schema(value_type = String)]
    password: Secret,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(value_type = String)]
    refresh_token: Option<Secret>,
}

/// `?refresh_token=`, which upstream accepts beside the body. Nothing here logs a query
/// string, so the token stays out of this server's logs (a proxy's are another matter: prefer
/// the body).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefreshQuery {
    #[param(value_type = Option<String>)]
    refresh_token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct LogoutRequest {
    /// The session to end; omitted, every session of the caller.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Secret>,
    /// With every session, also revoke every API key of the caller ("end every credential",
    /// after a suspected compromise). Only without `refresh_token`.
    #[serde(default)]
    revoke_api_keys: bool,
}

/// Semantik's `Token` response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenOut {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
}

fn validate_username(username: &str) -> Result<(), ApiError> {
    check_len("username", username, 3, 50)?;
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::unprocessable(
            "username may contain only ASCII letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), ApiError> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "email is not a valid email address",
        ))
    }
}

/// Creates an account; the first one becomes the superuser unless `FIRST_USER_IS_SUPERUSER`
/// is off.
#[utoipa::path(
    post, path = "/api/auth/register", tag = "auth", request_body = UserCreate,
    responses(
        (status = 200, description = "The new user", body = UserOut),
        (status = 401, description = "A credential was sent and is invalid (refused on every route)", body = ErrorBody),
        (status = 409, description = "The username or email is taken", body = ErrorBody),
        BodyErrors, RateLimited,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<UserCreate>,
) -> Result<Json<UserOut>, ApiError> {
    let mut registration = registration(
        &body.username,
        &body.email,
        body.password.expose(),
        body.full_name,
    )?;
    if state.first_user_is_superuser {
        registration = registration.first_user_roles([SUPERUSER_ROLE]);
    }
    register_user(&state, registration)
        .await
        .map(|user| Json(UserOut::from(&user)))
}

/// A registration from the fields of `/register` (and `create-user`), validated.
pub fn registration(
    username: &str,
    email: &str,
    password: &str,
    full_name: Option<String>,
) -> Result<Registration, ApiError> {
    let email = email.trim();
    validate_username(username)?;
    validate_email(email)?;
    if let Some(name) = &full_name {
        check_len("full_name", name, 0, 255)?;
    }
    Ok(Registration::new(username, password)
        .email(email)
        .full_name(full_name))
}

/// Creates the account, answering each refusal as `/register` does.
pub async fn register_user(state: &AppState, registration: Registration) -> Result<User, ApiError> {
    match state.login.register(registration).await {
        Ok(user) => Ok(user),
        Err(RegisterError::Policy(violation)) => {
            Err(ApiError::unprocessable(capitalise(&violation.to_string())))
        }
        Err(RegisterError::Taken("email")) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Email already registered",
        )),
        Err(RegisterError::Taken(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Username already exists",
        )),
        Err(RegisterError::Store(error)) => Err(error.into()),
        Err(error) => {
            tracing::error!(%error, "registration failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Registration is temporarily unavailable",
            ))
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Exchanges a username and password for an access and a refresh token.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth", request_body = UserLogin,
    responses(
        (status = 200, description = "A bearer pair", body = TokenOut),
        (status = 401, description = "Incorrect username or password, or an invalid credential was sent", body = ErrorBody),
        (status = 403, description = "The account is deactivated", body = ErrorBody),
        BodyErrors, RateLimited,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<UserLogin>,
) -> Result<Json<TokenOut>, ApiError> {
    let attempt = state
        .login
        .sign_in(&body.username, body.password.expose(), address);
    let signed_in = match attempt.await {
        Ok(SignInOutcome::SignedIn(signed_in)) => signed_in,
        Ok(SignInOutcome::Refused(Refusal::Throttled { retry_after })) => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed login attempts; try again in {seconds} seconds"),
            )
            .retry_after(seconds));
        }
        Ok(SignInOutcome::Refused(Refusal::Inactive)) => return Err(AuthError::InactiveUser.into()),
        // Wrong credentials, and any outcome this server's pipeline (which has no second
        // factor) cannot produce.
        Ok(_) => return Err(ApiError::unauthorized("Incorrect username or password")),
        Err(SignInError::Store(error)) => return Err(error.into()),
        Err(error) => {
            tracing::error!(%error, "login failed");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Login is temporarily unavailable",
            ));
        }
    };
    let pair = state.tokens.issue(&signed_in).await?;
    Ok(Json(TokenOut::from(pair)))
}

impl From<TokenPair> for TokenOut {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access.token.into_exposed(),
            refresh_token: pair.refresh.secret.into_exposed(),
            token_type: "bearer",
        }
    }
}

/// Rotates a refresh token, given in the body or as `?refresh_token=`: a new pair, the old
/// refresh token spent. Reusing a spent one revokes its whole session (RFC 9700 §4.14.2).
#[utoipa::path(
    post, path = "/api/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Empty when the token is in the query"),
    params(RefreshQuery),
    responses(
        (status = 200, description = "A new bearer pair", body = TokenOut),
        (status = 400, description = "No refresh token, or one in both the body and the query", body = ErrorBody),
        (status = 401, description = "The refresh token is invalid, expired, spent or revoked, or an invalid credential was sent", body = ErrorBody),
        (status = 403, description = "The account is deactivated", body = ErrorBody),
        BodyErrors, RateLimited,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    query: Result<Query<RefreshQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<TokenOut>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Invalid query string"))?;
    let body: RefreshRequest = optional_json(request).await?;
    let token = match (query.refresh_token, body.refresh_token) {
        (Some(token), None) | (None, Some(token)) => token,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Missing refresh token",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Send the refresh token in the body or in the query, not both",
            ));
        }
    };
    let pair = state.tokens.refresh(token.expose()).await?;
    Ok(Json(TokenOut::from(pair)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    message: &'static str,
}

/// Revokes one session (the refresh token given) or, with an empty body, all of them, and
/// with `revoke_api_keys` every API key too. Needs a sign-in's access token: an API key is
/// refused with 403, whatever its permissions.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "Empty: every session"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out", body = Message),
        BodyErrors, AccessErrors, RateLimited,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    request: Request,
) -> Result<Json<Message>, ApiError> {
    let body: LogoutRequest = optional_json(request).await?;
    match body.refresh_token {
        Some(_) if body.revoke_api_keys => {
            return Err(ApiError::unprocessable(
                "revoke_api_keys ends every credential: send it without refresh_token",
            ));
        }
        Some(token) => {
            state
                .tokens
                .refresh_tokens()
                .revoke(token.expose(), user.id)
                .await?;
        }
        None if body.revoke_api_keys => {
            let credentials = portcullis::Credentials::Everything;
            let reason = portcullis::store::RevokeReason::Logout;
            state
                .auth
                .end_credentials(user.id, credentials, reason)
                .await?;
        }
        None => {
            state.tokens.refresh_tokens().revoke_all(user.id).await?;
        }
    }
    Ok(Json(Message {
        message: "Logged out successfully",
    }))
}

/// The caller's account.
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserOut), AccessErrors, RateLimited)
)]
pub async fn me(user: CurrentUser) -> Json<UserOut> {
    Json(UserOut::from(user.user()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening item 17: these bodies derive `Debug`, and a `tracing::debug!(?body)` or a
    /// panic message printed the password or refresh token.
    #[test]
    fn request_bodies_holding_passwords_or_refresh_tokens_debug_as_redacted() {
        let secret = "s3cret-correct-horse";
        let shown = [
            format!(
                "{:?}",
                serde_json::from_value::<UserCreate>(serde_json::json!({
                    "username": "ada", "email": "ada@example.com", "password": secret,
                }))
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<UserLogin>(
                    serde_json::json!({"username": "ada", "password": secret})
                )
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<RefreshRequest>(
                    serde_json::json!({"refresh_token": secret})
                )
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<LogoutRequest>(
                    serde_json::json!({"refresh_token": secret})
                )
                .unwrap()
            ),
        ];
        for shown in shown {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }
}
