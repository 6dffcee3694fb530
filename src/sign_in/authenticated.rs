//! [`Authenticated`]: a person who has just proved who they are.

use time::OffsetDateTime;

use crate::assurance::{Assurance, Factor, Factors};
use crate::store::User;

/// A user who has just proved who they are, with the factors they proved: what a first
/// factor hands to [`SignIn::begin`](super::SignIn::begin), and what a completed sign-in
/// hands to [`Sessions::start`](crate::session::Sessions::start) or
/// [`TokenPairs::issue`](crate::TokenPairs::issue).
///
/// The flows of this crate build it once their check has passed; a flow of the
/// application's own builds it with [`new`](Self::new) after its own check.
#[derive(Clone, Debug)]
pub struct Authenticated {
    user: User,
    factors: Factors,
    at: OffsetDateTime,
}

impl Authenticated {
    /// `user` proved `factor` at `at`.
    pub fn new(user: User, factor: Factor, at: OffsetDateTime) -> Self {
        Self {
            user,
            factors: factor.into(),
            at,
        }
    }

    pub(crate) fn from_parts(user: User, factors: Factors, at: OffsetDateTime) -> Self {
        Self { user, factors, at }
    }

    /// The same person, having also proved `factor` at `at` (the sign-in's time moves to
    /// the last proof).
    #[must_use]
    pub fn and(mut self, factor: Factor, at: OffsetDateTime) -> Self {
        self.factors = self.factors.with(factor);
        self.at = at;
        self
    }

    /// The user, as loaded when the proof was checked.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The user, taken out.
    pub fn into_user(self) -> User {
        self.user
    }

    /// The factors proved.
    pub fn factors(&self) -> Factors {
        self.factors
    }

    /// When the last factor was proved: the `auth_time` of the credentials it starts.
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// The assurance level the factors reach.
    pub fn assurance(&self) -> Assurance {
        self.factors.assurance()
    }
}
