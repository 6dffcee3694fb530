//! [`ClientApplication`]: a registered client (a messaging bridge, say) acting for the user
//! whose verified phone number it names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use http::request::Parts;
use rand::TryRng;
use rand::rngs::SysRng;

use super::{CredentialSource, Credentials, Lookup};
use crate::auth::Auth;
use crate::error::{AuthError, InvalidToken};
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::store::{NewUser, StoreError, User};
use crate::token::{GeneratedToken, RandomnessUnavailable, TokenDigest, TokenFormat};

/// A client application as its registry keeps it: the secret only as its SHA-256 digest.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The application's name, shown in [`AuthMethod::ClientApp`].
    pub name: String,
    /// The public id the client sends as the `client_id` query parameter.
    pub client_id: String,
    /// The digest of the client's secret.
    pub secret_digest: TokenDigest,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// A new client named `name` with a random id (32 hex digits) and a random secret in
    /// `secret_format`. The secret is returned once, to hand to the client's operator; only
    /// its digest is kept.
    ///
    /// Choose a secret prefix no [`Bearer`](super::Bearer) source of the same layer
    /// recognises, so that a client's secret is never taken for another kind of token.
    pub fn generate(
        name: impl Into<String>,
        secret_format: &TokenFormat,
    ) -> Result<(Self, GeneratedToken), RandomnessUnavailable> {
        let mut id = [0u8; 16];
        SysRng
            .try_fill_bytes(&mut id)
            .map_err(|_| RandomnessUnavailable)?;
        let secret = secret_format.generate()?;
        let client = Self {
            name: name.into(),
            client_id: id.iter().map(|byte| format!("{byte:02x}")).collect(),
            secret_digest: secret.digest(),
        };
        Ok((client, secret))
    }
}

/// Where [`ClientApplication`] finds registered clients: an application's table, or
/// [`MemoryClients`].
#[async_trait]
pub trait ClientRegistry: Send + Sync + 'static {
    /// The client whose id is `client_id`, if one is registered.
    async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError>;
}

/// A [`ClientRegistry`] in memory, for tests and for clients configured at start-up.
#[derive(Clone, Debug, Default)]
pub struct MemoryClients {
    clients: Arc<RwLock<HashMap<String, RegisteredClient>>>,
}

impl MemoryClients {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `client`, replacing one with the same id.
    pub fn register(&self, client: RegisteredClient) {
        self.clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(client.client_id.clone(), client);
    }
}

#[async_trait]
impl ClientRegistry for MemoryClients {
    async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        Ok(self
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
            .cloned())
    }
}

/// The longest `client_id` looked up; longer ones are refused without asking the registry.
const MAX_CLIENT_ID_LEN: usize = 128;

/// Authenticates a registered client application acting for a user, as Khoj's messaging
/// clients call: `?client_id=<id>&phone_number=<number>` with the client's secret as
/// `Authorization: Bearer <secret>`.
///
/// * Without a `client_id` parameter the source stands aside (later sources are asked).
/// * A missing, wrong or unknown client's secret is `401` (never a `500`, as upstream's
///   missing-header path was). The secret is compared as a SHA-256 digest in constant time,
///   and an unknown id costs the same digest, so timing does not tell ids apart.
/// * With the right secret, a missing or malformed `phone_number` is `400`; the number gets a
///   leading `+` when it has none (a `+` in a query string arrives as a space) and must then
///   be E.164. The user is the one whose phone number is *verified* and equal to it.
/// * An unknown number is `401`, unless [`create_users`](Self::create_users) is on and the
///   request says `create_if_not_exists=true`: then an account is made with the number as
///   username and verified phone.
///
/// The [`Identity`] names the client ([`AuthMethod::ClientApp`]) and holds the user's full
/// rights; it is not a sign-in ([`Identity::is_signed_in`] is `false`), so account actions
/// guarded by [`guard::signed_in`](crate::guard::signed_in) stay closed to it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use portcullis::{Auth, AuthLayer, store::MemoryStore, token::TokenFormat};
/// use portcullis::source::{ClientApplication, MemoryClients, RegisteredClient};
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let clients = MemoryClients::new();
/// let (whatsapp, secret) = RegisteredClient::generate("whatsapp", &TokenFormat::new("kcs_")?)?;
/// clients.register(whatsapp);
/// let layer = AuthLayer::builder()
///     .source(ClientApplication::new(&auth, clients).create_users(true))
///     .build();
/// # let _ = (layer, secret);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ClientApplication {
    auth: Auth,
    registry: Arc<dyn ClientRegistry>,
    create_users: bool,
}

impl std::fmt::Debug for ClientApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientApplication")
            .field("create_users", &self.create_users)
            .finish_non_exhaustive()
    }
}

/// What a client-application request says, read from its query string.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClientQuery {
    client_id: Option<String>,
    phone_number: Option<String>,
    create_if_not_exists: bool,
}

impl ClientQuery {
    fn of(request: &Parts) -> Result<Self, AuthError> {
        let mut query = Self::default();
        let Some(text) = request.uri.query() else {
            return Ok(query);
        };
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            let slot = match &*name {
                "client_id" => &mut query.client_id,
                "phone_number" => &mut query.phone_number,
                "create_if_not_exists" => {
                    query.create_if_not_exists = value.eq_ignore_ascii_case("true");
                    continue;
                }
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(AuthError::InvalidRequest("a client parameter is repeated"));
            }
        }
        Ok(query)
    }
}

