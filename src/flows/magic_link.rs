//! Email sign-in ("magic links"): a code, and a link that carries it, mailed off the request
//! path; redeeming either signs the mailbox's owner in through the sign-in pipeline.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::assurance::Factor;
use crate::auth::Auth;
use crate::mail::{MailBranding, Outbox};
use crate::one_time::{IssueSecretError, OneTimeSecrets, RedeemError, SecretRequest};
use crate::sign_in::{Authenticated, Refusal, SignIn, SignInError, SignInOutcome};
use crate::store::{Consumption, NewUser, SecretKind, SecretSubject, StoreError, User};
use crate::token::TokenDigest;

/// How long a code and its link stay redeemable by default: five minutes (NIST SP 800-63B-4
/// allows at most ten for an out-of-band secret).
pub const DEFAULT_MAGIC_LINK_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The longest address accepted, in bytes (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// How many of something are allowed per period, counted in fixed windows of `period`
/// (aligned to the Unix epoch) in the store's counters, so every instance shares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// How many per window.
    pub count: u32,
    /// The window's length.
    pub period: Duration,
}

impl Allowance {
    /// `count` per `period`.
    ///
    /// # Panics
    ///
    /// When `period` is shorter than a second.
    pub fn new(count: u32, period: Duration) -> Self {
        assert!(
            period.as_secs() >= 1,
            "an allowance period is at least a second"
        );
        Self { count, period }
    }

    /// The start of the window `now` falls in, and how long until the next one.
    fn window(&self, now: OffsetDateTime) -> (OffsetDateTime, Duration) {
        let period = i64::try_from(self.period.as_secs()).unwrap_or(i64::MAX);
        let now_secs = now.unix_timestamp();
        let start = now_secs - now_secs.rem_euclid(period);
        let start_at = OffsetDateTime::from_unix_timestamp(start).unwrap_or(now);
        let left = u64::try_from(start.saturating_add(period) - now_secs).unwrap_or(0);
        (start_at, Duration::from_secs(left.max(1)))
    }
}

/// Why a sign-in link could not be requested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MagicLinkError {
    /// The text is not an email address.
    #[error("invalid email address")]
    InvalidEmail,
    /// The address asked for more links than its [allowance](MagicLinks::request_limit).
    #[error("too many sign-in links requested for this address")]
    TooManyRequests {
        /// When the next request will be accepted.
        retry_after: Duration,
    },
    /// No randomness was available for the code.
    #[error(transparent)]
    Randomness(#[from] crate::token::RandomnessUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signs people in by email: [`request`](Self::request) mails a code and a link to
/// `<base URL><path>?code=…&email=…`; [`verify`](Self::verify) redeems the code (typed, or
/// carried by the link) and continues in the [sign-in pipeline](crate::sign_in).
///
/// * Each request makes a new code and kills every older one; a code is single use, valid
///   for [`lifetime`](Self::lifetime) (five minutes), and dead after five wrong guesses
///   even for the right code (NIST SP 800-63B-4 §5.1.3). Codes are stored as keyed digests
///   scoped to the address (see [`OneTimeSecrets`]).
/// * The answer to a request, and its timing, are the same whether or not the address has
///   an account: a code is issued either way, and mail leaves through the [`Outbox`], off the
///   request path. Without [`create_users`](Self::create_users), no mail goes to an address
///   without an account, so no code for it can ever be right.
/// * Links are built from the configured [`MailBranding`], never from the request's `Host`.
/// * Requests are limited per address ([`request_limit`](Self::request_limit), 20 a day by
///   default) and verifications too ([`verification_limit`](Self::verification_limit), 10 a
///   day), in the store's counters.
/// * An account whose address was never verified is taken over by the first person who
///   proves they own the mailbox: the address becomes verified, the password is removed and
///   every credential ends, so someone who registered another's address in advance
///   (account pre-hijacking) keeps nothing.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use portcullis::{Auth, OneTimeSecrets};
/// use portcullis::flows::MagicLinks;
/// use portcullis::mail::{LogMailer, MailBranding, Outbox};
/// use portcullis::store::MemoryStore;
/// use portcullis::token::CodeKey;
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let secrets = OneTimeSecrets::new(&auth, CodeKey::new(&[7; 32])?);
/// let branding = MailBranding::new("Khoj", "https://app.khoj.dev")?;
/// let links = MagicLinks::new(&auth, &secrets, Outbox::spawn(LogMailer::new(), 100), branding)
///     .path("/auth/magic")
///     .create_users(true);
/// links.request("ada@example.com", None).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct MagicLinks {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    auth: Auth,
    secrets: OneTimeSecrets,
    outbox: Outbox,
    branding: MailBranding,
    path: String,
    lifetime: Duration,
    requests: Allowance,
    verifications: Allowance,
    create_users: bool,
    pipeline: SignIn,
}

