//! Security events: logins, token reuse, revocations. Never carries a secret.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::store::{FamilyId, TokenId, UserId};

/// Something security-relevant that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// The user concerned, when known.
    pub user_id: Option<UserId>,
}

/// The kinds of [`AuditEvent`]. Serialised (for stores) as `{"kind": "<snake_case>", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A user registered.
    UserRegistered,
    /// A user's account was changed in a way that affects authentication.
    UserUpdated {
        /// Whether the account was deactivated by this change.
        deactivated: bool,
    },
    /// A password login succeeded.
    LoginSucceeded,
    /// A password login failed. The attempted username is not recorded, so that a password
    /// typed into the username field never reaches a log.
    LoginFailed,
    /// A legacy password hash was replaced with an Argon2id hash at login.
    PasswordRehashed,
    /// A refresh token was rotated.
    TokenRefreshed {
        /// The session.
        family: FamilyId,
    },
    /// An already rotated refresh token was presented; its whole family was revoked
    /// (RFC 9700 §4.14.2).
    RefreshTokenReused {
        /// The revoked session.
        family: FamilyId,
    },
    /// Sessions ended by logout.
    LoggedOut {
        /// How many tokens were revoked.
        revoked: usize,
    },
    /// A user's credentials were ended all at once ([`Auth::end_credentials`](crate::Auth::end_credentials)):
    /// a suspension, a password change or reset, "log out everywhere".
    CredentialsEnded {
        /// How many tokens were revoked.
        revoked: usize,
        /// Whether API keys were among them.
        api_keys: bool,
    },
    /// An API key was created.
    ApiKeyCreated {
        /// The key.
        key_id: TokenId,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// The key.
        key_id: TokenId,
    },
    /// A browser session started (a login).
    SessionStarted {
        /// The session.
        family: FamilyId,
    },
    /// A browser session's id was replaced after a privilege change.
    SessionRotated {
        /// The session.
        family: FamilyId,
    },
    /// A second factor was proved and the sign-in completed.
    SecondFactorPassed {
        /// The method ([`SecondFactor::method`](crate::sign_in::SecondFactor::method)).
        method: String,
    },
    /// A wrong second-factor answer was given.
    SecondFactorFailed {
        /// The method ([`SecondFactor::method`](crate::sign_in::SecondFactor::method)).
        method: String,
        /// How many more answers the sign-in gets; at zero it must start over.
        attempts_left: u32,
    },
}

impl AuditKind {
    /// The stable snake-case name stores index events by.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UserRegistered => "user_registered",
            Self::UserUpdated { .. } => "user_updated",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::PasswordRehashed => "password_rehashed",
            Self::TokenRefreshed { .. } => "token_refreshed",
            Self::RefreshTokenReused { .. } => "refresh_token_reused",
            Self::SessionStarted { .. } => "session_started",
            Self::SessionRotated { .. } => "session_rotated",
            Self::SecondFactorPassed { .. } => "second_factor_passed",
            Self::SecondFactorFailed { .. } => "second_factor_failed",
            Self::LoggedOut { .. } => "logged_out",
            Self::CredentialsEnded { .. } => "credentials_ended",
            Self::ApiKeyCreated { .. } => "api_key_created",
            Self::ApiKeyRevoked { .. } => "api_key_revoked",
        }
    }

    /// The JSON a store keeps for this kind (its name and fields).
    pub fn to_json(&self) -> String {
        // Serialising plain enums of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"kind\":\"{}\"}}", self.name()))
    }

    /// Reads back [`to_json`](Self::to_json) output.
    pub fn from_json(json: &str) -> Result<Self, crate::store::StoreError> {
        serde_json::from_str(json)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("audit event: {e}")))
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserRegistered => f.write_str("user_registered"),
            Self::UserUpdated { deactivated } => {
                write!(f, "user_updated deactivated={deactivated}")
            }
            Self::LoginSucceeded => f.write_str("login_succeeded"),
            Self::LoginFailed => f.write_str("login_failed"),
            Self::PasswordRehashed => f.write_str("password_rehashed"),
            Self::TokenRefreshed { family } => write!(f, "token_refreshed family={family}"),
            Self::RefreshTokenReused { family } => {
                write!(f, "refresh_token_reused family={family}")
            }
            Self::SessionStarted { family } => write!(f, "session_started family={family}"),
            Self::SessionRotated { family } => write!(f, "session_rotated family={family}"),
            Self::SecondFactorPassed { method } => {
                write!(f, "second_factor_passed method={method}")
            }
            Self::SecondFactorFailed {
                method,
                attempts_left,
            } => write!(
                f,
                "second_factor_failed method={method} attempts_left={attempts_left}"
            ),
            Self::LoggedOut { revoked } => write!(f, "logged_out revoked={revoked}"),
            Self::CredentialsEnded { revoked, api_keys } => {
                write!(f, "credentials_ended revoked={revoked} api_keys={api_keys}")
            }
            Self::ApiKeyCreated { key_id } => write!(f, "api_key_created key={key_id}"),
            Self::ApiKeyRevoked { key_id } => write!(f, "api_key_revoked key={key_id}"),
        }
    }
}

/// Where [`AuditEvent`]s go.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Records one event. Implementations should not fail the caller's operation; report
    /// their own failures through their own channel.
    async fn record(&self, event: AuditEvent);
}

/// The default sink: one `tracing` event per audit event, target `portcullis::audit`
/// (warn level for token reuse, info otherwise).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingEvents;

#[async_trait]
impl EventSink for TracingEvents {
    async fn record(&self, event: AuditEvent) {
        let user = event.user_id.map(|id| id.0);
        match &event.kind {
            AuditKind::RefreshTokenReused { .. } | AuditKind::LoginFailed => {
                tracing::warn!(target: "portcullis::audit", user, event = %event.kind, "security event");
            }
            _ => {
                tracing::info!(target: "portcullis::audit", user, event = %event.kind, "security event")
            }
        }
    }
}

/// A sink that appends events to the store, for an admin event log
/// ([`EventStore::events`](crate::store::EventStore::events) reads them back). A failed write
/// is logged and never fails the operation that caused the event.
#[derive(Clone)]
pub struct StoredEvents {
    store: Arc<dyn crate::store::EventStore>,
}

impl StoredEvents {
    /// Events into `store` (typically the same store the `Auth` uses).
    pub fn new(store: Arc<dyn crate::store::EventStore>) -> Self {
        Self { store }
    }
}

impl fmt::Debug for StoredEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredEvents(..)")
    }
}

#[async_trait]
impl EventSink for StoredEvents {
    async fn record(&self, event: AuditEvent) {
        if let Err(error) = self.store.record_event(&event).await {
            tracing::error!(%error, event = %event.kind, "could not store an audit event");
        }
    }
}

/// A sink that keeps events in memory, for tests and admin pages of small deployments.
#[derive(Clone, Debug, Default)]
pub struct RecordedEvents {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl RecordedEvents {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[async_trait]
impl EventSink for RecordedEvents {
    async fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }
}
