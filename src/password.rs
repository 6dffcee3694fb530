//! Password hashing (Argon2id), legacy bcrypt verification, and the password policy.
//!
//! Hashing is deliberately slow, so it runs on the blocking thread pool behind a semaphore
//! sized to the machine: a flood of logins queues instead of stalling the async runtime.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

/// Rules for new passwords.
///
/// Lengths count Unicode characters, not bytes (NIST SP 800-63B §3.1.1.2, OWASP ASVS 5.0
/// V6.2.1: at least 8; V6.2.9: at least 64 allowed). The deny-list is compared ignoring case.
///
/// ```
/// use portcullis::{PasswordPolicy, PolicyViolation};
///
/// let policy = PasswordPolicy::default().deny(["password1"]);
/// assert_eq!(policy.check("short"), Err(PolicyViolation::TooShort { min: 8 }));
/// assert_eq!(policy.check("PASSWORD1"), Err(PolicyViolation::Denied));
/// assert!(policy.check("correct horse battery staple").is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_len: usize,
    max_len: usize,
    denied: HashSet<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 128,
            denied: HashSet::new(),
        }
    }
}

/// A password that breaks the [`PasswordPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// On the deny-list.
    #[error("this password is too common; choose another")]
    Denied,
}

impl PasswordPolicy {
    /// Sets the minimum length in characters (default 8).
    #[must_use]
    pub fn min_length(mut self, chars: usize) -> Self {
        self.min_len = chars;
        self
    }

    /// Sets the maximum length in characters (default 128; kept at least 64).
    #[must_use]
    pub fn max_length(mut self, chars: usize) -> Self {
        self.max_len = chars.max(64);
        self
    }

    /// Refuses these passwords (compared ignoring case).
    #[must_use]
    pub fn deny<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, passwords: I) -> Self {
        self.denied
            .extend(passwords.into_iter().map(|p| p.as_ref().to_lowercase()));
        self
    }

    /// The minimum length.
    pub fn min(&self) -> usize {
        self.min_len
    }

    /// Checks a new password.
    pub fn check(&self, password: &str) -> Result<(), PolicyViolation> {
        let chars = password.chars().count();
        if chars < self.min_len {
            return Err(PolicyViolation::TooShort { min: self.min_len });
        }
        if chars > self.max_len {
            return Err(PolicyViolation::TooLong { max: self.max_len });
        }
        if self.denied.contains(&password.to_lowercase()) {
            return Err(PolicyViolation::Denied);
        }
        Ok(())
    }
}

/// The outcome of [`Passwords::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password is right. `needs_rehash` says the stored hash is a legacy scheme or has
    /// weaker parameters than the current ones; store [`Passwords::hash`] of it.
    Match {
        /// Whether to replace the stored hash.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Mismatch,
}

/// Why hashing or verifying failed (never "wrong password", which is [`Verification::Mismatch`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The stored hash is in a scheme this build cannot verify (e.g. bcrypt without the
    /// `bcrypt` feature) or is corrupt.
    #[error("unsupported or corrupt password hash")]
    UnsupportedHash,
    /// The hasher failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords. Cheap to clone.
///
/// New hashes are Argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's recommendation). Hashes
/// in bcrypt (`$2a$`, `$2b$`, `$2y$`, as written by passlib and the `bcrypt` package) verify
/// with the `bcrypt` feature and report `needs_rehash`.
///
/// ```
/// use portcullis::{Passwords, PasswordPolicy, Verification};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let passwords = Passwords::new(PasswordPolicy::default());
/// let hash = passwords.hash("correct horse battery staple").await?;
/// assert!(hash.starts_with("$argon2id$"));
/// assert_eq!(
///     passwords.verify("correct horse battery staple", &hash).await?,
///     Verification::Match { needs_rehash: false }
/// );
/// assert_eq!(passwords.verify("wrong", &hash).await?, Verification::Mismatch);
/// # Ok::<(), portcullis::PasswordError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    policy: PasswordPolicy,
    params: Params,
    /// Owned by each running hash, not by the request's future: a request dropped mid-hash
    /// (its client hung up) keeps its permit until the hash is done.
    permits: Arc<Semaphore>,
    dummy_hash: OnceCell<String>,
    /// Hashes and verifications running on the blocking pool right now.
    in_flight: std::sync::atomic::AtomicUsize,
    /// How long verifications take, per scheme, to pad failures to the slowest.
    timings: Timings,
}

