//! Mail: the [`Mailer`] trait, the messages the account flows send, and sending off the
//! request path.
//!
//! * [`MailBranding`] writes each message (text and HTML) with the application's name, and
//!   builds every link from the configured public base URL — never from the request's `Host`
//!   header, which a client chooses (host-header poisoning of sign-in and reset links).
//! * [`Outbox`] hands messages to a background task, so that an endpoint that mails answers
//!   in the same time whether or not the address has an account, and whatever the mail server
//!   does.
//! * [`Mailer`]s: `SmtpMailer` (feature `smtp`, lettre: STARTTLS, TLS, or plain for a local
//!   sink; timeouts), and [`LogMailer`] for development, which writes messages to the log.
//!
//! ```
//! use std::time::Duration;
//! use portcullis::mail::{LogMailer, MailBranding, Outbox};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let branding = MailBranding::new("Khoj", "https://app.khoj.dev")?;
//! let outbox = Outbox::spawn(LogMailer::new(), 1024);
//! let link = branding.link("/auth/magic", &[("code", "123456"), ("email", "ada@example.com")]);
//! let five_minutes = Duration::from_secs(300);
//! outbox.send(branding.sign_in_code("ada@example.com", "123456", &link, five_minutes))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod branding;
mod email;
mod log;
mod outbox;
#[cfg(feature = "smtp")]
mod smtp;

use async_trait::async_trait;

pub use branding::{InvalidBaseUrl, InvalidSubject, MailBranding, MessageKind};
pub use email::Email;
pub use log::LogMailer;
pub use outbox::{Outbox, OutboxFull};
#[cfg(feature = "smtp")]
pub use smtp::{InvalidSmtpUrl, SmtpConfig, SmtpMailer, SmtpSecurity};

/// Something that delivers an [`Email`]: an SMTP relay, a provider's API, a log.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `email`, or says why not.
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// An address (the recipient, or the configured sender) is not a valid mailbox. Sending
    /// again will not help.
    #[error("invalid mail address: {0}")]
    InvalidAddress(String),
    /// The server refused the message for good (a 5xx reply). Sending again will not help.
    #[error("the mail server refused the message: {0}")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server could not be reached, timed out or failed for now; sending again may work.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl MailError {
    /// Whether sending the same message again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
