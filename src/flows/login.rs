//! Registration and username/password login.

use crate::assurance::Factor;
use crate::audit::AuditKind;
use crate::auth::Auth;
use crate::auth::Credentials;
use crate::password::{PasswordError, Passwords, PolicyViolation, Verification};
use crate::sign_in::{Authenticated, Refusal, SignIn, SignInError, SignInOutcome};
use crate::store::{NewUser, RevokeReason, StoreError, User, UserId, UserUpdate};

/// The default of [`PasswordLogin::max_username_len`].
pub const DEFAULT_MAX_USERNAME_LEN: usize = 254;

/// Registers users, checks their passwords, and signs them in through the
/// [sign-in pipeline](crate::sign_in) ([`sign_in`](Self::sign_in)).
///
/// A sign-in answers the same [`Refusal::InvalidCredentials`] for an unknown username and a
/// wrong password, and spends the same time on both (a dummy hash is verified for unknown
/// users), so neither the answer nor its timing reveals which accounts exist. A correct
/// password for a deactivated account is [`Refusal::Inactive`]. A legacy or weak hash is
/// replaced with a fresh Argon2id hash on a successful sign-in. There is no way to check a
/// password alone: every passed password continues in the pipeline, so a second factor the
/// user enrolled in cannot be skipped by calling the wrong method.
///
/// ```
/// use portcullis::{Auth, Passwords, PasswordPolicy, store::MemoryStore};
/// use portcullis::flows::{PasswordLogin, Registration};
/// use portcullis::sign_in::{Refusal, SignInOutcome};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let login = PasswordLogin::new(&auth, &Passwords::new(PasswordPolicy::default()));
///
/// let ada = login
///     .register(Registration::new("ada", "correct horse battery").first_user_roles(["superuser"]))
///     .await?;
/// assert!(ada.is_superuser());
/// let SignInOutcome::SignedIn(signed_in) = login.sign_in("ada", "correct horse battery", None).await? else {
///     panic!("no second factor is enrolled");
/// };
/// assert_eq!(signed_in.user().id, ada.id);
/// for (username, password) in [("ada", "wrong password"), ("bob", "wrong password")] {
///     let outcome = login.sign_in(username, password, None).await?;
///     assert!(matches!(outcome, SignInOutcome::Refused(Refusal::InvalidCredentials)));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct PasswordLogin {
    auth: Auth,
    passwords: Passwords,
    max_username_len: usize,
    pipeline: SignIn,
    #[cfg(feature = "ratelimit")]
    throttle: Option<std::sync::Arc<crate::ratelimit::LoginThrottle>>,
}

