//! Who made a request, and how they proved it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::assurance::{Assurance, Factors};
use crate::store::{FamilyId, TokenId, User, UserId};

/// The authenticated principal of a request, placed in the request extensions by
/// [`AuthLayer`](crate::AuthLayer).
///
/// Cheap to clone (one `Arc`). Handlers receive it through the [`Identity`] and
/// `Option<Identity>` extractors, or [`CurrentUser`](crate::CurrentUser) when only users (not
/// services) may call.
///
/// ```
/// use portcullis::{AuthMethod, Identity, Scopes};
/// # use portcullis::store::{User, UserId};
/// # let mut user = User::new(UserId(7), "ada", time::OffsetDateTime::UNIX_EPOCH);
/// # user.roles = vec!["admin".into()];
/// let identity = Identity::user(user, AuthMethod::Internal { service: "test".into() }, Scopes::only(["read"]));
/// assert_eq!(identity.user_id(), Some(UserId(7)));
/// assert!(identity.has_role("admin"));
/// assert!(identity.allows_scope("read"));
/// assert!(!identity.allows_scope("write"));
/// ```
#[derive(Clone)]
pub struct Identity(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    subject: Subject,
    method: AuthMethod,
    scopes: Scopes,
    auth_time: Option<OffsetDateTime>,
    factors: Factors,
}

/// Whom an [`Identity`] stands for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Subject {
    /// A user account, shared by every cached credential of the user (see
    /// [`Auth`](crate::Auth)'s credential cache).
    User(Arc<User>),
    /// A trusted service calling with the internal key (no user account).
    Service {
        /// The service's configured name.
        name: String,
    },
}

/// How a request authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A browser session cookie.
    Session {
        /// The session's token id.
        session_id: TokenId,
    },
    /// An opaque API key.
    ApiKey {
        /// The key's token id.
        key_id: TokenId,
    },
    /// A JWT access token.
    Jwt {
        /// The token's `jti`.
        jti: Option<String>,
        /// The session (refresh family) the token belongs to.
        sid: Option<FamilyId>,
    },
    /// A registered client application.
    ClientApp {
        /// The client's id.
        client: String,
    },
    /// The internal service key.
    Internal {
        /// The service's configured name.
        service: String,
    },
    /// No credential: the one user of a server run in single-user ("anonymous") mode (see
    /// [`SingleUser`](crate::source::SingleUser)).
    SingleUser,
}

/// What an identity may do beyond its roles: all of its owner's rights, or only some scopes.
///
/// API keys created with a permission list and JWTs with a `scope` claim are limited; a
/// password login is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scopes {
    /// Every right of the owner.
    Unrestricted,
    /// Only these scopes.
    Only(BTreeSet<String>),
}

impl Scopes {
    /// A limited set of scopes.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::Only(scopes.into_iter().map(Into::into).collect())
    }

    /// `None` (no limits recorded) is unrestricted.
    pub fn from_stored(scopes: Option<&[String]>) -> Self {
        match scopes {
            None => Self::Unrestricted,
            Some(list) => Self::only(list.iter().cloned()),
        }
    }

    /// Whether `scope` is allowed.
    pub fn allows(&self, scope: &str) -> bool {
        match self {
            Self::Unrestricted => true,
            Self::Only(set) => set.contains(scope),
        }
    }
}

impl Identity {
    /// An identity for a user account. The user's password hash is dropped: handlers never
    /// need it, and cached identities should not keep copies of it (OWASP ASVS 5.0 V11.7).
    pub fn user(mut user: User, method: AuthMethod, scopes: Scopes) -> Self {
        user.password_hash = None;
        Self::shared_user(Arc::new(user), method, scopes)
    }

    /// An identity for a user account already shared by other identities (its password hash
    /// already dropped: see [`Identity::user`]).
    pub(crate) fn shared_user(user: Arc<User>, method: AuthMethod, scopes: Scopes) -> Self {
        debug_assert!(user.password_hash.is_none(), "a cached user keeps no hash");
        Self(Arc::new(Inner {
            subject: Subject::User(user),
            method,
            scopes,
            auth_time: None,
            factors: Factors::NONE,
        }))
    }

