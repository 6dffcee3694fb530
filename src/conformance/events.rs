//! The [`EventStore`] requirements.

use std::time::Duration;

use super::support::*;
use crate::store::*;

/// Audit events are kept newest first and filtered by user.
pub async fn audit_events_are_kept_newest_first_and_filtered_by_user(stores: Stores) {
    let Stores {
        users, events: log, ..
    } = stores;
    use crate::audit::{AuditEvent, AuditKind};
    let ada = user(&*users, "ada").await;
    let bob = user(&*users, "bob").await;
    let kinds = [
        (AuditKind::UserRegistered, Some(ada.id)),
        (AuditKind::LoginFailed, None),
        (AuditKind::UserUpdated { deactivated: true }, Some(bob.id)),
        (
            AuditKind::TokenRefreshed {
                family: FamilyId::new("f'; --"),
            },
            Some(ada.id),
        ),
        (
            AuditKind::RefreshTokenReused {
                family: FamilyId::new("名前"),
            },
            Some(ada.id),
        ),
        (AuditKind::LoggedOut { revoked: 3 }, Some(bob.id)),
        (
            AuditKind::ApiKeyCreated {
                key_id: crate::store::TokenId(7),
            },
            Some(ada.id),
        ),
        (
            AuditKind::ApiKeyRevoked {
                key_id: crate::store::TokenId(-7),
            },
            Some(ada.id),
        ),
        (AuditKind::PasswordRehashed, Some(ada.id)),
        (AuditKind::LoginSucceeded, Some(bob.id)),
    ];
    let events: Vec<AuditEvent> = kinds
        .iter()
        .enumerate()
        .map(|(n, (kind, user_id))| AuditEvent {
            at: at(n as i64) + Duration::from_micros(n as u64),
            kind: kind.clone(),
            user_id: *user_id,
        })
        .collect();
    for event in &events {
        log.record_event(event).await.unwrap();
    }
    let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();
    assert_eq!(log.events(None, 100).await.unwrap(), newest_first);
    assert_eq!(
        log.events(None, 3).await.unwrap(),
        newest_first[..3].to_vec()
    );
    let bobs: Vec<AuditEvent> = newest_first
        .iter()
        .filter(|e| e.user_id == Some(bob.id))
        .cloned()
        .collect();
    assert_eq!(log.events(Some(bob.id), 100).await.unwrap(), bobs);
    assert_eq!(
        log.events(Some(UserId(424_242)), 100).await.unwrap(),
        vec![]
    );
    assert_eq!(log.events(None, 0).await.unwrap(), vec![]);
}