impl MagicLinks {
    /// Email sign-in over `auth`, with codes from `secrets`, mail through `outbox` and links
    /// under `branding`'s base URL at `/auth/magic`.
    pub fn new(
        auth: &Auth,
        secrets: &OneTimeSecrets,
        outbox: Outbox,
        branding: MailBranding,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                secrets: secrets.clone(),
                outbox,
                branding,
                path: "/auth/magic".to_owned(),
                lifetime: DEFAULT_MAGIC_LINK_LIFETIME,
                requests: Allowance::new(20, Duration::from_secs(86_400)),
                verifications: Allowance::new(10, Duration::from_secs(86_400)),
                create_users: false,
                pipeline: SignIn::new(auth),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// The path the link points to, under the base URL (default `/auth/magic`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.inner_mut().path = path.into();
        self
    }

    /// How long a code and its link stay redeemable (default five minutes).
    ///
    /// # Panics
    ///
    /// Past ten minutes, the most NIST SP 800-63B-4 allows an out-of-band secret.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        assert!(
            lifetime <= Duration::from_secs(600),
            "a sign-in code lives at most ten minutes"
        );
        self.inner_mut().lifetime = lifetime;
        self
    }

    /// How many links one address may request (default 20 a day).
    #[must_use]
    pub fn request_limit(mut self, allowance: Allowance) -> Self {
        self.inner_mut().requests = allowance;
        self
    }

    /// How many codes one address may try (default 10 a day), on top of each code's five
    /// guesses.
    #[must_use]
    pub fn verification_limit(mut self, allowance: Allowance) -> Self {
        self.inner_mut().verifications = allowance;
        self
    }

    /// Whether a verified code for an address without an account creates one (default
    /// `false`), with the address as username and as verified email.
    #[must_use]
    pub fn create_users(mut self, create: bool) -> Self {
        self.inner_mut().create_users = create;
        self
    }

    /// Sends successful verifications through `pipeline` (its second factors).
    #[must_use]
    pub fn pipeline(mut self, pipeline: SignIn) -> Self {
        self.inner_mut().pipeline = pipeline;
        self
    }

    /// Issues a new code for `email` (killing older ones) and mails it with its link, which
    /// also carries `next` when given (check it with
    /// [`LocalRedirect`](crate::redirect::LocalRedirect) when it comes back).
    ///
    /// Answers `Ok` whether or not the address has an account. A full outbox is logged, not
    /// answered: telling the client would tell them the address has an account.
    pub async fn request(&self, email: &str, next: Option<&str>) -> Result<(), MagicLinkError> {
        let inner = &self.inner;
        let email = normalised_email(email).ok_or(MagicLinkError::InvalidEmail)?;
        let now = inner.auth.now();
        if let Some(retry_after) = self.over(&inner.requests, "request", &email, now).await? {
            return Err(MagicLinkError::TooManyRequests { retry_after });
        }
        let subject = SecretSubject::email(&email);
        let request = SecretRequest::new(SecretKind::MAGIC_LINK, inner.lifetime)
            .subject(subject)
            .replacing_earlier();
        let issued = inner
            .secrets
            .issue_code(request)
            .await
            .map_err(|error| match error {
                IssueSecretError::Randomness(error) => MagicLinkError::Randomness(error),
                IssueSecretError::Store(error) => MagicLinkError::Store(error),
                other => MagicLinkError::Store(StoreError::unavailable(other)),
            })?;
        let deliver =
            inner.create_users || inner.auth.users().user_by_email(&email).await?.is_some();
        if !deliver {
            return Ok(());
        }
        let code = issued.code.expose();
        let mut query = vec![("code", code), ("email", email.as_str())];
        if let Some(next) = next {
            query.push(("next", next));
        }
        let link = inner.branding.link(&inner.path, &query);
        let message = inner
            .branding
            .sign_in_code(&email, code, &link, inner.lifetime);
        if inner.outbox.send(message).is_err() {
            tracing::warn!("the mail outbox is full: a sign-in code was dropped");
        }
        Ok(())
    }

    /// Redeems `code` for `email` and signs the address's owner in: finds the account by its
    /// address (creating it when [`create_users`](Self::create_users) is on), then continues
    /// in the pipeline.
    ///
    /// Refusals: [`Refusal::InvalidCredentials`] for a wrong code, and for one already used,
    /// replaced by a newer request, dead after five wrong guesses or for an address that was
    /// never mailed (one answer: none of them says more than "not this code");
    /// [`Refusal::ChallengeInvalid`] when the address's latest code expired unused (request a
    /// new code); [`Refusal::Throttled`] past the
    /// [verification limit](Self::verification_limit); [`Refusal::Inactive`] for a
    /// deactivated account.
    pub async fn verify(&self, email: &str, code: &str) -> Result<SignInOutcome, SignInError> {
        let inner = &self.inner;
        let Some(email) = normalised_email(email) else {
            return Ok(SignInOutcome::Refused(Refusal::InvalidCredentials));
        };
        let now = inner.auth.now();
        if let Some(retry_after) = self
            .over(&inner.verifications, "verify", &email, now)
            .await?
        {
            return Ok(SignInOutcome::Refused(Refusal::Throttled { retry_after }));
        }
        let subject = SecretSubject::email(&email);
        match inner
            .secrets
            .redeem_code(SecretKind::MAGIC_LINK, &subject, code)
            .await
        {
            Ok(_) => {}
            Err(RedeemError::Expired) => {
                return Ok(SignInOutcome::Refused(Refusal::ChallengeInvalid));
            }
            Err(RedeemError::Store(error)) => return Err(error.into()),
            // Wrong, used, replaced, dead, or never mailed.
            Err(_) => return Ok(SignInOutcome::Refused(Refusal::InvalidCredentials)),
        }
        let Some(user) = self.owner_of(&email).await? else {
            // Only reachable when accounts are not created and the account went away after
            // the code was mailed.
            return Ok(SignInOutcome::Refused(Refusal::InvalidCredentials));
        };
        let proof = Authenticated::new(user, Factor::Email, inner.auth.now());
        inner.pipeline.begin(proof).await
    }

    /// The account of a mailbox just proved: its verified owner, an unverified holder taken
    /// over, or a new account.
    async fn owner_of(&self, email: &str) -> Result<Option<User>, StoreError> {
        let auth = &self.inner.auth;
        match auth.users().user_by_email(email).await? {
            Some(user) => super::claimed_by_mailbox_owner(auth, user).await,
            None if self.inner.create_users => {
                let user = NewUser::new(email).email(email).email_verified(true);
                match auth.users().create_user(user, auth.now()).await {
                    Ok(user) => Ok(Some(user)),
                    // Created by a racing sign-in of the same address since it was read.
                    Err(StoreError::Conflict(_)) => auth.users().user_by_email(email).await,
                    Err(error) => Err(error),
                }
            }
            None => Ok(None),
        }
    }

    /// Counts one `what` for `email` against `allowance`; `Some(retry_after)` when over it.
    async fn over(
        &self,
        allowance: &Allowance,
        what: &str,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        // A digest, so that counter keys are one size and hold no address.
        let key = format!("magic_link:{what}:{}", TokenDigest::of(email).to_hex());
        let (window, retry_after) = allowance.window(now);
        let counted = self
            .inner
            .auth
            .counters()
            .consume(&key, window, 1, allowance.count.into())
            .await?;
        Ok(match counted {
            Consumption::Allowed { .. } => None,
            _ => Some(retry_after),
        })
    }
}

