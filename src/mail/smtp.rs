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

    /// The relay an `SMTP_URL` names, sending as `from`:
    ///
    /// * `smtps://[user:password@]host[:port]`: TLS from the first byte (port 465);
    /// * `smtp://[user:password@]host[:port]`: `STARTTLS`, which the server must offer (port
    ///   587), except for `localhost` and loopback addresses, where a local sink or relay
    ///   is spoken to in plain SMTP.
    ///
    /// User and password are percent-decoded. Anything else (another scheme, a path, a
    /// query, a missing host) is refused, so that a typo never sends mail in the clear.
    ///
    /// ```
    /// use portcullis::mail::{SmtpConfig, SmtpSecurity};
    ///
    /// let relay = SmtpConfig::from_url("smtp://app:s%40cret@mail.example.com", "App <no-reply@example.com>")?;
    /// assert_eq!((relay.port, relay.security), (587, SmtpSecurity::Starttls));
    /// assert_eq!(relay.credentials.as_ref().map(|(_, p)| p.expose()), Some("s@cret"));
    /// let sink = SmtpConfig::from_url("smtp://127.0.0.1:2525", "App <no-reply@example.com>")?;
    /// assert_eq!(sink.security, SmtpSecurity::Plain);
    /// # Ok::<(), portcullis::mail::InvalidSmtpUrl>(())
    /// ```
    pub fn from_url(url: &str, from: impl Into<String>) -> Result<Self, InvalidSmtpUrl> {
        let invalid = |reason| InvalidSmtpUrl { reason };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let authority = uri.authority().ok_or(invalid("no host"))?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(invalid("a path or query is not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let (security, default_port) = match uri.scheme_str() {
            Some("smtps") => (SmtpSecurity::Tls, 465),
            Some("smtp") if loopback => (SmtpSecurity::Plain, 587),
            Some("smtp") => (SmtpSecurity::Starttls, 587),
            _ => return Err(invalid("the scheme must be smtp or smtps")),
        };
        let mut config = Self::new(
            host,
            authority.port_u16().unwrap_or(default_port),
            security,
            from,
        );
        if let Some((userinfo, _)) = authority.as_str().rsplit_once('@') {
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|text| text.into_owned())
                    .map_err(|_| invalid("the user information is not UTF-8"))
            };
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            config = config.credentials(decode(user)?, Secret::new(decode(password)?));
        }
        Ok(config)
    }
}

/// An `SMTP_URL` that [`SmtpConfig::from_url`] does not accept. Never shows the URL, which
/// may hold a password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMTP URL: {reason}")]
pub struct InvalidSmtpUrl {
    reason: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_choose_tls_unless_the_relay_is_this_machine() {
        let from = "App <no-reply@example.com>";
        let tls = SmtpConfig::from_url("smtps://mail.example.com", from).unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.security),
            ("mail.example.com", 465, SmtpSecurity::Tls)
        );
        let ipv6 = SmtpConfig::from_url("smtp://[::1]:2525", from).unwrap();
        assert_eq!(
            (ipv6.host.as_str(), ipv6.security),
            ("::1", SmtpSecurity::Plain)
        );
        let remote = SmtpConfig::from_url("smtp://u@10.0.0.5:25", from).unwrap();
        assert_eq!(remote.security, SmtpSecurity::Starttls);
        assert_eq!(
            remote
                .credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.expose())),
            Some(("u", ""))
        );
        for bad in [
            "",
            "mail.example.com",
            "http://mail.example.com",
            "smtp://",
            "smtp://h/path",
            "smtp://h?x=1",
        ] {
            assert!(SmtpConfig::from_url(bad, from).is_err(), "{bad:?}");
        }
        let shown = SmtpConfig::from_url("ftp://u:hunter2@h", from)
            .unwrap_err()
            .to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
