//! The [`EventStore`] trait: the audit log.

use async_trait::async_trait;

use super::{StoreError, UserId};
use crate::audit::AuditEvent;

/// An append-only audit log, written by [`StoredEvents`](crate::audit::StoredEvents).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends an audit event (see [`StoredEvents`](crate::audit::StoredEvents)).
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// The most recent `limit` audit events, newest first; only `user`'s when given.
    async fn events(&self, user: Option<UserId>, limit: u32)
    -> Result<Vec<AuditEvent>, StoreError>;
}
