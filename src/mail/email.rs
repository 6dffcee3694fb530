//! [`Email`]: one message, as a [`Mailer`](super::Mailer) receives it.

use std::fmt;

/// A message to one recipient, with a plain-text and an HTML body.
///
/// Bodies of account mail hold secrets (a sign-in code, a reset link), so `Debug` shows
/// neither them nor the recipient's local part.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// What the message is (`"sign_in_code"`, `"password_reset"`...), for logs and metrics.
    pub kind: &'static str,
}

impl Email {
    /// A message of `kind` to `to`.
    pub fn new(
        kind: &'static str,
        to: impl Into<String>,
        subject: impl Into<String>,
        text: impl Into<String>,
        html: impl Into<String>,
    ) -> Self {
        Self {
            to: to.into(),
            subject: subject.into(),
            text: text.into(),
            html: html.into(),
            kind,
        }
    }

    /// The recipient's domain, all that logs show of the address.
    pub fn recipient_domain(&self) -> &str {
        self.to.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("kind", &self.kind)
            .field("to", &format_args!("…@{}", self.recipient_domain()))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_neither_the_body_nor_the_local_part() {
        let email = Email::new(
            "sign_in_code",
            "ada@example.com",
            "Sign in",
            "code 123456",
            "<b>123456</b>",
        );
        let shown = format!("{email:?}");
        assert!(
            !shown.contains("123456") && !shown.contains("ada"),
            "{shown}"
        );
        assert!(shown.contains("example.com"));
    }
}
