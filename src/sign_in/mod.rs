//! The sign-in pipeline: what happens between a first factor passing and credentials being
//! handed out.
//!
//! Every first factor (a password with [`PasswordLogin::sign_in`](crate::flows::PasswordLogin::sign_in),
//! later a magic link, an OpenID Connect provider, a passkey) ends in a [`SignInOutcome`]:
//!
//! * [`SignedIn`](SignInOutcome::SignedIn): an [`Authenticated`] person, to hand to
//!   [`Sessions::start`](crate::session::Sessions::start) (a cookie) or
//!   [`TokenPairs::issue`](crate::TokenPairs::issue) (an access and a refresh token), which
//!   record its factors and time on the credentials;
//! * [`SecondFactorRequired`](SignInOutcome::SecondFactorRequired): the user is enrolled in
//!   a [`SecondFactor`]; the client answers the [`Challenge`] with
//!   [`SignIn::answer`];
//! * [`Refused`](SignInOutcome::Refused): a [`Refusal`] the client may be told about.
//!
//! Errors (`Err`) are failures of the infrastructure, never of the person.
//!
//! ```
//! use portcullis::assurance::Factor;
//! use portcullis::sign_in::{Authenticated, SignIn, SignInOutcome};
//! use portcullis::{Auth, store::{MemoryStore, NewUser}};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let auth = Auth::builder(MemoryStore::new()).build();
//! let ada = auth.users().create_user(NewUser::new("ada"), auth.now()).await?;
//!
//! // No second factor is registered: a passed first factor signs in.
//! let pipeline = SignIn::new(&auth);
//! let outcome = pipeline.begin(Authenticated::new(ada, Factor::Password, auth.now())).await?;
//! let SignInOutcome::SignedIn(signed_in) = outcome else { panic!("signed in") };
//! assert_eq!(signed_in.factors(), Factor::Password.into());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod authenticated;
mod second_factor;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use authenticated::Authenticated;
pub use second_factor::{Answer, SecondFactor};

use crate::assurance::Factors;
use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::clock::{from_micros, to_micros};
use crate::store::{NewSecret, SecretKind, SecretRecord, SecretSubject, StoreError, UserId};
use crate::token::{RandomnessUnavailable, TokenFormat, TokenSecret};

/// The default of [`SignIn::challenge_lifetime`]: five minutes to answer.
pub const DEFAULT_CHALLENGE_LIFETIME: Duration = Duration::from_secs(300);

/// The default of [`SignIn::challenge_attempts`]: five answers per first factor.
pub const DEFAULT_CHALLENGE_ATTEMPTS: u32 = 5;

/// How a sign-in attempt ended.
#[derive(Debug)]
#[non_exhaustive]
// The signed-in variant carries the user; the outcome is answered once per sign-in.
#[allow(clippy::large_enum_variant)]
pub enum SignInOutcome {
    /// Signed in: hand the person to [`Sessions::start`](crate::session::Sessions::start)
    /// or [`TokenPairs::issue`](crate::TokenPairs::issue).
    SignedIn(Authenticated),
    /// The first factor passed; a second one must be proved by answering the challenge.
    SecondFactorRequired(Challenge),
    /// Refused.
    Refused(Refusal),
}

/// Why a sign-in was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Refusal {
    /// Unknown account or wrong first factor, deliberately indistinguishable.
    InvalidCredentials,
    /// Too many recent failures; try again after `retry_after`.
    Throttled {
        /// When the next attempt will be accepted.
        retry_after: Duration,
    },
    /// The factor is right but the account is deactivated.
    Inactive,
    /// The challenge is unknown, expired or already answered: sign in again.
    ChallengeInvalid,
    /// The challenge does not offer this method.
    MethodNotOffered {
        /// The challenge to answer instead (the one presented is spent).
        retry: Challenge,
    },
    /// The second-factor answer is wrong.
    WrongAnswer {
        /// The challenge to answer next, with one attempt fewer; `None` when the attempts
        /// are used up and the sign-in must start over.
        retry: Option<Challenge>,
    },
}