/// A registration request.
#[derive(Clone, PartialEq, Eq)]
pub struct Registration {
    /// The username.
    pub username: String,
    /// The plain password (hashed before it is stored).
    pub password: String,
    /// The email address.
    pub email: Option<String>,
    /// The display name.
    pub full_name: Option<String>,
    /// Roles for every new user.
    pub roles: Vec<String>,
    /// Roles the very first user also gets.
    pub first_user_roles: Vec<String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("username", &self.username)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// A registration with a username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            email: None,
            full_name: None,
            roles: Vec::new(),
            first_user_roles: Vec::new(),
        }
    }

    /// Sets the email.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn full_name(mut self, name: Option<String>) -> Self {
        self.full_name = name;
        self
    }

    /// Sets the roles the new user gets, first or not.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the roles the first registered user gets, decided atomically by the store: the
    /// rule of applications whose first registrant owns the instance. Leave it unset (the
    /// default) unless the deployment is created by its owner before it is reachable;
    /// otherwise whoever registers first owns it.
    #[must_use]
    pub fn first_user_roles<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        roles: I,
    ) -> Self {
        self.first_user_roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The password breaks the policy.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// The username or email is taken; the string names which.
    #[error("{0} already registered")]
    Taken(&'static str),
    /// The username is longer than [`PasswordLogin::max_username_len`].
    #[error("username must be at most {max} bytes long")]
    UsernameTooLong {
        /// The limit.
        max: usize,
    },
    /// Hashing failed.
    #[error(transparent)]
    Hashing(#[from] PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// Why a password change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangePasswordError {
    /// The current password is wrong (or the account has none).
    #[error("the current password is incorrect")]
    WrongPassword,
    /// The new password breaks the policy.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// No such user.
    #[error("no such user")]
    UnknownUser,
    /// Hashing failed.
    #[error(transparent)]
    Hashing(#[from] PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What checking the first factor gives: the user, or why not.
type FirstFactor = Result<User, Refusal>;

impl PasswordLogin {
    /// A login flow over `auth`'s store, hashing with `passwords`.
    pub fn new(auth: &Auth, passwords: &Passwords) -> Self {
        Self {
            auth: auth.clone(),
            passwords: passwords.clone(),
            max_username_len: DEFAULT_MAX_USERNAME_LEN,
            pipeline: SignIn::new(auth),
            #[cfg(feature = "ratelimit")]
            throttle: None,
        }
    }

    /// The longest username accepted, in bytes (default 254, the longest email address an
    /// SMTP path allows, for applications whose usernames are addresses). Longer ones are
    /// refused at registration and answered as a wrong password at login, before any lookup
    /// or throttling, so their size never reaches the store or the throttle's keys.
    #[must_use]
    pub fn max_username_len(mut self, bytes: usize) -> Self {
        self.max_username_len = bytes;
        self
    }

    /// Throttles failed logins per account and per client address (see
    /// [`LoginThrottle`](crate::ratelimit::LoginThrottle)) in [`sign_in`](Self::sign_in).
    #[cfg(feature = "ratelimit")]
    #[must_use]
    pub fn throttle(mut self, throttle: crate::ratelimit::LoginThrottle) -> Self {
        self.throttle = Some(std::sync::Arc::new(throttle));
        self
    }

    /// Sends passed passwords through `pipeline` (its second factors) in
    /// [`sign_in`](Self::sign_in). The default pipeline has no second factor.
    #[must_use]
    pub fn pipeline(mut self, pipeline: SignIn) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// The pipeline [`sign_in`](Self::sign_in) continues in.
    pub fn sign_in_pipeline(&self) -> &SignIn {
        &self.pipeline
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Creates an account after checking the password policy.
    pub async fn register(&self, registration: Registration) -> Result<User, RegisterError> {
        if registration.username.len() > self.max_username_len {
            return Err(RegisterError::UsernameTooLong {
                max: self.max_username_len,
            });
        }
        self.passwords.policy().check(&registration.password)?;
        let hash = self.passwords.hash(&registration.password).await?;
        let mut user = NewUser::new(registration.username)
            .password_hash(hash)
            .roles(registration.roles)
            .first_user_roles(registration.first_user_roles);
        user.email = registration.email;
        user.full_name = registration.full_name;
        let user = self
            .auth
            .users()
            .create_user(user, self.auth.now())
            .await
            .map_err(|error| match error {
                StoreError::Conflict(field) => RegisterError::Taken(field),
                other => RegisterError::Store(other),
            })?;
        self.auth
            .audit(AuditKind::UserRegistered, Some(user.id))
            .await;
        Ok(user)
    }

    /// Signs in with a username and password from the client at `address`: the password is
    /// checked (throttled when a [throttle](Self::throttle) is set, in the same time whether
    /// or not the account exists), then the sign-in continues in the
    /// [pipeline](Self::pipeline), which asks for a second factor when the user is enrolled
    /// in one.
    ///
    /// Each attempt is counted before the password is checked and taken back when it
    /// succeeds (see [`Attempt`](crate::ratelimit::Attempt)), so concurrent guesses get no more
    /// tries than the policy's, and a client that hangs up mid-check is charged all the same.
    /// A username that no account can have (see [`max_username_len`](Self::max_username_len))
    /// is refused before the throttle and the store see it.
    ///
    /// ```
    /// use portcullis::{Auth, Passwords, PasswordPolicy, store::MemoryStore};
    /// use portcullis::flows::{PasswordLogin, Registration};
    /// use portcullis::sign_in::{Refusal, SignInOutcome};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let auth = Auth::builder(MemoryStore::new()).build();
    /// let login = PasswordLogin::new(&auth, &Passwords::new(PasswordPolicy::default()));
    /// login.register(Registration::new("ada", "correct horse battery")).await?;
    ///
    /// let outcome = login.sign_in("ada", "correct horse battery", None).await?;
    /// assert!(matches!(outcome, SignInOutcome::SignedIn(ref ada) if ada.user().username == "ada"));
    /// let outcome = login.sign_in("ada", "wrong", None).await?;
    /// assert!(matches!(outcome, SignInOutcome::Refused(Refusal::InvalidCredentials)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        address: Option<std::net::IpAddr>,
    ) -> Result<SignInOutcome, SignInError> {
        match self.first_factor(username, password, address).await? {
            Ok(user) => {
                let proof = Authenticated::new(user, Factor::Password, self.auth.now());
                self.pipeline.begin(proof).await
            }
            Err(refusal) => Ok(SignInOutcome::Refused(refusal)),
        }
    }

    /// Checks a username and password from the client at `address` — the first factor — with
    /// the throttle when one is configured.
    async fn first_factor(
        &self,
        username: &str,
        password: &str,
        address: Option<std::net::IpAddr>,
    ) -> Result<FirstFactor, SignInError> {
        if !self.could_exist(username) {
            return Ok(Err(Refusal::InvalidCredentials));
        }
        #[cfg(feature = "ratelimit")]
        if let Some(throttle) = &self.throttle {
            let attempt = match throttle.attempt(username, address).await {
                Ok(attempt) => attempt,
                Err(throttled) => {
                    let retry_after = throttled.retry_after;
                    return Ok(Err(Refusal::Throttled { retry_after }));
                }
            };
            let result = self.check_password(username, password).await;
            match &result {
                Ok(Ok(_)) => attempt.succeeded().await,
                Ok(Err(_)) => attempt.failed(),
                // Says nothing about the password: not the client's failure.
                Err(_) => attempt.refund().await,
            }
            return result;
        }
        let _ = address;
        self.check_password(username, password).await
    }

    /// Whether an account could have this username: not longer than the cap, and no text a
    /// store refuses (U+0000). One that could not is answered as a wrong password, unlooked-up.
    fn could_exist(&self, username: &str) -> bool {
        username.len() <= self.max_username_len && crate::store::validate::storable(username)
    }

    /// Checks a username and password, unthrottled; records the login and upgrades a legacy
    /// hash.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<FirstFactor, SignInError> {
        let started = std::time::Instant::now();
        let user = self.auth.users().user_by_username(username).await?;
        let stored = user.as_ref().and_then(|user| user.password_hash.as_deref());
        // Every way of failing costs one verification and then waits out the slowest scheme
        // (see `Passwords::pad_failure`): unknown user, no password, corrupt hash, wrong
        // password under any scheme.
        let verification = match stored {
            Some(stored) => match self.passwords.verify(password, stored).await {
                Ok(verification) => verification,
                Err(PasswordError::UnsupportedHash) => {
                    tracing::warn!(
                        "a user's stored password hash cannot be verified by this build"
                    );
                    self.passwords.verify_dummy(password).await?
                }
                Err(other) => return Err(other.into()),
            },
            None => self.passwords.verify_dummy(password).await?,
        };
        let (Some(user), Verification::Match { needs_rehash }) = (user, verification) else {
            self.auth.audit(AuditKind::LoginFailed, None).await;
            self.passwords.pad_failure(started).await;
            return Ok(Err(Refusal::InvalidCredentials));
        };
        if !user.is_active {
            self.auth.audit(AuditKind::LoginFailed, Some(user.id)).await;
            return Ok(Err(Refusal::Inactive));
        }
        let mut update = UserUpdate::default().last_login(self.auth.now());
        if needs_rehash {
            update = update.password_hash(self.passwords.hash(password).await?);
        }
        // A rehash does not change which password is valid, so cached credentials stay.
        // Deleted since it was read: as if it never existed.
        let Some(updated) = self
            .auth
            .users()
            .update_user(user.id, update, self.auth.now())
            .await?
        else {
            return Ok(Err(Refusal::InvalidCredentials));
        };
        if needs_rehash {
            self.auth
                .audit(AuditKind::PasswordRehashed, Some(user.id))
                .await;
        }
        self.auth
            .audit(AuditKind::LoginSucceeded, Some(user.id))
            .await;
        Ok(Ok(updated))
    }

    /// Changes a user's password after checking the current one, then ends every session of
    /// the user (refresh tokens and session ids are revoked, so their access tokens stop
    /// working on every instance); API keys stay valid. OWASP ASVS 5.0 V6.2.2/V7.4.3.
    pub async fn change_password(
        &self,
        user: UserId,
        current: &str,
        new: &str,
    ) -> Result<User, ChangePasswordError> {
        let record = self
            .auth
            .users()
            .user_by_id(user)
            .await?
            .ok_or(ChangePasswordError::UnknownUser)?;
        let verification = match record.password_hash.as_deref() {
            Some(stored) => self.passwords.verify(current, stored).await?,
            None => self.passwords.verify_dummy(current).await?,
        };
        if !matches!(verification, Verification::Match { .. }) {
            return Err(ChangePasswordError::WrongPassword);
        }
        self.passwords.policy().check(new)?;
        let hash = self.passwords.hash(new).await?;
        let updated = self
            .auth
            .update_user(user, UserUpdate::default().password_hash(hash))
            .await?
            .ok_or(ChangePasswordError::UnknownUser)?;
        // After the update: sessions must not outlive the old password.
        self.auth
            .end_credentials(user, Credentials::SignIns, RevokeReason::PasswordChanged)
            .await?;
        Ok(updated)
    }
}
