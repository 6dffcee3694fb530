//! Account mail through a real SMTP server: Python's aiosmtpd, started by `scripts/test.sh`,
//! delivering into a maildir that the tests read back.

mod common;

use common::mail::{delivered, recipient, sink_mailer, unquote};

use std::time::{Duration, Instant};

use portcullis::mail::{
    MailBranding, MailError, Mailer, Outbox, SmtpConfig, SmtpMailer, SmtpSecurity,
};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn branding() -> MailBranding {
    MailBranding::new("Portcullis Test", "https://app.example.com").unwrap()
}

#[tokio::test]
async fn a_sign_in_code_reaches_a_real_smtp_server_as_text_and_html() {
    let Some((address, maildir)) = common::smtp_sink() else {
        return;
    };
    let to = recipient("ada");
    let link = branding().link("/auth/magic", &[("code", "493817"), ("email", &to)]);
    let email = branding().sign_in_code(&to, "493817", &link, FIVE_MINUTES);
    sink_mailer(&address).send(&email).await.unwrap();

    let raw = delivered(&maildir, &to).await;
    let decoded = unquote(&raw);
    assert!(
        raw.contains("From: \"Portcullis Test\" <no-reply@example.com>")
            || raw.contains("From: Portcullis Test <no-reply@example.com>"),
        "{raw}"
    );
    assert!(
        raw.contains("Subject: Your Portcullis Test sign-in code: 493817"),
        "{raw}"
    );
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(
        raw.contains("text/plain") && raw.contains("text/html"),
        "{raw}"
    );
    // The text part carries the link as it is; the HTML part escapes it in the attribute.
    assert!(decoded.contains(&format!("Sign in: {link}")), "{decoded}");
    let escaped = link.replace('&', "&amp;");
    assert!(
        decoded.contains(&format!("<a href=\"{escaped}\">Sign in</a>")),
        "{decoded}"
    );
    assert!(decoded.contains("within 5 minutes"));
    assert!(link.starts_with("https://app.example.com/auth/magic?code=493817&email="));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_transient_error_within_the_timeout() {
    // Accepts connections and never says a word: a hung relay.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let config = SmtpConfig::new("127.0.0.1", port, SmtpSecurity::Plain, "a@example.com")
        .timeout(Duration::from_millis(500));
    let mailer = SmtpMailer::new(config).unwrap();
    let email = branding().sign_in_code(
        "ada@example.com",
        "1",
        "https://app.example.com/",
        FIVE_MINUTES,
    );
    let started = Instant::now();
    let error = mailer.send(&email).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // And a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = SmtpConfig::new("127.0.0.1", port, SmtpSecurity::Plain, "a@example.com");
    let error = SmtpMailer::new(config)
        .unwrap()
        .send(&email)
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn addresses_that_are_not_mailboxes_are_refused_for_good() {
    let Some((address, _)) = common::smtp_sink() else {
        return;
    };
    let mailer = sink_mailer(&address);
    for to in [
        "not an address",
        "ada@example.com\r\nBcc: eve@example.com",
        "",
    ] {
        let email = branding().invite(to, "https://app.example.com/i", FIVE_MINUTES);
        let error = mailer.send(&email).await.unwrap_err();
        assert!(
            matches!(error, MailError::InvalidAddress(_)),
            "{to:?}: {error:?}"
        );
        assert!(!error.is_transient());
        assert!(
            !error.to_string().contains("ada@"),
            "the local part stays out: {error}"
        );
    }
    let config = SmtpConfig::new("127.0.0.1", 25, SmtpSecurity::Plain, "no address");
    assert!(matches!(
        SmtpMailer::new(config),
        Err(MailError::InvalidAddress(_))
    ));
}

#[tokio::test]
async fn the_outbox_answers_at_once_and_delivers_in_the_background() {
    let Some((address, maildir)) = common::smtp_sink() else {
        return;
    };
    // In front of a relay that never answers, sending still returns at once, and a full
    // queue drops the message instead of waiting.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let stuck = Outbox::spawn(
        SmtpMailer::new(SmtpConfig::new(
            "127.0.0.1",
            port,
            SmtpSecurity::Plain,
            "a@example.com",
        ))
        .unwrap(),
        1,
    );
    let email =
        branding().email_verification("ada@example.com", "https://app.example.com/v", FIVE_MINUTES);
    let started = Instant::now();
    let answers: Vec<_> = (0..5).map(|_| stuck.send(email.clone())).collect();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(answers[0].is_ok());
    assert!(
        answers.iter().any(Result::is_err),
        "a queue of one overflows"
    );

    // In front of the real sink, a queued message arrives.
    let outbox = Outbox::spawn(sink_mailer(&address), 16);
    let to = recipient("bob");
    let reset = branding().password_reset(&to, "https://app.example.com/reset?t=x", FIVE_MINUTES);
    outbox.send(reset).unwrap();
    let raw = delivered(&maildir, &to).await;
    assert!(
        raw.contains("Subject: Reset your Portcullis Test password"),
        "{raw}"
    );
}
