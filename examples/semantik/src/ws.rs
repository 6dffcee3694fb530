//! `/ws/operations`: operation progress over a WebSocket, authenticated before the upgrade by
//! a bearer header or the `?token=` query source, and re-checked while it stays open.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use portcullis::source::TokenResolver;
use portcullis::{AccessTokens, CurrentUser, Secret};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::{AccessErrors, ApiError, ErrorBody, RateLimited};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<Secret>,
}

/// Operation progress over a WebSocket. Browsers cannot set headers on a WebSocket, so the
/// access token may come as `?token=` (upgrades only; never logged). Only a sign-in's access
/// token opens one (an API key is refused with 403), and the socket closes with 1008 (policy
/// violation) within `WS_RECHECK_SECONDS` of that token ending: logout, suspension, expiry.
#[utoipa::path(
    get, path = "/ws/operations", tag = "operations",
    security(("bearer" = []), ("query_token" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = ErrorBody),
        AccessErrors, RateLimited,
    )
)]
pub async fn operations(
    State(state): State<AppState>,
    user: CurrentUser,
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
    // The token the authentication layer accepted: the header is read before the query.
    let header = portcullis::source::bearer_token(&headers)
        .ok()
        .flatten()
        .map(Secret::new);
    let Some(token) = header.or_else(|| query.ok().and_then(|Query(query)| query.token)) else {
        return ApiError::unauthorized("Not authenticated").into_response();
    };
    let watch = Watch {
        access: state.tokens.access_tokens().clone(),
        token,
        every: state.ws_recheck,
    };
    upgrade.on_upgrade(move |socket| session(socket, user, watch))
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
            Err(portcullis::AuthError::Unavailable(_)) => None,
            Err(portcullis::AuthError::InvalidToken(portcullis::InvalidToken::Expired)) => {
                Some("Token has expired")
            }
            Err(_) => Some("Credential is no longer valid"),
        }
    }
}

async fn session(mut socket: WebSocket, user: CurrentUser, watch: Watch) {
    let hello = json!({"type": "connected", "user_id": user.id.0, "username": user.username});
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
            Some(Ok(Message::Text(text))) if text.as_str() == "ping" => {
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
