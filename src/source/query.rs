//! Tokens in the query string, for WebSocket handshakes that cannot send headers.

use async_trait::async_trait;
use http::header::{CONNECTION, UPGRADE};
use http::request::Parts;

use super::{CredentialSource, Credentials, Lookup, TokenResolver, lookup_found, resolve_found};
use crate::error::AuthError;
use crate::identity::Identity;

/// Reads `?token=<token>` on WebSocket upgrade requests under a path prefix.
///
/// Browsers cannot set headers on a WebSocket handshake, so the token travels in the URL.
/// Because URLs end up in logs and histories (RFC 6750 §2.3), this source only looks at
/// upgrade requests under the configured prefix, and the token is checked before the upgrade.
///
/// ```
/// # use portcullis::{Auth, AccessTokens, JwtConfig, store::MemoryStore};
/// # use portcullis::token::jwt::{JwtKey, JwtKeys};
/// use portcullis::source::QueryToken;
/// # let auth = Auth::builder(MemoryStore::new()).build();
/// # let keys = JwtKeys::new(JwtKey::hs256(&[0u8; 32]).unwrap()).unwrap();
/// # let access_tokens = AccessTokens::new(&auth, keys, JwtConfig::new("iss", "aud"));
/// let source = QueryToken::new(access_tokens, "/ws/");
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct QueryToken<R> {
    resolver: R,
    path_prefix: String,
    parameter: String,
    upgrades_only: bool,
}

impl<R: TokenResolver> QueryToken<R> {
    /// Reads the `token` parameter of WebSocket upgrades whose path starts with `path_prefix`.
    pub fn new(resolver: R, path_prefix: impl Into<String>) -> Self {
        Self {
            resolver,
            path_prefix: path_prefix.into(),
            parameter: "token".to_owned(),
            upgrades_only: true,
        }
    }

    /// Reads another parameter name.
    #[must_use]
    pub fn parameter(mut self, name: impl Into<String>) -> Self {
        self.parameter = name.into();
        self
    }

    /// Also reads the parameter on plain (non-upgrade) requests under the prefix, e.g. for
    /// server-sent event streams opened by `EventSource`, which cannot send headers either.
    #[must_use]
    pub fn any_request(mut self) -> Self {
        self.upgrades_only = false;
        self
    }

    fn applies_to(&self, request: &Parts) -> bool {
        request.uri.path().starts_with(&self.path_prefix)
            && (!self.upgrades_only || is_websocket_upgrade(request))
    }
}

pub(super) fn is_websocket_upgrade(request: &Parts) -> bool {
    let has_token = |name, token: &str| {
        request.headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has_token(UPGRADE, "websocket") && has_token(CONNECTION, "upgrade")
}

#[async_trait]
impl<R: TokenResolver> CredentialSource for QueryToken<R> {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        lookup_found(&self.resolver, self.token(request.parts()))
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        resolve_found(&self.resolver, self.token(request.parts())).await
    }
}

impl<R: TokenResolver> QueryToken<R> {
    /// The token of a request this source applies to, if it carries one.
    fn token(&self, request: &Parts) -> Result<Option<String>, AuthError> {
        if !self.applies_to(request) {
            return Ok(None);
        }
        let Some(query) = request.uri.query() else {
            return Ok(None);
        };
        let mut tokens = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| *name == self.parameter)
            .map(|(_, value)| value);
        let Some(token) = tokens.next() else {
            return Ok(None);
        };
        if tokens.next().is_some() {
            return Err(AuthError::InvalidRequest("more than one token parameter"));
        }
        if !self.resolver.recognizes(&token) {
            return Err(crate::InvalidToken::Malformed.into());
        }
        Ok(Some(token.into_owned()))
    }
}
