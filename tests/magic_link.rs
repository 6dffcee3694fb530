//! Email sign-in (`flows::MagicLinks`) on a real SQLite file, with the codes read back from a
//! real SMTP server (aiosmtpd, started by `scripts/test.sh`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mail::{delivered, recipient, sink_mailer, unquote};
use portcullis::assurance::Factor;
use portcullis::clock::ManualClock;
use portcullis::flows::{Allowance, MagicLinkError, MagicLinks};
use portcullis::mail::{LogMailer, MailBranding, Outbox};
use portcullis::sign_in::{Refusal, SignInOutcome};
use portcullis::store::{NewUser, SqliteStore};
use portcullis::token::CodeKey;
use portcullis::{Auth, OneTimeSecrets};

struct Fixture {
    auth: Auth,
    links: MagicLinks,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn fixture(outbox: Outbox) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("magic.db").display());
    let clock = Arc::new(ManualClock::starting_now());
    let auth = Auth::builder(SqliteStore::connect(&url).await.unwrap())
        .shared_clock(clock.clone())
        .build();
    let secrets = OneTimeSecrets::new(&auth, CodeKey::new(&[9; 32]).unwrap());
    // The base URL is the configured one: nothing here has a Host header to be fooled by.
    let branding = MailBranding::new("Khoj", "https://app.khoj.example").unwrap();
    let links = MagicLinks::new(&auth, &secrets, outbox, branding).create_users(true);
    Fixture {
        auth,
        links,
        clock,
        _dir: dir,
    }
}

/// A fixture whose mail goes to the SMTP sink, and the sink's maildir; `None` (skipped) when
/// no sink is running outside CI.
async fn mailing_fixture() -> Option<(Fixture, std::path::PathBuf)> {
    let (address, maildir) = common::smtp_sink()?;
    Some((
        fixture(Outbox::spawn(sink_mailer(&address), 10)).await,
        maildir,
    ))
}

/// The code and the link of the sign-in mail to `to`.
async fn mailed(maildir: &std::path::Path, to: &str) -> (String, String) {
    let raw = unquote(&delivered(maildir, to).await);
    let code = raw
        .split("sign-in code for Khoj is ")
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .unwrap_or_else(|| panic!("no code in {raw}"))
        .to_owned();
    let start = raw
        .find("https://app.khoj.example/auth/magic?")
        .expect("a link");
    let link = raw[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    (code, link)
}

/// Deletes the mail delivered to `to`, so that the next one can be told apart.
fn forget(maildir: &std::path::Path, to: &str) {
    for entry in std::fs::read_dir(maildir.join("new")).unwrap().flatten() {
        let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if raw.contains(&format!("To: {to}")) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
}

fn signed_in(outcome: &SignInOutcome) -> &portcullis::store::User {
    match outcome {
        SignInOutcome::SignedIn(signed_in) => signed_in.user(),
        other => panic!("not signed in: {other:?}"),
    }
}

#[tokio::test]
async fn the_mailed_code_and_its_link_sign_in_once_and_create_a_verified_account() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let to = recipient("ada");
    f.links.request(&to, Some("/settings")).await.unwrap();
    let (code, link) = mailed(&maildir, &to).await;
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    let query: Vec<(String, String)> =
        form_urlencoded::parse(link.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        query,
        [
            ("code".to_owned(), code.clone()),
            ("email".to_owned(), to.clone()),
            ("next".to_owned(), "/settings".to_owned()),
        ],
        "the link carries the code, the address and next, under the configured base URL"
    );

    let outcome = f.links.verify(&to, &code).await.unwrap();
    let user = signed_in(&outcome);
    assert_eq!(user.email.as_deref(), Some(to.as_str()));
    assert!(user.email_verified, "the address was just proved");
    let SignInOutcome::SignedIn(proof) = &outcome else {
        unreachable!()
    };
    assert!(proof.factors().contains(Factor::Email));
    assert!(
        matches!(
            f.links.verify(&to, &code).await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ),
        "a used code is just not the code"
    );

    // A second link signs the same account in.
    forget(&maildir, &to);
    f.links.request(&to.to_uppercase(), None).await.unwrap();
    let (second, _) = mailed(&maildir, &to).await;
    let again = f.links.verify(&to, &second).await.unwrap();
    assert_eq!(signed_in(&again).id, user.id);
}

#[tokio::test]
async fn five_wrong_guesses_kill_the_code_and_a_new_request_kills_the_old_one() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let to = recipient("grace");
    f.links.request(&to, None).await.unwrap();
    let (code, _) = mailed(&maildir, &to).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        assert!(matches!(
            f.links.verify(&to, wrong).await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ));
    }
    assert!(
        matches!(
            f.links.verify(&to, &code).await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ),
        "after five wrong guesses the right code is dead too"
    );
}

