//! Tokens in the `Sec-WebSocket-Protocol` header, for browser WebSocket handshakes.
//!
//! A browser's `new WebSocket(url, protocols)` cannot set `Authorization`, but it can offer
//! subprotocols, which travel in a header rather than in the URL (where a `?token=` ends up in
//! access logs and histories, RFC 6750 §2.3). Clients offer `<prefix><token>`, for example
//! `access_token.eyJhbGciOi…`; the server must echo the offered protocol in its `101` answer,
//! because a browser fails a handshake whose answer names none of the protocols it offered
//! (RFC 6455 §4.1).

use async_trait::async_trait;
use http::HeaderMap;
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::request::Parts;

use super::authorization::is_b64token;
use super::query::is_websocket_upgrade;
use super::{CredentialSource, Credentials, Lookup, TokenResolver, lookup_found, resolve_found};
use crate::error::AuthError;
use crate::identity::Identity;

/// A token offered as a WebSocket subprotocol, found by [`protocol_token`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProtocolToken<'a> {
    protocol: &'a str,
    prefix_len: usize,
}

impl<'a> ProtocolToken<'a> {
    /// The token, without its prefix.
    pub fn token(&self) -> &'a str {
        &self.protocol[self.prefix_len..]
    }

    /// The whole subprotocol as offered, prefix included: the value to echo in the handshake
    /// answer (with axum, `WebSocketUpgrade::protocols([found.protocol().to_owned()])`).
    pub fn protocol(&self) -> &'a str {
        self.protocol
    }
}

/// Shows the prefix only: the rest is a credential.
impl std::fmt::Debug for ProtocolToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolToken")
            .field("prefix", &&self.protocol[..self.prefix_len])
            .finish_non_exhaustive()
    }
}

/// Finds the subprotocol starting with `prefix` among those a handshake offers.
///
/// * no `Sec-WebSocket-Protocol` header, or no offered protocol with the prefix: `Ok(None)`;
/// * exactly one: `Ok(Some(_))`, whatever other protocols are offered beside it;
/// * two or more, a bare prefix, a token outside RFC 6750's `b64token`, or a header that is
///   not visible ASCII: `Err(AuthError::InvalidRequest)` (400). Two tokens are refused rather
///   than one chosen, so that a proxy and the application can never disagree about which
///   credential a request carried.
///
/// The header may be sent several times; its values are comma-separated lists (RFC 6455
/// §11.3.4) and the prefix is matched exactly, case included.
///
/// ```
/// use http::HeaderMap;
/// use portcullis::source::protocol_token;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("sec-websocket-protocol", "graphql-ws, access_token.abc.def".parse().unwrap());
/// let found = protocol_token(&headers, "access_token.").unwrap().unwrap();
/// assert_eq!(found.token(), "abc.def");
/// assert_eq!(found.protocol(), "access_token.abc.def");
/// assert!(protocol_token(&headers, "bearer.").unwrap().is_none());
/// ```
pub fn protocol_token<'a>(
    headers: &'a HeaderMap,
    prefix: &str,
) -> Result<Option<ProtocolToken<'a>>, AuthError> {
    let mut found = None;
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let value = value.to_str().map_err(|_| {
            AuthError::InvalidRequest("Sec-WebSocket-Protocol header is not visible ASCII")
        })?;
        for protocol in value.split(',').map(|item| item.trim_matches([' ', '\t'])) {
            let Some(token) = protocol.strip_prefix(prefix) else {
                continue;
            };
            if found.is_some() {
                return Err(AuthError::InvalidRequest(
                    "more than one token in Sec-WebSocket-Protocol",
                ));
            }
            if !is_b64token(token.as_bytes()) {
                return Err(AuthError::InvalidRequest(
                    "Sec-WebSocket-Protocol token has invalid characters",
                ));
            }
            found = Some(ProtocolToken {
                protocol,
                prefix_len: prefix.len(),
            });
        }
    }
    Ok(found)
}

/// Reads the token a WebSocket handshake offers as the subprotocol `<prefix><token>`.
///
/// Only WebSocket upgrade requests are read. A request the source reads is authenticated
/// before the upgrade, so a bad token is refused with `401` and no socket is opened; an
/// application that must instead accept the socket and close it with a code (as some clients
/// expect) reads the header itself with [`protocol_token`] and resolves the token with its
/// [`TokenResolver`].
///
/// The application echoes the protocol in its answer (see [`ProtocolToken::protocol`]).
///
/// ```
/// # use portcullis::{Auth, AccessTokens, JwtConfig, store::MemoryStore};
/// # use portcullis::token::jwt::{JwtKey, JwtKeys};
/// use portcullis::source::SubprotocolToken;
/// # let auth = Auth::builder(MemoryStore::new()).build();
/// # let keys = JwtKeys::new(JwtKey::hs256(&[0u8; 32]).unwrap()).unwrap();
/// # let access_tokens = AccessTokens::new(&auth, keys, JwtConfig::new("iss", "aud"));
/// let source = SubprotocolToken::new(access_tokens, "access_token.");
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct SubprotocolToken<R> {
    resolver: R,
    prefix: String,
}

