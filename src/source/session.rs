//! [`SessionCookie`]: a browser session id in a cookie.

use async_trait::async_trait;

use super::{CredentialSource, Credentials, Lookup};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::session::Sessions;

/// Authenticates browsers by their session cookie (see [`Sessions`]).
///
/// Two things set it apart from the bearer sources:
///
/// * **A cookie that does not authenticate is ignored**, not refused: browsers keep sending a
///   cookie after its session expired, was logged out elsewhere or its account suspended, and
///   answering `401` would lock the user out of public pages, the login page included. The
///   request goes on as anonymous (later sources are asked), so guards still refuse it where
///   a login is needed. A store failure is still `503`.
/// * **Cross-site unsafe requests are refused** (`403`, CSRF): a `POST`, `PUT`, `PATCH`,
///   `DELETE` or WebSocket handshake that the cookie would authenticate must pass the sessions'
///   [`CrossOrigin`](crate::csrf::CrossOrigin) check. Requests authenticated by a later
///   source (a bearer token) are not checked: a browser never adds those on its own.
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{Auth, AuthLayer, Identity, session::Sessions, source::{Bearer, SessionCookie}};
/// use portcullis::{ApiKeys, store::MemoryStore, token::TokenFormat};
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let sessions = Sessions::new(&auth, TokenFormat::new("pcs_")?);
/// let api_keys = ApiKeys::new(&auth, TokenFormat::new("kk-")?);
///
/// // Khoj's order: the session cookie first, then bearer tokens.
/// let app: Router = Router::new()
///     .route("/api/me", get(|identity: Identity| async move { identity.name().to_owned() }))
///     .layer(
///         AuthLayer::builder()
///             .source(SessionCookie::new(sessions))
///             .source(Bearer::new(api_keys))
///             .build(),
///     );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SessionCookie {
    sessions: Sessions,
}

impl SessionCookie {
    /// Reads the cookie that `sessions` sets.
    pub fn new(sessions: Sessions) -> Self {
        Self { sessions }
    }

    /// What a resolved session means for this request.
    fn settle(&self, request: &Credentials<'_>, answer: Result<Identity, AuthError>) -> Lookup {
        match answer {
            Ok(identity) => Lookup::Ready(
                self.sessions
                    .cross_origin_check()
                    .check(request.parts())
                    .map(|()| identity)
                    .map_err(|_| AuthError::CrossSiteRequest),
            ),
            Err(unavailable @ AuthError::Unavailable(_)) => Lookup::Ready(Err(unavailable)),
            Err(_) => Lookup::Absent,
        }
    }
}

#[async_trait]
impl CredentialSource for SessionCookie {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        let Some(id) = self.sessions.presented(&request.parts().headers) else {
            return Lookup::Absent;
        };
        match self.sessions.resolve_now(id) {
            Some(answer) => self.settle(request, answer),
            None => Lookup::Pending,
        }
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        let Some(id) = self.sessions.presented(&request.parts().headers) else {
            return Ok(None);
        };
        let answer = self.sessions.resolve(id).await;
        match self.settle(request, answer) {
            Lookup::Ready(result) => result.map(Some),
            Lookup::Absent | Lookup::Pending => Ok(None),
        }
    }
}
