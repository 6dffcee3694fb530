//! `/ws/operations`: operation progress over a WebSocket, authenticated before the upgrade by
//! the `?token=` query source.

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use portcullis::CurrentUser;
use serde_json::json;

use super::api::{AccessErrors, ApiError, ErrorBody, RateLimited};

/// Operation progress over a WebSocket. Browsers cannot set headers on a WebSocket, so the
/// access token may come as `?token=` (upgrades only; never logged).
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
    user: CurrentUser,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| session(socket, user)),
        Err(rejection) => ApiError::new(rejection.status(), "Expected a WebSocket upgrade request")
            .into_response(),
    }
}

async fn session(mut socket: WebSocket, user: CurrentUser) {
    let hello = json!({"type": "connected", "user_id": user.id.0, "username": user.username});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(text) if text.as_str() == "ping" => {
                let pong = json!({"type": "pong"}).to_string();
                if socket.send(Message::Text(pong.into())).await.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}
