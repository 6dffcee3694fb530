//! `/ws/operations`: operation progress over a WebSocket, authenticated during the handshake
//! as Semantik's clients expect, and re-checked while it stays open.
//!
//! The access token comes as the subprotocol `access_token.<token>` (what Semantik's web app
//! sends: browsers cannot set headers on a WebSocket), echoed back in the answer; as
//! `Authorization: Bearer` (non-browser clients); or, deprecated, as `?token=`. The handshake
//! itself is accepted whenever it is one, and a refusal is a close frame the client can read
//! (a browser sees no HTTP status): 4003 for an origin that is not allowed, 1008 (policy
//! violation) for a missing or bad credential. Those answers count as failed authentications
//! for the failure rate limit, as a 401 would.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::{HOST, ORIGIN};
use portcullis::ratelimit::AuthenticationFailed;
use portcullis::source::{TokenResolver, protocol_token};
use portcullis::{AccessTokens, AuthError, Identity, Secret, guard};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::{ApiError, ErrorBody, RateLimited};

/// The subprotocol prefix Semantik's web app puts before the token.
pub const PROTOCOL_PREFIX: &str = "access_token.";
/// Semantik's close code for a cross-site handshake.
const ORIGIN_NOT_ALLOWED: u16 = 4003;

/// Which browser origins may open a socket: those allowed by `CORS_ORIGINS`, and the server's
/// own (an `Origin` naming the `Host` the handshake was sent to).
#[derive(Clone, Debug)]
pub struct AllowedOrigins {
    listed: Arc<[String]>,
    any: bool,
}

impl AllowedOrigins {
    pub fn new(cors_origins: &[String]) -> Self {
        Self {
            any: cors_origins.iter().any(|origin| origin == "*"),
            listed: cors_origins.iter().cloned().collect(),
        }
    }

    /// Non-browser clients send no `Origin`; a browser always does, so cross-site WebSocket
    /// hijacking (a page on another site opening a socket with the user's token) stops here.
    fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.any || self.listed.iter().any(|listed| listed == origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let host = headers.get(HOST).and_then(|host| host.to_str().ok());
        authority.is_some_and(|authority| Some(authority) == host)
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<Secret>,
}

/// Operation progress over a WebSocket. Only a sign-in's access token opens one (an API key
/// is a program's credential, not a person's), and the socket closes with 1008 within
/// `WS_RECHECK_SECONDS` of that token ending: logout, suspension, expiry.
#[utoipa::path(
    get, path = "/ws/operations", tag = "operations",
    security(("bearer" = []), ("query_token" = [])),
    params(("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`access_token.<token>`, echoed back")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol; a refusal is a close frame: 4003 for an origin that is not allowed, 1008 for a missing or bad credential"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "An `Authorization` header carried a bad credential", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        RateLimited,
    )
)]
pub async fn operations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(rejection.status(), "Expected a WebSocket upgrade request")
                .into_response();
        }
    };
    // A browser fails a handshake whose answer names none of the protocols it offered, and
    // would then never see the close code: the token's protocol is echoed, refused or not.
    let offered = protocol_token(&headers, PROTOCOL_PREFIX);
    let upgrade = match &offered {
        Ok(Some(found)) => upgrade.protocols([found.protocol().to_owned()]),
        _ => upgrade,
    };
    if !state.ws_origins.allow(&headers) {
        return close_at_once(upgrade, ORIGIN_NOT_ALLOWED, "Origin not allowed");
    }
    let query = query.ok().and_then(|Query(query)| query.token);
    let access = state.tokens.access_tokens();
    let token = match offered.and_then(|offered| credential(&headers, offered, query)) {
        Ok(token) => token,
        Err(error) => return refuse(upgrade, &error),
    };
    let identity = match open_with(access, &token).await {
        Ok(identity) => identity,
        Err(error) => return refuse(upgrade, &error),
    };
    let watch = Watch {
        access: access.clone(),
        token,
        every: state.ws_recheck,
    };
    upgrade.on_upgrade(move |socket| session(socket, identity, watch))
}

/// The one token the handshake carries, wherever it is. Two are refused rather than one
/// chosen, so that what was checked is never in doubt.
fn credential(
    headers: &HeaderMap,
    offered: Option<portcullis::source::ProtocolToken<'_>>,
    query: Option<Secret>,
) -> Result<Secret, AuthError> {
    let header = portcullis::source::bearer_token(headers)?;
    let mut found = [
        header.map(Secret::new),
        offered.map(|found| Secret::new(found.token())),
        query,
    ]
    .into_iter()
    .flatten();
    let token = found.next().ok_or(AuthError::MissingCredentials)?;
    if found.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "send one access token: as a subprotocol, a bearer header or ?token=",
        ));
    }
    Ok(token)
}

/// Who `token` signs in, if it may open a socket: a sign-in's access token.
async fn open_with(access: &AccessTokens, token: &Secret) -> Result<Identity, AuthError> {
    if !access.recognizes(token.expose()) {
        return Err(portcullis::InvalidToken::Malformed.into());
    }
    let identity = access.resolve(token.expose()).await?;
    guard::signed_in().check(Some(&identity))?;
    Ok(identity)
}

/// Accepts the handshake only to close the socket at once with `code`.
fn close_at_once(upgrade: WebSocketUpgrade, code: u16, reason: &str) -> Response {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    upgrade.on_upgrade(move |mut socket| async move {
        let _ = socket.send(Message::Close(Some(frame))).await;
    })
}

/// Closes the socket because of `error`: 1008 for a credential refused (counted by the
/// failure rate limit as a 401 would be), 1011 when the credential could not be checked.
fn refuse(upgrade: WebSocketUpgrade, error: &AuthError) -> Response {
    if let AuthError::Unavailable(cause) = error {
        tracing::error!(error = %cause, "credential store unavailable");
        return close_at_once(upgrade, close_code::ERROR, "Internal server error");
    }
    let mut response = close_at_once(upgrade, close_code::POLICY, error.detail());
    if error.status() == http::StatusCode::UNAUTHORIZED {
        response.extensions_mut().insert(AuthenticationFailed);
    }
    response
}

/// Re-checks the token that opened a socket.
struct Watch {
    access: AccessTokens,
    token: Secret,
    every: Duration,
}

impl Watch {
    /// Why the socket must close, if the token is no longer good. A cache hit costs no store
    /// query; revocations reach the cache through the invalidation bus.
    async fn refusal(&self) -> Option<&'static str> {
        match self.access.resolve(self.token.expose()).await {
            Ok(_) => None,
            Err(AuthError::Unavailable(_)) => None,
            Err(AuthError::InvalidToken(portcullis::InvalidToken::Expired)) => {
                Some("Token has expired")
            }
            Err(_) => Some("Credential is no longer valid"),
        }
    }
}

async fn session(mut socket: WebSocket, identity: Identity, watch: Watch) {
    let user_id = identity.user_id().map(|id| id.0);
    let hello = json!({"type": "connected", "user_id": user_id, "username": identity.name()});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut checks = tokio::time::interval(watch.every);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checks.tick().await;
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            _ = checks.tick() => {
                if let Some(reason) = watch.refusal().await {
                    let frame = CloseFrame { code: close_code::POLICY, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                continue;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) if is_ping(text.as_str()) => {
                let pong = json!({"type": "pong"}).to_string();
                if socket.send(Message::Text(pong.into())).await.is_err() {
                    return;
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    }
}

/// Semantik's clients ping with `{"type": "ping"}`; older ones with a bare `ping`.
fn is_ping(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("ping")
        || serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|message| message["type"] == "ping")
}