/// The schemes a stored hash can be in, as far as timing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    /// Argon2id with the configured parameters: what the dummy verification costs.
    Current,
    /// Argon2 with other parameters (weaker or stronger: either takes another time).
    OtherArgon2,
    /// Legacy bcrypt.
    Bcrypt,
}

impl Scheme {
    const COUNT: usize = 3;

    /// The scheme of a hash that verified (so it is Argon2 or bcrypt).
    fn of(stored: &str, params: &Params) -> Self {
        if !stored.starts_with("$argon2") {
            return Self::Bcrypt;
        }
        match PasswordHash::new(stored) {
            Ok(hash) if is_current(&hash, params) => Self::Current,
            _ => Self::OtherArgon2,
        }
    }
}

/// A running average (weight 1/8) of each scheme's verification time, in microseconds; zero
/// until the scheme is first seen.
#[derive(Debug, Default)]
struct Timings([std::sync::atomic::AtomicU64; Scheme::COUNT]);

impl Timings {
    fn record(&self, scheme: Scheme, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.0[scheme as usize].fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |average| {
                Some(if average == 0 {
                    micros
                } else {
                    average - average / 8 + micros / 8
                })
            },
        );
    }

    fn slowest(&self) -> std::time::Duration {
        let slowest = self
            .0
            .iter()
            .map(|average| average.load(std::sync::atomic::Ordering::Acquire))
            .max()
            .unwrap_or(0);
        std::time::Duration::from_micros(slowest)
    }
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("policy", &self.inner.policy)
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// A hasher with OWASP's Argon2id parameters and as many concurrent hashes as CPUs.
    pub fn new(policy: PasswordPolicy) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
        Self::with_params(policy, Params::DEFAULT, parallelism)
    }

    /// A hasher with explicit Argon2id parameters and concurrency (tests use cheap ones).
    pub fn with_params(policy: PasswordPolicy, params: Params, concurrent_hashes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                params,
                permits: Arc::new(Semaphore::new(concurrent_hashes.max(1))),
                dummy_hash: OnceCell::new(),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                timings: Timings::default(),
            }),
        }
    }

    /// How many hashes and verifications are running right now (never more than the
    /// configured concurrency), e.g. for a metric.
    pub fn hashes_in_flight(&self) -> usize {
        self.inner
            .in_flight
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The policy for new passwords.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.inner.policy
    }

    /// Hashes a password (Argon2id, random salt) on the blocking pool.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        let password = password.to_owned();
        self.blocking(move || {
            argon2(params)
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| PasswordError::Hashing(error.to_string()))
        })
        .await
    }

    /// Verifies `password` against a stored hash, on the blocking pool.
    pub async fn verify(
        &self,
        password: &str,
        stored: &str,
    ) -> Result<Verification, PasswordError> {
        let params = self.inner.params.clone();
        let password = password.to_owned();
        let stored = stored.to_owned();
        let inner = Arc::clone(&self.inner);
        self.blocking(move || {
            let started = std::time::Instant::now();
            let verification = verify_blocking(&params, &password, &stored);
            if verification.is_ok() {
                inner
                    .timings
                    .record(Scheme::of(&stored, &params), started.elapsed());
            }
            verification
        })
        .await
    }

    /// Waits until a failed password check that began at `started` has taken as long as the
    /// slowest kind of verification this hasher has seen (a running average per scheme).
    ///
    /// A wrong password for an account with a legacy bcrypt hash takes bcrypt's time, an
    /// unknown user the dummy Argon2id verification's: without padding, the difference tells
    /// which accounts exist (and which still have a legacy hash). Padding every failure to
    /// the slowest scheme leaves nothing to tell; it waits on the timer, not on a CPU.
    /// [`PasswordLogin`](crate::flows::PasswordLogin) calls it on every failed login.
    pub async fn pad_failure(&self, started: std::time::Instant) {
        let until = started + self.inner.timings.slowest();
        tokio::time::sleep_until(until.into()).await;
    }

    /// Spends the same time as verifying a real password and always answers
    /// [`Verification::Mismatch`]: call it when the user does not exist, so that response time
    /// does not reveal which usernames are registered (OWASP ASVS 5.0 V6.3.8).
    pub async fn verify_dummy(&self, password: &str) -> Result<Verification, PasswordError> {
        let dummy = self
            .inner
            .dummy_hash
            .get_or_try_init(|| self.hash("portcullis-dummy-password-never-matches"))
            .await?
            .clone();
        self.verify(password, &dummy).await?;
        Ok(Verification::Mismatch)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|error| PasswordError::Hashing(error.to_string()))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // Released when the work ends, whether or not anyone still waits for it.
            let _running = Running::start(&inner, permit);
            work()
        })
        .await
        .map_err(|error| PasswordError::Hashing(error.to_string()))?
    }
}

