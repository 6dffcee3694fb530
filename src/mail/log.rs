//! [`LogMailer`]: development mail, written to the log.

use async_trait::async_trait;

use super::{Email, MailError, Mailer};

/// A [`Mailer`] for development that writes each message, body included, to the log at
/// `INFO` (target `portcullis::mail`), so that a sign-in link can be followed without a mail
/// server.
///
/// The bodies hold sign-in codes and reset links: never use it where the logs are kept or
/// shared. Production configurations should refuse to start with it, as the examples do.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogMailer;

impl LogMailer {
    /// A mailer that logs.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        tracing::info!(
            target: "portcullis::mail",
            kind = email.kind,
            to = %email.to,
            subject = %email.subject,
            "development mail (not sent):\n{}",
            email.text
        );
        Ok(())
    }
}
