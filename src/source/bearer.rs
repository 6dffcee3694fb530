//! Tokens in `Authorization: Bearer`.

use async_trait::async_trait;

use super::{CredentialSource, Credentials, Lookup, TokenResolver, lookup_token};
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
}

#[async_trait]
impl<R: TokenResolver> CredentialSource for Bearer<R> {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        match request.bearer_token() {
            Err(error) => Lookup::Ready(Err(error)),
            Ok(Some(token)) if self.resolver.recognizes(token) => {
                lookup_token(&self.resolver, token)
            }
            Ok(_) => Lookup::Absent,
        }
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        match request.bearer_token()? {
            Some(token) if self.resolver.recognizes(token) => {
                self.resolver.resolve(token).await.map(Some)
            }
            _ => Ok(None),
        }
    }
}