/// One hash on the blocking pool: counted in flight, holding its permit, until dropped.
struct Running<'a> {
    inner: &'a Inner,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<'a> Running<'a> {
    fn start(inner: &'a Inner, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        inner
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self {
            inner,
            _permit: permit,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // Before the permit goes (fields drop after this), so the count never exceeds the cap.
        self.inner
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn verify_blocking(
    params: &Params,
    password: &str,
    stored: &str,
) -> Result<Verification, PasswordError> {
    if stored.starts_with("$argon2") {
        let hash = PasswordHash::new(stored).map_err(|_| PasswordError::UnsupportedHash)?;
        return match argon2(params.clone()).verify_password(password.as_bytes(), &hash) {
            Ok(()) => Ok(Verification::Match {
                needs_rehash: !is_current(&hash, params),
            }),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verification::Mismatch),
            Err(_) => Err(PasswordError::UnsupportedHash),
        };
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return verify_bcrypt(password, stored);
    }
    Err(PasswordError::UnsupportedHash)
}

fn is_current(hash: &PasswordHash, params: &Params) -> bool {
    let Ok(stored) = Params::try_from(hash) else {
        return false;
    };
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13.into())
        && stored.m_cost() == params.m_cost()
        && stored.t_cost() == params.t_cost()
        && stored.p_cost() == params.p_cost()
}

#[cfg(feature = "bcrypt")]
fn verify_bcrypt(password: &str, stored: &str) -> Result<Verification, PasswordError> {
    // passlib and the bcrypt package silently use only the first 72 bytes; so must we, or
    // existing users with longer passwords could not log in.
    match bcrypt::verify(password, stored) {
        Ok(true) => Ok(Verification::Match { needs_rehash: true }),
        Ok(false) => Ok(Verification::Mismatch),
        Err(_) => Err(PasswordError::UnsupportedHash),
    }
}

