//! An in-process store for tests and prototypes.

mod secrets;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    Consumption, CounterStore, EventStore, FamilyId, NewToken, RevokeReason, Rotation, StoreError,
    TokenId, TokenKind, TokenRecord, TokenSelector, TokenStore, TokenUse, User, UserId,
};
use crate::audit::AuditEvent;
use crate::token::TokenDigest;

/// Every store trait in memory: fast, complete, and gone when the process exits. Clones share
/// the same data.
///
/// One mutex guards all state, which makes every method trivially atomic.
///
/// ```
/// use portcullis::store::{MemoryStore, NewUser, UserStore};
///
/// # tokio_test_block(async {
/// let store = MemoryStore::new();
/// let now = time::OffsetDateTime::now_utc();
/// let ada = store.create_user(NewUser::new("ada").first_user_roles(["superuser"]), now).await?;
/// assert!(ada.is_superuser());
/// assert!(store.user_by_username("ADA").await?.is_some());
/// # Ok::<(), portcullis::store::StoreError>(())
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// Shared by clones, so that one store can serve several concerns (see
    /// [`Stores`](super::Stores)).
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<UserId, User>,
    tokens: BTreeMap<TokenId, TokenRecord>,
    by_digest: HashMap<(TokenKind, TokenDigest), TokenId>,
    events: Vec<AuditEvent>,
    counters: HashMap<String, (OffsetDateTime, u64)>,
    secrets: secrets::Secrets,
    /// `(issuer, subject)` → owner and when it was linked.
    identities: BTreeMap<(String, String), (UserId, OffsetDateTime)>,
    next_user: i64,
    next_token: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters
        // more than refusing service would, so recover the guard instead of propagating.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn insert_token(&mut self, token: NewToken) -> Result<TokenRecord, StoreError> {
        if self.by_digest.contains_key(&(token.kind, token.digest)) {
            return Err(StoreError::Conflict("digest"));
        }
        if let Some(limit) = token.max_active {
            let active = self
                .tokens
                .values()
                .filter(|t| t.user_id == token.user_id && t.kind == token.kind)
                .filter(|t| t.is_active(token.created_at))
                .count();
            if active >= limit as usize {
                return Err(StoreError::LimitReached { limit });
            }
        }
        self.next_token += 1;
        let record = TokenRecord::stored(TokenId(self.next_token), token);
        self.by_digest
            .insert((record.kind, record.digest), record.id);
        self.tokens.insert(record.id, record.clone());
        Ok(record)
    }

    fn token_id(&self, kind: TokenKind, digest: &TokenDigest) -> Option<TokenId> {
        self.by_digest.get(&(kind, *digest)).copied()
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        super::validate::new_token(&token)?;
        let mut state = self.state();
        if !state.users.contains_key(&token.user_id) {
            return Err(StoreError::Corrupt(format!(
                "token owner {} does not exist",
                token.user_id
            )));
        }
        state.insert_token(token)
    }

    async fn token_by_digest(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .token_id(kind, digest)
            .and_then(|id| state.tokens.get(&id).cloned()))
    }

    async fn token_and_owner(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
        let state = self.state();
        Ok(state
            .token_id(kind, digest)
            .and_then(|id| state.tokens.get(&id))
            .map(|token| (token.clone(), state.users.get(&token.user_id).cloned())))
    }

    async fn tokens_of_user(
        &self,
        user: UserId,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self
            .state()
            .tokens
            .values()
            .filter(|t| t.user_id == user && t.kind == kind)
            .cloned()
            .collect())
    }

    async fn rotate_token(
        &self,
        kind: TokenKind,
        presented: &TokenDigest,
        replacement: NewToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        super::validate::new_token(&replacement)?;
        let mut state = self.state();
        let Some(id) = state.token_id(kind, presented) else {
            return Ok(Rotation::Rejected(None));
        };
        let current = state.tokens[&id].clone();
        if !current.is_active(now) {
            return Ok(Rotation::Rejected(Some(Box::new(current))));
        }
        let replacement = state.insert_token(replacement)?;
        let previous = state.tokens.get_mut(&id).map(|token| {
            token.revoked_at = Some(now);
            token.revoke_reason = Some(RevokeReason::Rotated);
            token.clone()
        });
        let previous = previous.ok_or_else(|| StoreError::Corrupt("token vanished".into()))?;
        Ok(Rotation::Rotated {
            previous: Box::new(previous),
            replacement: Box::new(replacement),
        })
    }

    async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut state = self.state();
        let digest_id = match &selector {
            TokenSelector::Digest { kind, digest } => state.token_id(*kind, digest),
            _ => None,
        };
        let selected = |token: &TokenRecord| match &selector {
            TokenSelector::Owned { id, owner } => token.id == *id && token.user_id == *owner,
            TokenSelector::Digest { .. } => Some(token.id) == digest_id,
            TokenSelector::Family(family) => token.family.as_ref() == Some(family),
            TokenSelector::User { user, kind } => {
                token.user_id == *user && kind.is_none_or(|kind| token.kind == kind)
            }
        };
        let mut revoked = Vec::new();
        for token in state.tokens.values_mut() {
            if token.revoked_at.is_none() && selected(token) {
                token.revoked_at = Some(now);
                token.revoke_reason = Some(reason);
                revoked.push(token.clone());
            }
        }
        Ok(revoked)
    }

    async fn family_is_active(
        &self,
        family: &FamilyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .tokens
            .values()
            .any(|t| t.family.as_ref() == Some(family) && t.is_active(now)))
    }

    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state();
        let doomed: Vec<TokenId> = state
            .tokens
            .values()
            .filter(|token| {
                token.expires_at.is_some_and(|at| at < before)
                    || token.revoked_at.is_some_and(|at| at < before)
            })
            .map(|token| token.id)
            .collect();
        for id in &doomed {
            if let Some(token) = state.tokens.remove(id) {
                state.by_digest.remove(&(token.kind, token.digest));
            }
        }
        Ok(doomed.len() as u64)
    }

    async fn record_token_use(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let mut state = self.state();
        for usage in uses {
            if let Some(token) = state.tokens.get_mut(&usage.id)
                && token.last_used_at.is_none_or(|last| last < usage.at)
            {
                token.last_used_at = Some(usage.at);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.state().events.push(event.clone());
        Ok(())
    }

    async fn events(
        &self,
        user: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self
            .state()
            .events
            .iter()
            .rev()
            .filter(|event| user.is_none() || event.user_id == user)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn consume(
        &self,
        key: &str,
        window: OffsetDateTime,
        amount: u64,
        limit: u64,
    ) -> Result<Consumption, StoreError> {
        super::validate::counter_key(key)?;
        // Every store holds counters in a signed 64-bit integer.
        let cap = |value: u64| value.min(i64::MAX.unsigned_abs());
        let (amount, limit) = (cap(amount), cap(limit));
        let mut state = self.state();
        let entry = state.counters.entry(key.to_owned()).or_insert((window, 0));
        if window > entry.0 {
            *entry = (window, 0);
        }
        let Some(total) = entry.1.checked_add(amount).filter(|total| *total <= limit) else {
            return Ok(Consumption::Exceeded { total: entry.1 });
        };
        entry.1 = total;
        Ok(Consumption::Allowed { total })
    }

    async fn counter(&self, key: &str, window: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(match self.state().counters.get(key) {
            Some((stored, value)) if *stored >= window => *value,
            _ => 0,
        })
    }
}