#[tokio::test]
async fn an_unused_code_past_its_lifetime_is_reported_expired() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let to = recipient("expiry");
    f.links.request(&to, None).await.unwrap();
    let (code, _) = mailed(&maildir, &to).await;
    f.clock.advance(Duration::from_secs(299));
    f.clock.advance(Duration::from_secs(1));
    assert!(
        matches!(
            f.links.verify(&to, &code).await.unwrap(),
            SignInOutcome::Refused(Refusal::ChallengeInvalid)
        ),
        "five minutes on, the code has expired: request a new one"
    );
    forget(&maildir, &to);
    f.links.request(&to, None).await.unwrap();
    let (fresh, _) = mailed(&maildir, &to).await;
    assert!(matches!(
        f.links.verify(&to, &fresh).await.unwrap(),
        SignInOutcome::SignedIn(_)
    ));
}

#[tokio::test]
async fn a_new_request_makes_the_older_code_worthless() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let first_to = recipient("linus");
    f.links.request(&first_to, None).await.unwrap();
    let (first, _) = mailed(&maildir, &first_to).await;
    forget(&maildir, &first_to);
    f.links.request(&first_to, None).await.unwrap();
    let (second, _) = mailed(&maildir, &first_to).await;
    if first != second {
        assert!(matches!(
            f.links.verify(&first_to, &first).await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ));
    }
    signed_in(&f.links.verify(&first_to, &second).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_verifications_of_one_code_sign_in_once() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let to = recipient("barbara");
    f.links.request(&to, None).await.unwrap();
    let (code, _) = mailed(&maildir, &to).await;
    let links = Arc::new(f.links.clone());
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (links, to, code) = (links.clone(), to.clone(), code.clone());
            tokio::spawn(async move { links.verify(&to, &code).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            SignInOutcome::SignedIn(_) => winners += 1,
            SignInOutcome::Refused(Refusal::InvalidCredentials | Refusal::Throttled { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(f.auth.users().count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn no_mail_goes_to_an_address_without_an_account_unless_accounts_are_created() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let links = f.links.clone().create_users(false);
    let stranger = recipient("stranger");
    let member = recipient("member");
    f.auth
        .users()
        .create_user(
            NewUser::new("member")
                .email(member.as_str())
                .email_verified(true),
            f.auth.now(),
        )
        .await
        .unwrap();
    links.request(&stranger, None).await.unwrap();
    links.request(&member, None).await.unwrap();
    let (code, _) = mailed(&maildir, &member).await;
    // The outbox delivers in order: the stranger's mail would have arrived first.
    let stranger_mail = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .flatten()
        .any(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap_or_default()
                .contains(&format!("To: {stranger}"))
        });
    assert!(!stranger_mail, "no account, no mail");
    assert_eq!(
        signed_in(&links.verify(&member, &code).await.unwrap()).username,
        "member"
    );
    for guess in ["000000", "123456"] {
        assert!(matches!(
            links.verify(&stranger, guess).await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ));
    }
    assert_eq!(f.auth.users().count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn requests_and_verifications_are_limited_per_address() {
    let f = fixture(Outbox::spawn(LogMailer::new(), 10)).await;
    let day = Duration::from_secs(86_400);
    let links = f
        .links
        .clone()
        .request_limit(Allowance::new(2, day))
        .verification_limit(Allowance::new(2, day));
    links.request("ada@example.com", None).await.unwrap();
    links.request("ADA@example.com ", None).await.unwrap();
    assert!(matches!(
        links.request("ada@example.com", None).await,
        Err(MagicLinkError::TooManyRequests { retry_after }) if retry_after <= day
    ));
    links.request("bob@example.com", None).await.unwrap();

    for _ in 0..2 {
        assert!(matches!(
            links.verify("ada@example.com", "000000").await.unwrap(),
            SignInOutcome::Refused(Refusal::InvalidCredentials)
        ));
    }
    assert!(matches!(
        links.verify("ada@example.com", "000000").await.unwrap(),
        SignInOutcome::Refused(Refusal::Throttled { .. })
    ));
}

#[tokio::test]
async fn an_address_that_is_not_one_is_refused() {
    let f = fixture(Outbox::spawn(LogMailer::new(), 10)).await;
    for bad in [
        "",
        "ada",
        "ada@localhost",
        "ada@example.com\r\nBcc: eve@example.com",
    ] {
        assert!(
            matches!(
                f.links.request(bad, None).await,
                Err(MagicLinkError::InvalidEmail)
            ),
            "{bad:?}"
        );
    }
}

/// OWASP account pre-hijacking: someone registers another's address with a password of
/// their own; the mailbox's owner signing in by email takes the account, and the password
/// set by whoever never proved the address stops working.
#[tokio::test]
async fn the_mailbox_owner_takes_over_an_account_whose_address_was_never_verified() {
    let Some((f, maildir)) = mailing_fixture().await else {
        return;
    };
    let to = recipient("victim");
    let squatted = f
        .auth
        .users()
        .create_user(
            NewUser::new("squatter")
                .email(to.as_str())
                .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
            f.auth.now(),
        )
        .await
        .unwrap();
    f.links.request(&to, None).await.unwrap();
    let (code, _) = mailed(&maildir, &to).await;
    let outcome = f.links.verify(&to, &code).await.unwrap();
    let user = signed_in(&outcome);
    assert_eq!(user.id, squatted.id);
    assert!(user.email_verified);
    assert_eq!(user.password_hash, None, "the squatter's password is gone");
}