#[cfg(not(feature = "bcrypt"))]
fn verify_bcrypt(_password: &str, _stored: &str) -> Result<Verification, PasswordError> {
    Err(PasswordError::UnsupportedHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::with_params(
            PasswordPolicy::default(),
            Params::new(1024, 1, 1, None).unwrap(),
            2,
        )
    }

    #[test]
    fn owasp_argon2id_parameters_are_the_default() {
        assert_eq!(Params::DEFAULT.m_cost(), 19_456);
        assert_eq!(Params::DEFAULT.t_cost(), 2);
        assert_eq!(Params::DEFAULT.p_cost(), 1);
    }

    #[tokio::test]
    async fn weaker_argon2_parameters_need_a_rehash() {
        let weak = cheap().hash("hunter22hunter22").await.unwrap();
        let strong = Passwords::new(PasswordPolicy::default());
        assert_eq!(
            strong.verify("hunter22hunter22", &weak).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn a_hash_needs_a_rehash_when_any_argon2_parameter_changed() {
        let hash = cheap().hash("hunter22hunter22").await.unwrap();
        let with = |m, t, p| {
            Passwords::with_params(
                PasswordPolicy::default(),
                Params::new(m, t, p, None).unwrap(),
                1,
            )
        };
        for ((m, t, p), needs_rehash) in [
            ((1024, 1, 1), false),
            ((2048, 1, 1), true),
            ((1024, 2, 1), true),
            ((1024, 1, 2), true),
        ] {
            assert_eq!(
                with(m, t, p)
                    .verify("hunter22hunter22", &hash)
                    .await
                    .unwrap(),
                Verification::Match { needs_rehash },
                "m={m} t={t} p={p}"
            );
        }
    }

    #[tokio::test]
    async fn argon2i_hashes_verify_and_need_a_rehash() {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"legacy-password")
            .unwrap()
            .to_string();
        let passwords = Passwords::with_params(PasswordPolicy::default(), params, 1);
        assert_eq!(
            passwords.verify("legacy-password", &argon2i).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn corrupt_and_unknown_hashes_are_errors_not_matches() {
        let passwords = cheap();
        for stored in [
            "",
            "plaintext",
            "$argon2id$v=19$garbage",
            "$1$md5$crypt",
            "$2b$04$short",
        ] {
            let result = passwords.verify("anything", stored).await;
            assert!(
                matches!(result, Err(PasswordError::UnsupportedHash)),
                "{stored:?}: {result:?}"
            );
        }
    }

    #[cfg(feature = "bcrypt")]
    #[tokio::test]
    async fn legacy_bcrypt_hashes_verify_and_need_a_rehash() {
        let passwords = cheap();
        // Written by passlib 1.7.4 with bcrypt 4.0.1: CryptContext(schemes=["bcrypt"]).hash(...)
        let passlib = "$2b$12$f7wazk1lkXzPSU50sx3pv.cq5C8ZJCUHUTG51Aqk0pw4P7RD6XKC2";
        assert_eq!(
            passwords.verify("secret123", passlib).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            passwords.verify("Secret123", passlib).await.unwrap(),
            Verification::Mismatch
        );
        // passlib truncates at 72 bytes; a hash of 80 x's matches any 72-x prefix.
        let passlib_long = "$2b$12$0ZmGzCJlJWffeUDvF9bEPuz2igCzqEH.jSOIZtEQfQdAZaSNUxpeS";
        let truncated_twin = format!("{}tail", "x".repeat(72));
        assert_eq!(
            passwords
                .verify(&truncated_twin, passlib_long)
                .await
                .unwrap(),
            Verification::Match { needs_rehash: true }
        );
        let fresh = bcrypt::hash("secret123", 4).unwrap();
        assert_eq!(
            passwords.verify("secret123", &fresh).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            passwords.verify("secret124", &fresh).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn dummy_verification_never_matches() {
        let passwords = cheap();
        assert_eq!(
            passwords
                .verify_dummy("portcullis-dummy-password-never-matches")
                .await
                .unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(policy.check("éééééééé").is_ok());
        assert_eq!(
            policy.check(&"x".repeat(129)),
            Err(PolicyViolation::TooLong { max: 128 })
        );
        assert_eq!(
            PasswordPolicy::default()
                .max_length(10)
                .check(&"x".repeat(64)),
            Ok(())
        );
    }

    #[test]
    fn policy_settings_take_effect() {
        let policy = PasswordPolicy::default()
            .min_length(6)
            .max_length(100)
            .deny(["Password1", "qwerty123"]);
        assert_eq!(policy.min(), 6);
        assert_eq!(
            policy.check("abcde"),
            Err(PolicyViolation::TooShort { min: 6 })
        );
        assert_eq!(policy.check("abcdef"), Ok(()));
        assert_eq!(
            policy.check(&"x".repeat(101)),
            Err(PolicyViolation::TooLong { max: 100 })
        );
        assert_eq!(policy.check("PASSWORD1"), Err(PolicyViolation::Denied));

        let passwords = Passwords::with_params(policy, Params::new(1024, 1, 1, None).unwrap(), 1);
        assert_eq!(passwords.policy().min(), 6);
        let debug = format!("{passwords:?}");
        assert!(
            debug.starts_with("Passwords { policy: PasswordPolicy { min_len: 6, max_len: 100"),
            "{debug}"
        );
    }
}