    /// An identity for a trusted internal service.
    pub fn service(name: impl Into<String>) -> Self {
        let name = name.into();
        Self(Arc::new(Inner {
            method: AuthMethod::Internal {
                service: name.clone(),
            },
            subject: Subject::Service { name },
            scopes: Scopes::Unrestricted,
            auth_time: None,
            factors: Factors::NONE,
        }))
    }

    /// Whom this identity stands for.
    pub fn subject(&self) -> &Subject {
        &self.0.subject
    }

    /// The user account, unless a service authenticated.
    pub fn user_record(&self) -> Option<&User> {
        match &self.0.subject {
            Subject::User(user) => Some(user),
            Subject::Service { .. } => None,
        }
    }

    /// The user's id, unless a service authenticated.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_record().map(|user| user.id)
    }

    /// The username, or the service name.
    pub fn name(&self) -> &str {
        match &self.0.subject {
            Subject::User(user) => &user.username,
            Subject::Service { name } => name,
        }
    }

    /// The user's roles (a service has none).
    pub fn roles(&self) -> &[String] {
        self.user_record().map_or(&[], |user| &user.roles)
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// How the request authenticated.
    pub fn method(&self) -> &AuthMethod {
        &self.0.method
    }

    /// The scope limits of the credential.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// Whether the credential allows `scope`.
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.0.scopes.allows(scope)
    }

    /// Whether a trusted service (not a user) authenticated.
    pub fn is_service(&self) -> bool {
        matches!(self.0.subject, Subject::Service { .. })
    }

    /// Whether the credential came from a person signing in (a session cookie or an access
    /// token), rather than one a program holds (an API key, a client application's
    /// credentials, the internal key). Ending sessions and other account actions are
    /// reserved to these (see [`guard::signed_in`](crate::guard::signed_in)).
    pub fn is_signed_in(&self) -> bool {
        matches!(
            self.0.method,
            AuthMethod::Session { .. } | AuthMethod::Jwt { .. }
        )
    }

    /// When the person behind the credential last proved who they are (entered a password,
    /// followed a magic link...): the `auth_time` of OpenID Connect and RFC 9470. Kept through
    /// refresh rotations; `None` for credentials that carry no sign-in.
    pub fn auth_time(&self) -> Option<OffsetDateTime> {
        self.0.auth_time
    }

    /// The factors the person proved at [`auth_time`](Self::auth_time) (empty for
    /// credentials that carry no sign-in, and for sessions recorded without them).
    pub fn factors(&self) -> Factors {
        self.0.factors
    }

    /// The assurance level of the sign-in behind the credential, `None` for credentials
    /// that carry no sign-in (API keys, client applications, the internal key). A sign-in
    /// recorded without factors counts as [`Assurance::Aal1`].
    pub fn assurance(&self) -> Option<Assurance> {
        (self.is_signed_in() && self.0.auth_time.is_some()).then(|| self.0.factors.assurance())
    }

    /// This identity, signed in at `at` with `factors` (see [`auth_time`](Self::auth_time)
    /// and [`factors`](Self::factors)).
    #[must_use]
    pub fn signed_in(mut self, at: OffsetDateTime, factors: Factors) -> Self {
        // In place when this is the only handle (as when a credential is being resolved).
        let inner = Arc::make_mut(&mut self.0);
        inner.auth_time = Some(at);
        inner.factors = factors;
        self
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name())
            .field("user_id", &self.user_id())
            .field("method", self.method())
            .field("scopes", self.scopes())
            .field("factors", &self.0.factors)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_never_carries_the_password_hash() {
        let user = User {
            username: "ada".into(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            ..User::fixture(1)
        };
        let identity = Identity::user(
            user,
            AuthMethod::ApiKey { key_id: TokenId(1) },
            Scopes::Unrestricted,
        );
        assert_eq!(identity.user_record().unwrap().password_hash, None);
        assert_eq!(
            format!("{identity:?}"),
            "Identity { name: \"ada\", user_id: Some(UserId(1)), method: ApiKey { key_id: TokenId(1) }, \
             scopes: Unrestricted, factors: {} }"
        );
    }
}
