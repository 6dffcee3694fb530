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
/// Login answers the same [`LoginError::InvalidCredentials`] for an unknown username and a
/// wrong password, and spends the same time on both (a dummy hash is verified for unknown
/// users), so neither the answer nor its timing reveals which accounts exist. A correct
/// password for a deactivated account is [`LoginError::Inactive`]. A legacy or weak hash is
/// replaced with a fresh Argon2id hash on successful login.
///
/// ```
/// use portcullis::{Auth, Passwords, PasswordPolicy, store::MemoryStore};
/// use portcullis::flows::{PasswordLogin, Registration, LoginError};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let login = PasswordLogin::new(&auth, &Passwords::new(PasswordPolicy::default()));
///
/// let ada = login
///     .register(Registration::new("ada", "correct horse battery").first_user_roles(["superuser"]))
///     .await?;
/// assert!(ada.is_superuser());
/// assert_eq!(login.login("ada", "correct horse battery").await?.id, ada.id);
/// assert!(matches!(login.login("ada", "wrong password").await, Err(LoginError::InvalidCredentials)));
/// assert!(matches!(login.login("bob", "wrong password").await, Err(LoginError::InvalidCredentials)));
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

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown username or wrong password; deliberately indistinguishable.
    #[error("incorrect username or password")]
    InvalidCredentials,
    /// Too many recent failures for this account or address; try again later. Answered
    /// before the password is checked (see [`LoginThrottle`](crate::ratelimit::LoginThrottle)).
    #[error("too many failed login attempts")]
    Throttled {
        /// When the next attempt will be accepted.
        retry_after: std::time::Duration,
    },
    /// The password is right but the account is deactivated.
    #[error("the account is inactive")]
    Inactive,
    /// Hashing failed.
    #[error(transparent)]
    Hashing(#[from] PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
    /// [`LoginThrottle`](crate::ratelimit::LoginThrottle)); use [`login_from`](Self::login_from).
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
    /// checked as by [`login_from`](Self::login_from) (throttled, timing-safe), then the
    /// sign-in continues in the [pipeline](Self::pipeline), which asks for a second factor
    /// when the user is enrolled in one.
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
        let refusal = match self.login_from(username, password, address).await {
            Ok(user) => {
                let proof = Authenticated::new(user, Factor::Password, self.auth.now());
                return self.pipeline.begin(proof).await;
            }
            Err(LoginError::InvalidCredentials) => Refusal::InvalidCredentials,
            Err(LoginError::Throttled { retry_after }) => Refusal::Throttled { retry_after },
            Err(LoginError::Inactive) => Refusal::Inactive,
            Err(LoginError::Hashing(error)) => return Err(error.into()),
            Err(LoginError::Store(error)) => return Err(error.into()),
        };
        Ok(SignInOutcome::Refused(refusal))
    }

    /// Checks a username and password from the client at `address` — the first factor only:
    /// [`sign_in`](Self::sign_in) continues with second factors. Applies the throttle
    /// when one is configured.
    ///
    /// The attempt is counted before the password is checked and taken back when it succeeds
    /// (see [`Attempt`](crate::ratelimit::Attempt)), so concurrent guesses get no more tries than
    /// the policy's, and a client that hangs up mid-check is charged all the same. A username
    /// that no account can have (see [`max_username_len`](Self::max_username_len)) is refused
    /// before the throttle and the store see it.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        address: Option<std::net::IpAddr>,
    ) -> Result<User, LoginError> {
        #[cfg(feature = "ratelimit")]
        if let Some(throttle) = &self.throttle {
            self.check_username(username)?;
            let attempt = throttle
                .attempt(username, address)
                .await
                .map_err(|throttled| LoginError::Throttled {
                    retry_after: throttled.retry_after,
                })?;
            let result = self.login(username, password).await;
            match &result {
                Ok(_) => attempt.succeeded().await,
                Err(LoginError::InvalidCredentials | LoginError::Inactive) => attempt.failed(),
                // Says nothing about the password: not the client's failure.
                Err(_) => attempt.refund().await,
            }
            return result;
        }
        let _ = address;
        self.login(username, password).await
    }

    /// Refuses a username no account can have: longer than the cap, or holding text a store
    /// refuses (U+0000). Answered as a wrong password, without a lookup.
    fn check_username(&self, username: &str) -> Result<(), LoginError> {
        if username.len() > self.max_username_len || !crate::store::validate::storable(username) {
            return Err(LoginError::InvalidCredentials);
        }
        Ok(())
    }

    /// Checks a username and password (the first factor only); records the login and
    /// upgrades a legacy hash. Not throttled: prefer [`sign_in`](Self::sign_in).
    pub async fn login(&self, username: &str, password: &str) -> Result<User, LoginError> {
        self.check_username(username)?;
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
            return Err(LoginError::InvalidCredentials);
        };
        if !user.is_active {
            self.auth.audit(AuditKind::LoginFailed, Some(user.id)).await;
            return Err(LoginError::Inactive);
        }
        let mut update = UserUpdate::default().last_login(self.auth.now());
        if needs_rehash {
            update = update.password_hash(self.passwords.hash(password).await?);
        }
        // A rehash does not change which password is valid, so cached credentials stay.
        let updated = self
            .auth
            .users()
            .update_user(user.id, update, self.auth.now())
            .await?
            .ok_or(LoginError::InvalidCredentials)?;
        if needs_rehash {
            self.auth
                .audit(AuditKind::PasswordRehashed, Some(user.id))
                .await;
        }
        self.auth
            .audit(AuditKind::LoginSucceeded, Some(user.id))
            .await;
        Ok(updated)
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