/// `text` as an address mail can be sent to, lower-cased and trimmed, or `None`: one `@`,
/// a local part of 1–64 bytes, a domain with a dot, no spaces, controls or characters that
/// would need quoting, at most 254 bytes.
fn normalised_email(text: &str) -> Option<String> {
    let email = text.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plain = |part: &str| {
        part.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"\"(),:;<>@[\\]".contains(c))
    };
    let well_formed = email.len() <= MAX_EMAIL_LEN
        && (1..=64).contains(&local.len())
        && plain(local)
        && plain(domain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    well_formed.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_and_non_addresses_refused() {
        assert_eq!(
            normalised_email("  Ada@Example.COM ").as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada smith@example.com",
            "ada@exa mple.com",
            "ada@example..com",
            "ada@.example.com",
            "<ada@example.com>",
            "ada@example.com\r\nBcc: eve@example.com",
        ] {
            assert_eq!(normalised_email(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(normalised_email(&long), None);
    }

    #[test]
    fn allowance_windows_are_aligned_and_say_when_the_next_starts() {
        let day = Allowance::new(20, Duration::from_secs(86_400));
        let now = OffsetDateTime::from_unix_timestamp(86_400 * 3 + 3_600).unwrap();
        let (start, left) = day.window(now);
        assert_eq!(start.unix_timestamp(), 86_400 * 3);
        assert_eq!(left, Duration::from_secs(86_400 - 3_600));
    }
}
