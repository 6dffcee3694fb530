//! Tokens in `Authorization: Bearer`.

use async_trait::async_trait;

use super::{CredentialSource, Credentials, Lookup, TokenResolver, lookup_found, resolve_found};
use crate::error::AuthError;
use crate::identity::Identity;

/// Reads `Authorization: Bearer <token>` and resolves tokens its resolver recognises.
///
/// Use one `Bearer` per token kind; a token none of them recognises is refused by the
/// [`AuthLayer`](crate::AuthLayer) rather than ignored.
///
/// ```
/// # use portcullis::{Auth, ApiKeys, store::MemoryStore, token::TokenFormat};
/// use portcullis::source::Bearer;
/// # let auth = Auth::builder(MemoryStore::new()).build();
/// # let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_").unwrap());
/// let source = Bearer::new(api_keys);
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct Bearer<R> {
    resolver: R,
}

impl<R: TokenResolver> Bearer<R> {
    /// A bearer source for the tokens `resolver` recognises.
    pub fn new(resolver: R) -> Self {
        Self { resolver }
    }

    /// The request's bearer token, if this source's resolver recognises it: another kind is
    /// another source's to answer.
    fn token<'a>(&self, request: &'a Credentials<'_>) -> Result<Option<&'a str>, AuthError> {
        let token = request.bearer_token()?;
        Ok(token.filter(|token| self.resolver.recognizes(token)))
    }
}

#[async_trait]
impl<R: TokenResolver> CredentialSource for Bearer<R> {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        lookup_found(&self.resolver, self.token(request))
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        resolve_found(&self.resolver, self.token(request)).await
    }
}