impl<R: TokenResolver> SubprotocolToken<R> {
    /// Reads the subprotocol starting with `prefix` (`access_token.`, say) on WebSocket
    /// upgrades.
    pub fn new(resolver: R, prefix: impl Into<String>) -> Self {
        Self {
            resolver,
            prefix: prefix.into(),
        }
    }

    /// The token of a request this source applies to, if it carries one.
    fn token<'a>(&self, request: &'a Parts) -> Result<Option<&'a str>, AuthError> {
        if !is_websocket_upgrade(request) {
            return Ok(None);
        }
        let Some(found) = protocol_token(&request.headers, &self.prefix)? else {
            return Ok(None);
        };
        if !self.resolver.recognizes(found.token()) {
            return Err(crate::InvalidToken::Malformed.into());
        }
        Ok(Some(found.token()))
    }
}

#[async_trait]
impl<R: TokenResolver> CredentialSource for SubprotocolToken<R> {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        lookup_found(&self.resolver, self.token(request.parts()))
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        resolve_found(&self.resolver, self.token(request.parts())).await
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    const PREFIX: &str = "access_token.";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn token_of(values: &[&str]) -> Result<Option<String>, AuthError> {
        let map = headers(values);
        protocol_token(&map, PREFIX).map(|found| found.map(|f| f.token().to_owned()))
    }

    #[test]
    fn finds_the_prefixed_protocol_among_others_in_any_header_line() {
        assert_eq!(token_of(&[]).unwrap(), None);
        assert_eq!(token_of(&["graphql-ws"]).unwrap(), None);
        assert_eq!(token_of(&["access_token.a.b-c"]).unwrap().unwrap(), "a.b-c");
        assert_eq!(
            token_of(&["chat,  access_token.xyz\t, v2"])
                .unwrap()
                .unwrap(),
            "xyz"
        );
        assert_eq!(
            token_of(&["chat", "access_token.xyz"]).unwrap().unwrap(),
            "xyz"
        );
    }

    #[test]
    fn the_prefix_is_matched_exactly() {
        assert_eq!(token_of(&["Access_Token.xyz"]).unwrap(), None);
        assert_eq!(token_of(&["access_tokenxyz"]).unwrap(), None);
    }

    #[test]
    fn the_protocol_to_echo_is_the_offered_one_whole() {
        let map = headers(&["chat, access_token.xyz"]);
        let found = protocol_token(&map, PREFIX).unwrap().unwrap();
        assert_eq!(found.protocol(), "access_token.xyz");
        assert!(!format!("{found:?}").contains("xyz"), "{found:?}");
    }

    #[test]
    fn two_tokens_a_bare_prefix_or_bad_characters_are_invalid_request() {
        for values in [
            &["access_token.a, access_token.b"][..],
            &["access_token.a", "access_token.a"],
            &["access_token."],
            &["access_token.a b"],
            &["access_token.a;b"],
        ] {
            assert!(
                matches!(token_of(values), Err(AuthError::InvalidRequest(_))),
                "{values:?}"
            );
        }
    }

    #[test]
    fn non_ascii_header_bytes_are_invalid_request() {
        let mut map = HeaderMap::new();
        map.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_bytes(b"access_token.\xff").unwrap(),
        );
        assert!(matches!(
            protocol_token(&map, PREFIX),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_header_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut map = HeaderMap::new();
                map.insert(SEC_WEBSOCKET_PROTOCOL, value);
                let _ = protocol_token(&map, PREFIX);
            }
        }

        /// What is accepted is exactly the one list item with the prefix, and a `b64token`.
        #[test]
        fn agrees_with_the_reference_reading(
            items in proptest::collection::vec(
                prop_oneof![
                    Just("access_token.".to_owned()),
                    "access_token\\.[A-Za-z0-9._~+/=-]{0,12}",
                    "access_token\\.[ -~]{0,12}",
                    "[a-z-]{1,8}",
                ],
                0..4,
            ),
        ) {
            let value = items.join(", ");
            let prefixed: Vec<&str> = value
                .split(',')
                .map(|item| item.trim_matches([' ', '\t']))
                .filter(|item| item.starts_with(PREFIX))
                .collect();
            let answer = HeaderValue::from_str(&value)
                .map(|v| {
                    let mut map = HeaderMap::new();
                    map.insert(SEC_WEBSOCKET_PROTOCOL, v);
                    protocol_token(&map, PREFIX).map(|f| f.map(|f| f.token().to_owned()))
                });
            let Ok(answer) = answer else { return Ok(()) };
            match prefixed.as_slice() {
                [] => prop_assert_eq!(answer.unwrap(), None),
                [one] if is_b64token(&one.as_bytes()[PREFIX.len()..]) => {
                    prop_assert_eq!(answer.unwrap(), Some(one[PREFIX.len()..].to_owned()));
                }
                _ => prop_assert!(matches!(answer, Err(AuthError::InvalidRequest(_)))),
            }
        }
    }
}
