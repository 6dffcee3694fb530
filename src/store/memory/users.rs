//! The in-memory [`UserStore`]: accounts and their external identities.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{MemoryStore, State};
use crate::store::{ExternalIdentity, NewUser, StoreError, User, UserId, UserStore, UserUpdate};

impl State {
    fn find_user(&self, matches: impl Fn(&User) -> bool) -> Option<User> {
        self.users.values().find(|user| matches(user)).cloned()
    }

    /// The first unique field of `email` and `phone` another user than `except` holds.
    fn taken(
        &self,
        email: Option<&str>,
        phone: Option<&str>,
        except: Option<UserId>,
    ) -> Option<&'static str> {
        let others = || self.users.values().filter(|user| Some(user.id) != except);
        if let Some(email) = email
            && others().any(|user| {
                user.email
                    .as_deref()
                    .is_some_and(|taken| taken.eq_ignore_ascii_case(email))
            })
        {
            return Some("email");
        }
        if let Some(phone) = phone
            && others().any(|user| user.phone.as_deref() == Some(phone))
        {
            return Some("phone");
        }
        None
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, new: NewUser, now: OffsetDateTime) -> Result<User, StoreError> {
        crate::store::validate::new_user(&new)?;
        let mut state = self.state();
        if state
            .users
            .values()
            .any(|user| user.username.eq_ignore_ascii_case(&new.username))
        {
            return Err(StoreError::Conflict("username"));
        }
        if let Some(field) = state.taken(new.email.as_deref(), new.phone.as_deref(), None) {
            return Err(StoreError::Conflict(field));
        }
        let roles = new.effective_roles(state.users.is_empty());
        state.next_user += 1;
        let user = User::created(UserId(state.next_user), new, roles, now);
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.state().users.len()).unwrap_or(u64::MAX))
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .state()
            .find_user(|user| user.username.eq_ignore_ascii_case(username)))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(self.state().find_user(|user| {
            user.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .state()
            .find_user(|user| user.phone.as_deref() == Some(phone)))
    }

    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        crate::store::validate::user_update(&update)?;
        let mut state = self.state();
        let email = update.email.as_ref().and_then(Option::as_deref);
        let phone = update.phone.as_ref().and_then(Option::as_deref);
        if let Some(field) = state.taken(email, phone, Some(id)) {
            return Err(StoreError::Conflict(field));
        }
        let Some(user) = state.users.get_mut(&id) else {
            return Ok(None);
        };
        user.apply(update, now);
        Ok(Some(user.clone()))
    }

    async fn link_identity(
        &self,
        user: UserId,
        identity: ExternalIdentity,
    ) -> Result<bool, StoreError> {
        crate::store::validate::identity(&identity.issuer, &identity.subject)?;
        let mut state = self.state();
        if !state.users.contains_key(&user) {
            return Err(StoreError::Corrupt(format!("user {user} does not exist")));
        }
        let key = (identity.issuer, identity.subject);
        match state.identities.get(&key) {
            Some((owner, _)) if *owner == user => Ok(false),
            Some(_) => Err(StoreError::Conflict("identity")),
            None => {
                state.identities.insert(key, (user, identity.linked_at));
                Ok(true)
            }
        }
    }

    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        let state = self.state();
        let owner = state
            .identities
            .get(&(issuer.to_owned(), subject.to_owned()));
        Ok(owner.and_then(|(id, _)| state.users.get(id).cloned()))
    }

    async fn identities_of(&self, user: UserId) -> Result<Vec<ExternalIdentity>, StoreError> {
        let mut identities: Vec<ExternalIdentity> = self
            .state()
            .identities
            .iter()
            .filter(|(_, (owner, _))| *owner == user)
            .map(|((issuer, subject), (_, at))| ExternalIdentity::new(issuer, subject, *at))
            .collect();
        identities.sort_by(|a, b| {
            (a.linked_at, &a.issuer, &a.subject).cmp(&(b.linked_at, &b.issuer, &b.subject))
        });
        Ok(identities)
    }

    async fn unlink_identity(
        &self,
        user: UserId,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let key = (issuer.to_owned(), subject.to_owned());
        if state
            .identities
            .get(&key)
            .is_some_and(|(owner, _)| *owner == user)
        {
            state.identities.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}
