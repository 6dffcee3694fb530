//! [`MailBranding`]: the account messages, written with the application's name and links
//! built from its configured public URL.

use std::time::Duration;

use http::Uri;

use super::Email;

/// The application's name and public base URL, and the messages the account flows send.
///
/// Every link starts with the configured base URL. Building one from the request's `Host`
/// header would let anyone who asks for a reset link for your address choose the host it
/// points to, and collect the token when you click it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailBranding {
    app_name: String,
    base_url: String,
    /// Subjects that replace the default of their kind.
    subjects: Vec<(MessageKind, String)>,
}

/// The account messages [`MailBranding`] writes; [`as_str`](Self::as_str) is the
/// [`Email::kind`] of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// [`MailBranding::sign_in_code`].
    SignInCode,
    /// [`MailBranding::password_reset`].
    PasswordReset,
    /// [`MailBranding::email_verification`].
    EmailVerification,
    /// [`MailBranding::invite`].
    Invite,
}

impl MessageKind {
    /// The kind's name: `sign_in_code`, `password_reset`, `email_verification`, `invite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInCode => "sign_in_code",
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::Invite => "invite",
        }
    }
}

/// A subject that cannot head a message: see [`MailBranding::subject`].
#[derive(Debug, thiserror::Error)]
#[error("invalid mail subject: {0}")]
pub struct InvalidSubject(&'static str);

/// A base URL that cannot carry account links: see [`MailBranding::new`].
#[derive(Debug, thiserror::Error)]
#[error("invalid public base URL {url:?}: {reason}")]
pub struct InvalidBaseUrl {
    url: String,
    reason: &'static str,
}

impl MailBranding {
    /// `app_name` names the application in subjects and bodies; `base_url` is where users
    /// reach it: `https://host[:port][/path]`, or `http://` for `localhost` and loopback
    /// addresses only, without user information, query or fragment.
    pub fn new(app_name: impl Into<String>, base_url: &str) -> Result<Self, InvalidBaseUrl> {
        Self::checked(app_name.into(), base_url, false)
    }

    /// As [`new`](Self::new), but also accepts `http://` to any host: for a server that
    /// users reach only over plain HTTP on a network of their own (Khoj's `KHOJ_NO_HTTPS`).
    /// Sign-in codes and reset links then cross that network in the clear, where anyone on it
    /// can read them: say so to whoever configures it.
    pub fn plain_http(app_name: impl Into<String>, base_url: &str) -> Result<Self, InvalidBaseUrl> {
        Self::checked(app_name.into(), base_url, true)
    }

    fn checked(app_name: String, base_url: &str, plain_http: bool) -> Result<Self, InvalidBaseUrl> {
        let invalid = |reason| InvalidBaseUrl {
            url: base_url.to_owned(),
            reason,
        };
        // `Uri` drops a fragment silently; a link must not carry one either way.
        if base_url.contains('#') {
            return Err(invalid("a fragment is not allowed"));
        }
        let uri: Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not allowed"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        let loopback = matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]");
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback || plain_http => {}
            Some("http") => return Err(invalid("http is only for localhost: use https")),
            _ => return Err(invalid("the scheme must be https")),
        }
        if app_name.chars().any(char::is_control) {
            return Err(invalid("the application name holds a control character"));
        }
        Ok(Self {
            app_name,
            base_url: base_url.trim_end_matches('/').to_owned(),
            subjects: Vec::new(),
        })
    }

    /// Heads every message of `kind` with `subject` instead of the default, to match the
    /// subject an application's users already know ("Your login code to Khoj").
    ///
    /// Refuses an empty subject, one over 200 characters, and control characters (a line
    /// break in a subject would start a header of the attacker's choosing).
    ///
    /// ```
    /// use portcullis::mail::{MailBranding, MessageKind};
    /// use std::time::Duration;
    ///
    /// let branding = MailBranding::new("Khoj", "https://app.khoj.dev")?
    ///     .subject(MessageKind::SignInCode, "Your login code to Khoj")?;
    /// let link = branding.link("/auth/magic", &[("code", "123456")]);
    /// let email = branding.sign_in_code("ada@example.com", "123456", &link, Duration::from_secs(300));
    /// assert_eq!(email.subject, "Your login code to Khoj");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subject(
        mut self,
        kind: MessageKind,
        subject: impl Into<String>,
    ) -> Result<Self, InvalidSubject> {
        let subject = subject.into();
        if subject.trim().is_empty() {
            return Err(InvalidSubject("it is empty"));
        }
        if subject.chars().count() > 200 {
            return Err(InvalidSubject("it is longer than 200 characters"));
        }
        if subject.chars().any(char::is_control) {
            return Err(InvalidSubject("it holds a control character"));
        }
        self.subjects.retain(|(other, _)| *other != kind);
        self.subjects.push((kind, subject));
        Ok(self)
    }

    /// The application's name.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// The public base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `path` (starting with `/`) under the base URL, with `query` form-encoded.
    pub fn link(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut link = format!("{}/{}", self.base_url, path.trim_start_matches('/'));
        if !query.is_empty() {
            link.push('?');
            link.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish(),
            );
        }
        link
    }

    /// A sign-in code and the link that carries it (a "magic link").
    pub fn sign_in_code(&self, to: &str, code: &str, link: &str, valid_for: Duration) -> Email {
        self.message(
            MessageKind::SignInCode,
            to,
            &format!("Your {} sign-in code: {code}", self.app_name),
            &format!("Your sign-in code for {} is {code}.", self.app_name),
            ("Sign in", link),
            valid_for,
        )
    }

    /// A link to choose a new password.
    pub fn password_reset(&self, to: &str, link: &str, valid_for: Duration) -> Email {
        self.message(
            MessageKind::PasswordReset,
            to,
            &format!("Reset your {} password", self.app_name),
            &format!(
                "Someone asked to reset the password of your {} account.",
                self.app_name
            ),
            ("Choose a new password", link),
            valid_for,
        )
    }

    /// A link that proves the address is the recipient's.
    pub fn email_verification(&self, to: &str, link: &str, valid_for: Duration) -> Email {
        self.message(
            MessageKind::EmailVerification,
            to,
            &format!("Confirm your email address for {}", self.app_name),
            &format!(
                "Confirm that this address belongs to your {} account.",
                self.app_name
            ),
            ("Confirm the address", link),
            valid_for,
        )
    }

    /// An invitation to create an account.
    pub fn invite(&self, to: &str, link: &str, valid_for: Duration) -> Email {
        self.message(
            MessageKind::Invite,
            to,
            &format!("You are invited to {}", self.app_name),
            &format!("You are invited to create an account on {}.", self.app_name),
            ("Accept the invitation", link),
            valid_for,
        )
    }

    fn message(
        &self,
        kind: MessageKind,
        to: &str,
        default_subject: &str,
        lead: &str,
        (action, link): (&str, &str),
        valid_for: Duration,
    ) -> Email {
        let subject = self
            .subjects
            .iter()
            .find(|(other, _)| *other == kind)
            .map_or(default_subject, |(_, subject)| subject.as_str());
        let expiry = format!("It works once, within {}.", human(valid_for));
        let ignore = "If you did not ask for this, ignore this message.";
        let mut text = format!("{lead}\n\n{action}: {link}\n\n");
        let mut html = format!(
            "<!doctype html>\n<html><body>\n<p>{}</p>\n<p><a href=\"{}\">{}</a></p>\n",
            escape(lead),
            escape(link),
            escape(action)
        );
        text.push_str(&format!("{expiry}\n"));
        html.push_str(&format!("<p>{}</p>\n", escape(&expiry)));
        text.push_str(&format!("{ignore}\n\n-- \n{}\n", self.app_name));
        html.push_str(&format!(
            "<p>{}</p>\n<p>{}</p>\n</body></html>\n",
            escape(ignore),
            escape(&self.app_name)
        ));
        Email::new(kind.as_str(), to, subject, text, html)
    }
}

