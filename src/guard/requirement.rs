//! The requirement expression and its evaluation.

use std::fmt;
use std::sync::Arc;

use crate::assurance::Assurance;
use crate::error::AuthError;
use crate::identity::Identity;

/// A condition on the request's identity. Cheap to clone.
#[derive(Clone)]
pub struct Requirement(Repr);

/// The requirements without parameters are statics, so that cloning one (axum clones a
/// route's layers for every request) touches no reference count shared by every core.
#[derive(Clone)]
enum Repr {
    Fixed(&'static Node),
    Built(Arc<Node>),
}

type Predicate = dyn Fn(&Identity) -> bool + Send + Sync;

enum Node {
    Authenticated,
    Role(String),
    Scope(String),
    Service,
    SignedIn,
    Assurance(Assurance),
    All(Vec<Requirement>),
    Any(Vec<Requirement>),
    Not(Requirement),
    Custom(Arc<Predicate>),
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node() {
            Node::Authenticated => f.write_str("authenticated"),
            Node::Role(role) => write!(f, "role({role:?})"),
            Node::Scope(scope) => write!(f, "scope({scope:?})"),
            Node::Service => f.write_str("service"),
            Node::SignedIn => f.write_str("signed_in"),
            Node::Assurance(level) => write!(f, "assurance({level:?})"),
            Node::All(all) => f.debug_tuple("all").field(all).finish(),
            Node::Any(any) => f.debug_tuple("any").field(any).finish(),
            Node::Not(inner) => f.debug_tuple("not").field(inner).finish(),
            Node::Custom(_) => f.write_str("custom(..)"),
        }
    }
}

fn node(node: Node) -> Requirement {
    Requirement(Repr::Built(Arc::new(node)))
}

/// Any authenticated identity.
pub fn authenticated() -> Requirement {
    static AUTHENTICATED: Node = Node::Authenticated;
    Requirement(Repr::Fixed(&AUTHENTICATED))
}

/// A user holding `name`.
pub fn role(name: impl Into<String>) -> Requirement {
    node(Node::Role(name.into()))
}

/// A user holding at least one of `names`.
pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Requirement {
    any(names.into_iter().map(role))
}

/// A credential allowed `name` (unrestricted credentials allow every scope).
pub fn scope(name: impl Into<String>) -> Requirement {
    node(Node::Scope(name.into()))
}

/// A trusted internal service (see [`InternalKey`](crate::source::InternalKey)).
pub fn service() -> Requirement {
    static SERVICE: Node = Node::Service;
    Requirement(Repr::Fixed(&SERVICE))
}

/// A credential from a person signing in: a session cookie or an access token, not an API
/// key, a client application or the internal key (see [`Identity::is_signed_in`]). For what a
/// program's credential must not do, however broad its scopes: ending the user's sessions,
/// opening an interactive channel.
///
/// ```
/// use portcullis::guard::RequireLayer;
///
/// let only_people = RequireLayer::signed_in();
/// # let _ = only_people;
/// ```
pub fn signed_in() -> Requirement {
    static SIGNED_IN: Node = Node::SignedIn;
    Requirement(Repr::Fixed(&SIGNED_IN))
}

/// A sign-in at `level` or above (see [`Identity::assurance`]): for step-up before
/// sensitive actions. Credentials that carry no sign-in (API keys, client applications, the
/// internal key) never meet it. Refused with `401 insufficient_user_authentication` naming
/// the level (RFC 9470 §3), so the client can sign in with a second factor and retry.
///
/// ```
/// use portcullis::assurance::Assurance;
/// use portcullis::guard::RequireLayer;
///
/// let two_factors = RequireLayer::assurance(Assurance::Aal2);
/// # let _ = two_factors;
/// ```
pub fn assurance(level: Assurance) -> Requirement {
    node(Node::Assurance(level))
}