/// `number` as an E.164 phone number: trimmed, with a `+` prepended when missing.
fn e164(number: &str) -> Option<String> {
    let number = number.trim();
    let number = if number.starts_with('+') {
        number.to_owned()
    } else {
        format!("+{number}")
    };
    crate::store::validate::is_e164(&number).then_some(number)
}

impl ClientApplication {
    /// Authenticates the clients of `registry` as users of `auth`. Users are not created
    /// unless [`create_users`](Self::create_users) says so.
    pub fn new(auth: &Auth, registry: impl ClientRegistry) -> Self {
        Self {
            auth: auth.clone(),
            registry: Arc::new(registry),
            create_users: false,
        }
    }

    /// Whether a request with `create_if_not_exists=true` may create the user of an unknown
    /// number (default `false`).
    #[must_use]
    pub fn create_users(mut self, create: bool) -> Self {
        self.create_users = create;
        self
    }

    async fn user(&self, phone: &str, create: bool) -> Result<Option<User>, AuthError> {
        let users = self.auth.users();
        if let Some(user) = users.user_by_verified_phone(phone).await? {
            return Ok(Some(user));
        }
        if !(create && self.create_users) {
            return Ok(None);
        }
        let new_user = NewUser::new(phone).phone(phone).phone_verified(true);
        match users.create_user(new_user, self.auth.now()).await {
            Ok(user) => Ok(Some(user)),
            // Made by a racing request since it was read, or the number (or a username
            // equal to it) belongs to an account that never verified it: that account is
            // not this client's to take.
            Err(StoreError::Conflict(_)) => Ok(users.user_by_verified_phone(phone).await?),
            Err(error) => Err(error.into()),
        }
    }
}

#[async_trait]
impl CredentialSource for ClientApplication {
    fn lookup(&self, request: &Credentials<'_>) -> Lookup {
        let has_client_id = request.parts().uri.query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "client_id")
        });
        if has_client_id {
            Lookup::Pending
        } else {
            Lookup::Absent
        }
    }

    async fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<Identity>, AuthError> {
        let query = ClientQuery::of(request.parts())?;
        let Some(client_id) = query.client_id else {
            return Ok(None);
        };
        let Some(secret) = request.bearer_token()? else {
            return Err(AuthError::MissingCredentials);
        };
        // Digested before the registry is asked, so that a known and an unknown id cost the
        // same work; the comparison of digests is constant-time.
        let presented = TokenDigest::of(secret);
        // An id no store could hold (too long, a NUL) is unknown without asking: PostgreSQL
        // would answer a NUL with an error, and a bad credential is never a 503.
        let storable =
            client_id.len() <= MAX_CLIENT_ID_LEN && crate::store::validate::storable(&client_id);
        let client = if storable {
            self.registry.client(&client_id).await?
        } else {
            None
        };
        let Some(client) = client.filter(|client| client.secret_digest == presented) else {
            return Err(InvalidToken::Unknown.into());
        };
        let Some(phone) = query.phone_number else {
            return Err(AuthError::InvalidRequest("phone_number is required"));
        };
        let Some(phone) = e164(&phone) else {
            return Err(AuthError::InvalidRequest(
                "phone_number is not a phone number",
            ));
        };
        let Some(user) = self.user(&phone, query.create_if_not_exists).await? else {
            return Err(InvalidToken::Unknown.into());
        };
        if !user.is_active {
            return Err(AuthError::InactiveUser);
        }
        let method = AuthMethod::ClientApp {
            client: client.name,
        };
        Ok(Some(Identity::user(user, method, Scopes::Unrestricted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_their_plus_and_must_be_e164() {
        assert_eq!(e164("15551234567").as_deref(), Some("+15551234567"));
        assert_eq!(e164(" 15551234567").as_deref(), Some("+15551234567"));
        assert_eq!(e164("+4930123456").as_deref(), Some("+4930123456"));
        for bad in [
            "",
            "+",
            "abc",
            "+0123",
            "++1555",
            "1555 123",
            "1".repeat(16).as_str(),
        ] {
            assert_eq!(e164(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_query_is_read_once_and_repeats_are_refused() {
        let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        let query = ClientQuery::of(&parts(
            "/api/chat?client_id=abc&phone_number=%2B1555&create_if_not_exists=true&q=hi",
        ))
        .unwrap();
        assert_eq!(
            query,
            ClientQuery {
                client_id: Some("abc".into()),
                phone_number: Some("+1555".into()),
                create_if_not_exists: true,
            }
        );
        assert!(ClientQuery::of(&parts("/?client_id=a&client_id=b")).is_err());
        assert!(
            !ClientQuery::of(&parts("/?create_if_not_exists=yes"))
                .unwrap()
                .create_if_not_exists
        );
    }

    #[test]
    fn a_registered_client_never_shows_its_secret_digest() {
        let format = TokenFormat::new("kcs_").unwrap();
        let (client, secret) = RegisteredClient::generate("whatsapp", &format).unwrap();
        assert_eq!(client.client_id.len(), 32);
        assert_eq!(
            client.secret_digest,
            TokenDigest::of(secret.secret().expose())
        );
        let shown = format!("{client:?}");
        assert!(!shown.contains(&client.secret_digest.to_hex()), "{shown}");
    }
}