/// A pending second factor: hand [`token`](Self::token) to the client, which sends it back
/// with its answer to [`SignIn::answer`]. Single-use: each answer spends it.
pub struct Challenge {
    /// The challenge token (show it once).
    pub token: TokenSecret,
    /// The methods the user may answer with, in registration order.
    pub methods: Vec<&'static str>,
    /// When the challenge (and every successor) expires.
    pub expires_at: OffsetDateTime,
    /// How many answers are left, this one included.
    pub attempts_left: u32,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("methods", &self.methods)
            .field("expires_at", &self.expires_at)
            .field("attempts_left", &self.attempts_left)
            .finish_non_exhaustive()
    }
}

/// A failure of the infrastructure during a sign-in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// Checking a password failed.
    #[error(transparent)]
    Password(#[from] crate::PasswordError),
    /// No randomness was available for a challenge.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The store (or a second factor's check) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SignInError> for crate::AuthError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(store) => store.into(),
            other => StoreError::unavailable(other).into(),
        }
    }
}

/// The pipeline every first factor passes through: second factors, then credentials.
///
/// Cheap to clone; build it once at start-up.
#[derive(Clone)]
pub struct SignIn {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    auth: Auth,
    factors: Vec<Arc<dyn SecondFactor>>,
    format: TokenFormat,
    lifetime: Duration,
    attempts: u32,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let methods: Vec<_> = self.inner.factors.iter().map(|f| f.method()).collect();
        f.debug_struct("SignIn")
            .field("second_factors", &methods)
            .field("challenge_lifetime", &self.inner.lifetime)
            .field("challenge_attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

/// What a challenge's secret record keeps.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// The user.
    user: i64,
    /// The factors proved so far.
    factors: u16,
    /// When the first factor was proved, in microseconds since the epoch.
    at: i64,
    /// The methods offered.
    methods: Vec<String>,
    /// Answers left.
    attempts_left: u32,
}

impl SignIn {
    /// A pipeline with no second factor (every passed first factor signs in), challenges
    /// that live 5 minutes and take 5 answers.
    pub fn new(auth: &Auth) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                factors: Vec::new(),
                format: TokenFormat::new("sfc_").expect("a valid prefix"),
                lifetime: DEFAULT_CHALLENGE_LIFETIME,
                attempts: DEFAULT_CHALLENGE_ATTEMPTS,
            }),
        }
    }

    /// Registers a second-factor method. Users enrolled in it must prove it (or another
    /// registered method they are enrolled in) to sign in.
    ///
    /// # Panics
    ///
    /// When another registered method has the same name.
    #[must_use]
    pub fn second_factor(mut self, factor: impl SecondFactor) -> Self {
        let method = factor.method();
        assert!(
            self.inner.factors.iter().all(|f| f.method() != method),
            "second factor {method:?} registered twice"
        );
        Arc::make_mut(&mut self.inner)
            .factors
            .push(Arc::new(factor));
        self
    }

    /// How long the person has to answer (default 5 minutes), however many answers it
    /// takes.
    #[must_use]
    pub fn challenge_lifetime(mut self, lifetime: Duration) -> Self {
        Arc::make_mut(&mut self.inner).lifetime = lifetime;
        self
    }

    /// How many answers one first factor buys (default 5, at least 1).
    #[must_use]
    pub fn challenge_attempts(mut self, attempts: u32) -> Self {
        Arc::make_mut(&mut self.inner).attempts = attempts.max(1);
        self
    }

    /// Continues a sign-in whose first factor passed: signed in, or a challenge for the
    /// second factors the user is enrolled in.
    pub async fn begin(&self, proof: Authenticated) -> Result<SignInOutcome, SignInError> {
        if !proof.user().is_active {
            return Ok(SignInOutcome::Refused(Refusal::Inactive));
        }
        let mut methods = Vec::new();
        for factor in &self.inner.factors {
            if factor.enrolled(proof.user()).await? {
                methods.push(factor.method());
            }
        }
        if methods.is_empty() {
            return Ok(SignInOutcome::SignedIn(proof));
        }
        let pending = Pending {
            user: proof.user().id.0,
            factors: proof.factors().bits(),
            at: to_micros(proof.at()),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            attempts_left: self.inner.attempts,
        };
        let challenge = self.issue(&pending, self.inner.lifetime).await?;
        Ok(SignInOutcome::SecondFactorRequired(challenge))
    }

    /// Answers the challenge `token` with `method`: signed in when the answer is right;
    /// otherwise refused, with a successor challenge while attempts are left.
    ///
    /// The presented challenge is spent whatever the answer, atomically, so concurrent
    /// answers to one challenge are checked at most once in all.
    pub async fn answer(
        &self,
        token: &str,
        method: &str,
        response: &str,
    ) -> Result<SignInOutcome, SignInError> {
        let refused = |refusal| Ok(SignInOutcome::Refused(refusal));
        let Some(record) = self.consume(token).await? else {
            return refused(Refusal::ChallengeInvalid);
        };
        let pending: Pending = match record.payload_as() {
            Some(Ok(pending)) => pending,
            _ => return Err(StoreError::Corrupt("second-factor challenge".into()).into()),
        };
        let auth = &self.inner.auth;
        let remaining = record.expires_at - auth.now();
        let remaining = Duration::try_from(remaining).unwrap_or(Duration::ZERO);
        let offered = pending.methods.iter().any(|m| m == method);
        let Some(factor) = self
            .inner
            .factors
            .iter()
            .find(|f| offered && f.method() == method)
        else {
            let retry = self.issue(&pending, remaining).await?;
            return refused(Refusal::MethodNotOffered { retry });
        };
        let user = match auth.users().user_by_id(UserId(pending.user)).await? {
            Some(user) if user.is_active => user,
            Some(_) => return refused(Refusal::Inactive),
            None => return refused(Refusal::ChallengeInvalid),
        };
        if factor.verify(&user, &Answer::new(response)).await? {
            auth.audit(
                AuditKind::SecondFactorPassed {
                    method: method.to_owned(),
                },
                Some(user.id),
            )
            .await;
            let first = Authenticated::from_parts(
                user,
                Factors::from_bits(pending.factors),
                from_micros(pending.at),
            );
            return Ok(SignInOutcome::SignedIn(
                first.and(factor.factor(), auth.now()),
            ));
        }
        let attempts_left = pending.attempts_left.saturating_sub(1);
        auth.audit(
            AuditKind::SecondFactorFailed {
                method: method.to_owned(),
                attempts_left,
            },
            Some(user.id),
        )
        .await;
        if attempts_left == 0 {
            return refused(Refusal::WrongAnswer { retry: None });
        }
        let next = Pending {
            attempts_left,
            ..pending
        };
        let retry = self.issue(&next, remaining).await?;
        refused(Refusal::WrongAnswer { retry: Some(retry) })
    }

    async fn issue(&self, pending: &Pending, lifetime: Duration) -> Result<Challenge, SignInError> {
        let generated = self.inner.format.generate()?;
        let now = self.inner.auth.now();
        let mut secret =
            NewSecret::new(SecretKind::SECOND_FACTOR, generated.digest(), now, lifetime)
                .subject(SecretSubject::User(UserId(pending.user)));
        secret.payload = Some(
            serde_json::to_string(pending)
                .map_err(|e| StoreError::Corrupt(format!("second-factor challenge: {e}")))?,
        );
        let record = self.inner.auth.secrets().insert_secret(secret).await?;
        let methods = self
            .inner
            .factors
            .iter()
            .map(|f| f.method())
            .filter(|m| pending.methods.iter().any(|offered| offered == m))
            .collect();
        Ok(Challenge {
            token: generated.into_secret(),
            methods,
            expires_at: record.expires_at,
            attempts_left: pending.attempts_left,
        })
    }

    async fn consume(&self, token: &str) -> Result<Option<SecretRecord>, StoreError> {
        // A malformed or mistyped token is refused before the store sees it.
        let Ok(parsed) = self.inner.format.parse(token) else {
            return Ok(None);
        };
        let auth = &self.inner.auth;
        auth.secrets()
            .consume_secret(SecretKind::SECOND_FACTOR, &parsed.digest(), auth.now())
            .await
    }
}