/// Every requirement holds (`true` when empty).
pub fn all(requirements: impl IntoIterator<Item = Requirement>) -> Requirement {
    node(Node::All(requirements.into_iter().collect()))
}

/// At least one requirement holds (`false` when empty).
pub fn any(requirements: impl IntoIterator<Item = Requirement>) -> Requirement {
    node(Node::Any(requirements.into_iter().collect()))
}

/// The requirement does not hold. `not(authenticated())` admits only anonymous requests.
pub fn not(requirement: Requirement) -> Requirement {
    node(Node::Not(requirement))
}

/// A predicate of your own over an authenticated identity (anonymous requests fail it).
///
/// ```
/// use portcullis::guard;
///
/// let verified_email = guard::custom(|identity| {
///     identity.user_record().is_some_and(|user| user.email.is_some())
/// });
/// # let _ = verified_email;
/// ```
pub fn custom(predicate: impl Fn(&Identity) -> bool + Send + Sync + 'static) -> Requirement {
    node(Node::Custom(Arc::new(predicate)))
}

impl Requirement {
    fn node(&self) -> &Node {
        match &self.0 {
            Repr::Fixed(node) => node,
            Repr::Built(node) => node,
        }
    }

    /// Whether `identity` (`None` for an anonymous request) meets the requirement.
    pub fn is_met_by(&self, identity: Option<&Identity>) -> bool {
        match self.node() {
            Node::Authenticated => identity.is_some(),
            Node::Role(role) => identity.is_some_and(|id| id.has_role(role)),
            Node::Scope(scope) => identity.is_some_and(|id| id.allows_scope(scope)),
            Node::Service => identity.is_some_and(Identity::is_service),
            Node::SignedIn => identity.is_some_and(Identity::is_signed_in),
            Node::Assurance(level) => identity
                .and_then(Identity::assurance)
                .is_some_and(|reached| reached >= *level),
            Node::All(all) => all.iter().all(|r| r.is_met_by(identity)),
            Node::Any(any) => any.iter().any(|r| r.is_met_by(identity)),
            Node::Not(inner) => !inner.is_met_by(identity),
            Node::Custom(predicate) => identity.is_some_and(|id| predicate(id)),
        }
    }

    /// `Ok` when met; otherwise `401` for an anonymous request and `403` for an authenticated
    /// one.
    pub fn check(&self, identity: Option<&Identity>) -> Result<(), AuthError> {
        if self.is_met_by(identity) {
            return Ok(());
        }
        match identity {
            None => Err(AuthError::MissingCredentials),
            Some(identity) => Err(match self.missing_assurance(identity) {
                Some(required) => AuthError::InsufficientAssurance { required },
                None => AuthError::Forbidden {
                    scope: self.missing_scope(identity),
                },
            }),
        }
    }

    /// The level whose absence explains the refusal, when a signed-in identity could meet
    /// it by signing in again: a failed level at the top or inside an `all`.
    fn missing_assurance(&self, identity: &Identity) -> Option<Assurance> {
        match self.node() {
            Node::Assurance(level)
                if identity.is_signed_in() && !self.is_met_by(Some(identity)) =>
            {
                Some(*level)
            }
            Node::All(all) => all.iter().find_map(|r| r.missing_assurance(identity)),
            _ => None,
        }
    }

    /// The first scope whose absence explains the refusal, for the `insufficient_scope`
    /// challenge: a failed scope at the top or inside an `all`.
    fn missing_scope(&self, identity: &Identity) -> Option<String> {
        match self.node() {
            Node::Scope(scope) if !identity.allows_scope(scope) => Some(scope.clone()),
            Node::All(all) => all.iter().find_map(|r| r.missing_scope(identity)),
            _ => None,
        }
    }

    /// `all([self, other])`.
    #[must_use]
    pub fn and(self, other: Requirement) -> Requirement {
        all([self, other])
    }

    /// `any([self, other])`.
    #[must_use]
    pub fn or(self, other: Requirement) -> Requirement {
        any([self, other])
    }
}
