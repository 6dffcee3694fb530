//! [`SmtpMailer`]: mail through an SMTP server (lettre).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Email, MailError, Mailer};
use crate::Secret;

/// How the connection to the server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a sink on this machine (tests, a local relay).
    Plain,
}

/// Where and how to send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate, except with
    /// [`SmtpSecurity::Plain`]).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, Secret)>,
    /// The sender, `App <no-reply@example.com>`.
    pub from: String,
    /// How long one delivery may take in all, connecting included; also each command's
    /// limit.
    pub timeout: Duration,
}

impl SmtpConfig {
    /// `host:port` with `security`, sending as `from`; no credentials, a 10 s timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        security: SmtpSecurity,
        from: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            security,
            credentials: None,
            from: from.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Logs in as `user`.
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some((user.into(), password));
        self
    }

    /// How long one delivery may take in all (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A [`Mailer`] that speaks SMTP to a relay, reusing its connections.
///
/// ```no_run
/// use portcullis::mail::{SmtpConfig, SmtpMailer, SmtpSecurity};
///
/// let config = SmtpConfig::new("smtp.example.com", 587, SmtpSecurity::Starttls, "App <no-reply@example.com>")
///     .credentials("app", portcullis::Secret::new("…"));
/// let mailer = SmtpMailer::new(config)?;
/// # Ok::<(), portcullis::mail::MailError>(())
/// ```
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    deadline: Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.email.domain())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`; nothing connects until the first message.
    pub fn new(config: SmtpConfig) -> Result<Self, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| MailError::InvalidAddress(config.from.clone()))?;
        let builder = match config.security {
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            SmtpSecurity::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
        }
        .map_err(|error| MailError::Unavailable(Box::new(error)))?;
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some((user, password)) = config.credentials {
            builder = builder.credentials(Credentials::new(user, password.into_exposed()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            deadline: config.timeout,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::InvalidAddress(format!("…@{}", email.recipient_domain())))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|error| MailError::Refused(Box::new(error)))?;
        // lettre's own timeout covers commands, not a server that accepts the connection and
        // never greets: the deadline bounds the whole delivery.
        let sent = tokio::time::timeout(self.deadline, self.transport.send(message)).await;
        let sent = sent.map_err(|elapsed| MailError::Unavailable(Box::new(elapsed)))?;
        match sent {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(MailError::Refused(Box::new(error))),
            Err(error) => Err(MailError::Unavailable(Box::new(error))),
        }
    }
}
