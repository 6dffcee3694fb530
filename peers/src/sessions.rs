//! axum-login with tower-sessions' memory store, set up as its documentation shows, with a
//! user logged in so that requests carry a live session cookie.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, login_required};
use http::{HeaderValue, Request, StatusCode, header};
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

/// The user type axum-login stores in the session.
#[derive(Clone, Debug)]
pub struct SessionUser {
    id: i64,
    /// Changing it (say, with the password) invalidates the user's sessions.
    auth_hash: Vec<u8>,
}

impl AuthUser for SessionUser {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

/// Users kept in memory, as the store behind axum-login.
#[derive(Clone, Debug, Default)]
pub struct Backend {
    users: Arc<HashMap<i64, SessionUser>>,
}

/// The backend's error type; its lookups cannot fail.
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for Never {}

impl AuthnBackend for Backend {
    type User = SessionUser;
    type Credentials = i64;
    type Error = Never;

    async fn authenticate(&self, user_id: i64) -> Result<Option<SessionUser>, Never> {
        Ok(self.users.get(&user_id).cloned())
    }

    async fn get_user(&self, user_id: &i64) -> Result<Option<SessionUser>, Never> {
        Ok(self.users.get(user_id).cloned())
    }
}

async fn login(mut session: AuthSession<Backend>) -> StatusCode {
    match session.authenticate(1).await {
        Ok(Some(user)) if session.login(&user).await.is_ok() => StatusCode::NO_CONTENT,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// `router` behind `login_required!`, and the cookie of a logged-in session.
pub async fn axum_login_router(router: Router) -> (Router, HeaderValue) {
    let backend = Backend {
        users: Arc::new(HashMap::from([(
            1,
            SessionUser {
                id: 1,
                auth_hash: b"password-hash-of-ada".to_vec(),
            },
        )])),
    };
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let app = router
        .route_layer(login_required!(Backend))
        .route("/login", post(login))
        .layer(AuthManagerLayerBuilder::new(backend, sessions).build());
    let response = app
        .clone()
        .oneshot(
            Request::post("/login")
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
        .expect("infallible");
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "axum-login login"
    );
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .expect("a session cookie");
    let cookie = set_cookie.split(';').next().expect("name=value");
    (
        app,
        HeaderValue::from_str(cookie).expect("a valid cookie header"),
    )
}
