//! [`SingleUser`]: one account for every request, for single-person installs that turn
//! sign-in off.

use async_trait::async_trait;

use super::{CredentialSource, Credentials, Lookup};
use crate::error::AuthError;
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::store::User;

/// Authenticates every request as one configured user, whatever it carries: the "anonymous
/// mode" of a server run by one person on their own machine (Khoj's `--anonymous-mode`).
///
/// It answers every request, so sources after it are never asked and a bearer token is
/// ignored rather than checked. Put it in a layer of its own; mixing it with real
/// credentials would let anyone in as its user. The identity's method is
/// [`AuthMethod::SingleUser`]: not a sign-in ([`Identity::is_signed_in`] is `false`).
///
/// ```
/// use portcullis::AuthLayer;
/// use portcullis::source::SingleUser;
/// # use portcullis::store::User;
/// # let default_user = User::new(portcullis::store::UserId(1), "default", time::OffsetDateTime::UNIX_EPOCH);
///
/// let layer = AuthLayer::builder().source(SingleUser::new(default_user)).build();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct SingleUser {
    /// Built once: every request gets a clone of the same identity.
    identity: Identity,
}

impl SingleUser {
    /// Every request is `user`, with all of its rights.
    pub fn new(user: User) -> Self {
        Self {
            identity: Identity::user(user, AuthMethod::SingleUser, Scopes::Unrestricted),
        }
    }

    /// The identity every request gets.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

#[async_trait]
impl CredentialSource for SingleUser {
    fn lookup(&self, _request: &Credentials<'_>) -> Lookup {
        Lookup::Ready(Ok(self.identity.clone()))
    }

    async fn authenticate(
        &self,
        _request: &Credentials<'_>,
    ) -> Result<Option<Identity>, AuthError> {
        Ok(Some(self.identity.clone()))
    }
}
