//! [`SecretStore`] for [`MemoryStore`]: a map under the store's one mutex.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::store::{
    Guess, NewSecret, SecretId, SecretKind, SecretRecord, SecretStore, SecretSubject, StoreError,
    validate,
};
use crate::token::TokenDigest;

#[derive(Debug, Default)]
pub(super) struct Secrets {
    by_id: BTreeMap<SecretId, Stored>,
    next_id: i64,
}

#[derive(Debug)]
struct Stored {
    secret: NewSecret,
    attempts_left: Option<u32>,
    ended_at: Option<OffsetDateTime>,
}

impl Stored {
    fn is_live(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && self.secret.expires_at > now && self.attempts_left != Some(0)
    }

    /// Dead only because its time ran out (see [`Guess::Expired`]).
    fn expired_unanswered(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && self.secret.expires_at <= now && self.attempts_left != Some(0)
    }

    fn record(&self, id: SecretId) -> SecretRecord {
        SecretRecord::inserted(id, self.secret.clone()).attempts_left(self.attempts_left)
    }
}

impl Secrets {
    fn live_of<'a>(
        &'a mut self,
        kind: SecretKind,
        subject: &'a SecretSubject,
        now: OffsetDateTime,
    ) -> impl Iterator<Item = (&'a SecretId, &'a mut Stored)> {
        self.by_id.iter_mut().filter(move |(_, stored)| {
            stored.secret.kind == kind && &stored.secret.subject == subject && stored.is_live(now)
        })
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn insert_secret(&self, secret: NewSecret) -> Result<SecretRecord, StoreError> {
        validate::new_secret(&secret)?;
        let mut state = self.state();
        let secrets = &mut state.secrets;
        let taken = secrets.by_id.values().any(|stored| {
            stored.secret.kind == secret.kind && stored.secret.digest == secret.digest
        });
        if taken {
            return Err(StoreError::Conflict("digest"));
        }
        if secret.replaces_earlier && secret.subject != SecretSubject::Nobody {
            let now = secret.created_at;
            for (_, earlier) in secrets.live_of(secret.kind, &secret.subject, now) {
                earlier.ended_at = Some(now);
            }
        }
        secrets.next_id += 1;
        let id = SecretId(secrets.next_id);
        let stored = Stored {
            attempts_left: secret.attempts,
            secret,
            ended_at: None,
        };
        let record = stored.record(id);
        secrets.by_id.insert(id, stored);
        Ok(record)
    }

    async fn consume_secret(
        &self,
        kind: SecretKind,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let mut state = self.state();
        let found = state.secrets.by_id.iter_mut().find(|(_, stored)| {
            stored.secret.kind == kind && stored.secret.digest == *digest && stored.is_live(now)
        });
        Ok(found.map(|(id, stored)| {
            stored.ended_at = Some(now);
            stored.record(*id)
        }))
    }

    async fn guess_secret(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Guess, StoreError> {
        if *subject == SecretSubject::Nobody {
            return Ok(Guess::NoSecret);
        }
        let mut state = self.state();
        let mut live: Vec<_> = state.secrets.live_of(kind, subject, now).collect();
        if live.is_empty() {
            let expired = state.secrets.by_id.values().any(|stored| {
                stored.secret.kind == kind
                    && &stored.secret.subject == subject
                    && stored.expired_unanswered(now)
            });
            return Ok(if expired {
                Guess::Expired
            } else {
                Guess::NoSecret
            });
        }
        if let Some((id, stored)) = live.iter_mut().find(|(_, s)| s.secret.digest == *digest) {
            stored.ended_at = Some(now);
            return Ok(Guess::Right(Box::new(stored.record(**id))));
        }
        Ok(Guess::wrong(live.into_iter().map(|(_, stored)| {
            // Live secrets have an attempt left, so this cannot underflow.
            stored.attempts_left = stored.attempts_left.map(|left| left - 1);
            stored.attempts_left
        })))
    }

    async fn revoke_secrets(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        if *subject == SecretSubject::Nobody {
            return Ok(0);
        }
        let mut state = self.state();
        let mut revoked = 0;
        for (_, stored) in state.secrets.live_of(kind, subject, now) {
            stored.ended_at = Some(now);
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn purge_secrets(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let secrets = &mut state.secrets.by_id;
        let count = secrets.len();
        secrets.retain(|_, stored| {
            stored.secret.expires_at >= before
                && stored.ended_at.is_none_or(|ended| ended >= before)
        });
        Ok((count - secrets.len()) as u64)
    }
}