/// `d` in words: "5 minutes", "1 hour", "2 days".
fn human(d: Duration) -> String {
    let (n, unit) = match d.as_secs() {
        s if s % 86_400 == 0 && s >= 86_400 => (s / 86_400, "day"),
        s if s % 3600 == 0 && s >= 3600 => (s / 3600, "hour"),
        s => (s.div_ceil(60).max(1), "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_that_could_misdirect_links_are_refused() {
        for bad in [
            "http://app.example.com",
            "ftp://app.example.com",
            "https://user@evil.example",
            "https://app.example.com/?next=//evil",
            "app.example.com",
            "/relative",
            "https://app.example.com/#frag",
        ] {
            assert!(MailBranding::new("App", bad).is_err(), "{bad}");
        }
        for good in [
            "https://app.example.com",
            "https://app.example.com:8443/khoj/",
            "http://localhost:42110",
            "http://127.0.0.1:8000",
        ] {
            assert!(MailBranding::new("App", good).is_ok(), "{good}");
        }
        assert!(MailBranding::new("App\r\nBcc: x", "https://a.example").is_err());
        // Plain HTTP to another host only when asked for; everything else is still refused.
        assert!(MailBranding::plain_http("App", "http://192.168.1.10:42110").is_ok());
        assert!(MailBranding::plain_http("App", "http://user@192.168.1.10").is_err());
        assert!(MailBranding::plain_http("App", "ftp://192.168.1.10").is_err());
    }

    #[test]
    fn links_start_with_the_base_url_and_encode_their_query() {
        let branding = MailBranding::new("App", "https://app.example.com/base/").unwrap();
        assert_eq!(
            branding.link(
                "/auth/magic",
                &[("code", "12 34"), ("email", "a+b@x.example&y=1")]
            ),
            "https://app.example.com/base/auth/magic?code=12+34&email=a%2Bb%40x.example%26y%3D1"
        );
    }

    #[test]
    fn html_bodies_escape_what_they_show() {
        let branding = MailBranding::new("<App & Co>", "https://app.example.com").unwrap();
        let link = "https://app.example.com/r?a=1&b=\"2\"";
        let email = branding.password_reset("ada@example.com", link, Duration::from_secs(3600));
        assert!(
            email.html.contains("&lt;App &amp; Co&gt;"),
            "{}",
            email.html
        );
        assert!(
            email
                .html
                .contains("href=\"https://app.example.com/r?a=1&amp;b=&quot;2&quot;\"")
        );
        assert!(!email.html.contains("<App"));
        assert!(email.text.contains(link) && email.text.contains("within 1 hour"));
        assert_eq!(email.kind, "password_reset");
    }

    #[test]
    fn a_subject_replaces_only_its_kind_and_cannot_inject_headers() {
        let branding = MailBranding::new("Khoj", "https://app.khoj.dev")
            .unwrap()
            .subject(MessageKind::SignInCode, "first")
            .unwrap()
            .subject(MessageKind::SignInCode, "Your login code to Khoj")
            .unwrap();
        let lifetime = Duration::from_secs(300);
        let code = branding.sign_in_code(
            "a@example.com",
            "123456",
            "https://app.khoj.dev/x",
            lifetime,
        );
        assert_eq!(code.subject, "Your login code to Khoj");
        assert_eq!(code.kind, "sign_in_code");
        let reset = branding.password_reset("a@example.com", "https://app.khoj.dev/r", lifetime);
        assert_eq!(reset.subject, "Reset your Khoj password");
        for bad in ["", "  ", "Hi\r\nBcc: eve@example.com", &"x".repeat(201)] {
            let refused = branding.clone().subject(MessageKind::Invite, bad);
            assert!(refused.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(human(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human(Duration::from_secs(61)), "2 minutes");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(human(Duration::ZERO), "1 minute");
    }
}
