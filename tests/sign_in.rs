//! The sign-in pipeline through the public API on every store: a password sign-in with and
//! without a second factor, its factors and assurance carried by sessions, access tokens and
//! refreshes, bounded answers to a challenge (also under 50 concurrent answers), expiry, and
//! the step-up guard.
//!
//! The second factor is a real one built on the public [`SecondFactor`] trait: a six-digit
//! code sent to the user's verified phone, kept as a [`OneTimeSecrets`] code.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use portcullis::assurance::{Assurance, Factor, Factors};
use portcullis::audit::RecordedEvents;
use portcullis::clock::ManualClock;
use portcullis::conformance::Fixture as _;
use portcullis::flows::{PasswordLogin, Registration};
use portcullis::guard;
use portcullis::session::Sessions;
use portcullis::sign_in::{
    Answer, Authenticated, Challenge, Refusal, SecondFactor, SignIn, SignInOutcome,
};
use portcullis::store::{SecretKind, SecretSubject, StoreError, User, UserUpdate};
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::token::{CodeKey, TokenFormat};
use portcullis::{
    AccessTokens, Auth, AuthError, JwtConfig, OneTimeSecrets, PasswordPolicy, Passwords,
    RefreshTokens, SecretRequest, TokenPairs,
};

const PASSWORD: &str = "correct horse battery";

/// A code texted to the user's verified phone: enrolled once the phone is verified.
struct PhoneCode {
    secrets: OneTimeSecrets,
    /// How many answers reached `verify`.
    checked: Arc<AtomicUsize>,
}

impl PhoneCode {
    const KIND: SecretKind = SecretKind::custom("phone_code");

    /// "Sends" a code: what the SMS would carry.
    async fn send(&self, user: &User) -> String {
        let request = SecretRequest::new(Self::KIND, Duration::from_secs(300))
            .subject(SecretSubject::User(user.id))
            .replacing_earlier();
        let issued = self.secrets.issue_code(request).await.unwrap();
        issued.code.into_exposed()
    }
}

#[async_trait]
impl SecondFactor for PhoneCode {
    fn method(&self) -> &'static str {
        "sms"
    }

    fn factor(&self) -> Factor {
        Factor::Otp
    }

    async fn enrolled(&self, user: &User) -> Result<bool, StoreError> {
        Ok(user.verified_phone().is_some())
    }

    async fn verify(&self, user: &User, answer: &Answer<'_>) -> Result<bool, StoreError> {
        self.checked.fetch_add(1, Ordering::SeqCst);
        let subject = SecretSubject::User(user.id);
        match self
            .secrets
            .redeem_code(Self::KIND, &subject, answer.response)
            .await
        {
            Ok(_) => Ok(true),
            Err(portcullis::RedeemError::Store(error)) => Err(error),
            Err(_) => Ok(false),
        }
    }
}

struct Setup {
    auth: Auth,
    events: RecordedEvents,
    clock: Arc<ManualClock>,
    login: PasswordLogin,
    phone: Arc<PhoneCode>,
    sessions: Sessions,
    pairs: TokenPairs,
    ada: User,
}

async fn run<F, Fut>(fixture: Option<common::stores::Fixture>, case: F)
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = fixture else { return };
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let events = RecordedEvents::new();
    let auth = Auth::builder(fixture.stores.clone())
        .shared_clock(clock.clone())
        .events(events.clone())
        .build();
    let phone = Arc::new(PhoneCode {
        secrets: OneTimeSecrets::new(&auth, CodeKey::new(&[7; 32]).unwrap()),
        checked: Arc::new(AtomicUsize::new(0)),
    });
    let pipeline = SignIn::new(&auth)
        // Shared with the test, which also sends the codes.
        .second_factor(phone.clone())
        .challenge_attempts(3);
    let passwords = Passwords::new(PasswordPolicy::default());
    let login = PasswordLogin::new(&auth, &passwords).pipeline(pipeline);
    let ada = login
        .register(Registration::new("ada", PASSWORD))
        .await
        .unwrap();
    let keys = JwtKeys::new(JwtKey::hs256(&[9; 32]).unwrap()).unwrap();
    let pairs = TokenPairs::new(
        AccessTokens::new(&auth, keys, JwtConfig::new("test", "test-api")),
        RefreshTokens::new(
            &auth,
            TokenFormat::new("rt_").unwrap(),
            Duration::from_secs(86_400),
        ),
    );
    let sessions = Sessions::new(&auth, TokenFormat::new("pcs_").unwrap());
    case(Setup {
        auth,
        events,
        clock,
        login,
        phone,
        sessions,
        pairs,
        ada,
    })
    .await;
    fixture.finish().await;
}

common::stores::on_every_store!(
    without_a_second_factor_a_password_signs_in_at_aal1,
    an_enrolled_user_answers_a_challenge_and_reaches_aal2,
    each_wrong_answer_spends_the_challenge_and_the_last_ends_the_sign_in,
    fifty_concurrent_answers_to_one_challenge_are_checked_once,
    a_challenge_and_its_successors_expire_together,
    a_method_the_challenge_does_not_offer_is_refused_unchecked,
    a_user_deactivated_before_answering_is_refused,
);

impl Setup {
    async fn enroll(&mut self) {
        self.ada = self
            .auth
            .update_user(
                self.ada.id,
                UserUpdate::default()
                    .phone(Some("+447700900123".into()))
                    .phone_verified(true),
            )
            .await
            .unwrap()
            .unwrap();
    }

    async fn challenge(&self) -> Challenge {
        match self.login.sign_in("ada", PASSWORD, None).await.unwrap() {
            SignInOutcome::SecondFactorRequired(challenge) => challenge,
            other => panic!("a challenge, not {other:?}"),
        }
    }

    async fn answer(&self, challenge: &Challenge, response: &str) -> SignInOutcome {
        self.login
            .sign_in_pipeline()
            .answer(challenge.token.expose(), "sms", response)
            .await
            .unwrap()
    }
}

/// A code that is not the one sent (same length, another value).
fn wrong(code: &str) -> String {
    let last = code.as_bytes()[code.len() - 1];
    let other = if last == b'9' {
        '0'
    } else {
        (last + 1) as char
    };
    format!("{}{other}", &code[..code.len() - 1])
}

async fn without_a_second_factor_a_password_signs_in_at_aal1(setup: Setup) {
    let SignInOutcome::SignedIn(signed_in) =
        setup.login.sign_in("ada", PASSWORD, None).await.unwrap()
    else {
        panic!("signed in");
    };
    assert_eq!(signed_in.factors(), Factor::Password.into());
    assert_eq!(signed_in.assurance(), Assurance::Aal1);

    // A session records the factor; the step-up guard asks for more.
    let started = setup
        .sessions
        .start(&signed_in, &HeaderMap::new())
        .await
        .unwrap();
    let identity = setup
        .sessions
        .resolve(started.secret.expose())
        .await
        .unwrap();
    assert_eq!(identity.factors(), Factor::Password.into());
    assert_eq!(identity.assurance(), Some(Assurance::Aal1));
    let step_up = guard::assurance(Assurance::Aal2);
    assert!(matches!(
        step_up.check(Some(&identity)),
        Err(AuthError::InsufficientAssurance {
            required: Assurance::Aal2
        })
    ));

    // So does a bearer pair, through a refresh.
    let pair = setup.pairs.issue(&signed_in).await.unwrap();
    let claims = setup
        .pairs
        .access_tokens()
        .verify(pair.access.token.expose())
        .unwrap();
    assert_eq!(claims.amr, Some(vec!["pwd".to_owned()]));
    let next = setup
        .pairs
        .refresh(pair.refresh.secret.expose())
        .await
        .unwrap();
    assert_eq!(next.refresh.record.factors, Factor::Password.into());

    // Wrong passwords are refused as such, and nothing was asked of the second factor.
    assert!(matches!(
        setup.login.sign_in("ada", "wrong", None).await.unwrap(),
        SignInOutcome::Refused(Refusal::InvalidCredentials)
    ));
    assert!(matches!(
        setup.login.sign_in("nobody", PASSWORD, None).await.unwrap(),
        SignInOutcome::Refused(Refusal::InvalidCredentials)
    ));
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 0);
}

async fn an_enrolled_user_answers_a_challenge_and_reaches_aal2(mut setup: Setup) {
    setup.enroll().await;
    let challenge = setup.challenge().await;
    assert_eq!(challenge.methods, ["sms"]);
    assert_eq!(challenge.attempts_left, 3);
    assert!(challenge.token.expose().starts_with("sfc_"));
    setup.clock.advance(Duration::from_secs(20));
    let code = setup.phone.send(&setup.ada).await;

    let SignInOutcome::SignedIn(signed_in) = setup.answer(&challenge, &code).await else {
        panic!("signed in");
    };
    let both: Factors = [Factor::Password, Factor::Otp].into_iter().collect();
    assert_eq!(signed_in.factors(), both);
    assert_eq!(signed_in.assurance(), Assurance::Aal2);
    assert_eq!(
        signed_in.at(),
        setup.auth.now(),
        "the time of the last proof"
    );

    // The access token says so (RFC 8176), and keeps saying so after a refresh.
    let pair = setup.pairs.issue(&signed_in).await.unwrap();
    let access = setup.pairs.access_tokens();
    let claims = access.verify(pair.access.token.expose()).unwrap();
    assert_eq!(
        claims.amr,
        Some(vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()])
    );
    assert_eq!(claims.auth_time, Some(setup.auth.now().unix_timestamp()));
    setup.clock.advance(Duration::from_secs(600));
    let next = setup
        .pairs
        .refresh(pair.refresh.secret.expose())
        .await
        .unwrap();
    let identity = portcullis::source::TokenResolver::resolve(access, next.access.token.expose())
        .await
        .unwrap();
    assert_eq!(identity.factors(), both);
    assert_eq!(identity.assurance(), Some(Assurance::Aal2));
    assert!(
        guard::assurance(Assurance::Aal2)
            .check(Some(&identity))
            .is_ok()
    );

    // The challenge was spent by its answer.
    assert!(matches!(
        setup.answer(&challenge, &code).await,
        SignInOutcome::Refused(Refusal::ChallengeInvalid)
    ));
}

async fn each_wrong_answer_spends_the_challenge_and_the_last_ends_the_sign_in(mut setup: Setup) {
    setup.enroll().await;
    let first = setup.challenge().await;
    let code = setup.phone.send(&setup.ada).await;
    let bad = wrong(&code);

    let SignInOutcome::Refused(Refusal::WrongAnswer {
        retry: Some(second),
    }) = setup.answer(&first, &bad).await
    else {
        panic!("a retry");
    };
    assert_eq!(second.attempts_left, 2);
    assert_eq!(second.expires_at, first.expires_at);
    assert_ne!(second.token.expose(), first.token.expose());
    // The answered challenge is spent, even for the right code.
    assert!(matches!(
        setup.answer(&first, &code).await,
        SignInOutcome::Refused(Refusal::ChallengeInvalid)
    ));

    let SignInOutcome::Refused(Refusal::WrongAnswer { retry: Some(third) }) =
        setup.answer(&second, &bad).await
    else {
        panic!("a retry");
    };
    assert_eq!(third.attempts_left, 1);
    assert!(matches!(
        setup.answer(&third, &bad).await,
        SignInOutcome::Refused(Refusal::WrongAnswer { retry: None })
    ));
    // Three answers, three checks; the right code reaches nothing now.
    assert!(matches!(
        setup.answer(&third, &code).await,
        SignInOutcome::Refused(Refusal::ChallengeInvalid)
    ));
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 3);
    let failures = setup
        .events
        .events()
        .iter()
        .filter(|event| event.kind.name() == "second_factor_failed")
        .count();
    assert_eq!(failures, 3);
}

async fn fifty_concurrent_answers_to_one_challenge_are_checked_once(mut setup: Setup) {
    setup.enroll().await;
    let challenge = Arc::new(setup.challenge().await);
    let code = setup.phone.send(&setup.ada).await;
    let pipeline = setup.login.sign_in_pipeline().clone();
    let mut answers = tokio::task::JoinSet::new();
    for n in 0..50 {
        let pipeline = pipeline.clone();
        let challenge = challenge.clone();
        // One of them has the right code; which one wins the challenge is up to the race.
        let response = if n == 25 { code.clone() } else { wrong(&code) };
        answers.spawn(async move {
            pipeline
                .answer(challenge.token.expose(), "sms", &response)
                .await
                .unwrap()
        });
    }
    let mut invalid = 0;
    for answer in answers.join_all().await {
        match answer {
            SignInOutcome::Refused(Refusal::ChallengeInvalid) => invalid += 1,
            SignInOutcome::SignedIn(_) | SignInOutcome::Refused(Refusal::WrongAnswer { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(invalid, 49, "one answer took the challenge");
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 1);
}

async fn a_challenge_and_its_successors_expire_together(mut setup: Setup) {
    setup.enroll().await;
    let first = setup.challenge().await;
    let code = setup.phone.send(&setup.ada).await;
    setup.clock.advance(Duration::from_secs(200));
    let SignInOutcome::Refused(Refusal::WrongAnswer {
        retry: Some(second),
    }) = setup.answer(&first, &wrong(&code)).await
    else {
        panic!("a retry");
    };
    setup.clock.advance(Duration::from_secs(101));
    assert!(matches!(
        setup.answer(&second, &code).await,
        SignInOutcome::Refused(Refusal::ChallengeInvalid)
    ));
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 1);
}

async fn a_method_the_challenge_does_not_offer_is_refused_unchecked(mut setup: Setup) {
    setup.enroll().await;
    let first = setup.challenge().await;
    let code = setup.phone.send(&setup.ada).await;
    let pipeline = setup.login.sign_in_pipeline();
    let SignInOutcome::Refused(Refusal::MethodNotOffered { retry }) = pipeline
        .answer(first.token.expose(), "totp", &code)
        .await
        .unwrap()
    else {
        panic!("not offered");
    };
    assert_eq!(retry.attempts_left, 3, "no attempt spent");
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 0);
    assert!(matches!(
        setup.answer(&retry, &code).await,
        SignInOutcome::SignedIn(_)
    ));
    // A token that is no challenge at all.
    assert!(matches!(
        pipeline.answer("sfc_nonsense", "sms", &code).await.unwrap(),
        SignInOutcome::Refused(Refusal::ChallengeInvalid)
    ));
}

async fn a_user_deactivated_before_answering_is_refused(mut setup: Setup) {
    setup.enroll().await;
    let challenge = setup.challenge().await;
    let code = setup.phone.send(&setup.ada).await;
    setup.auth.suspend(setup.ada.id).await.unwrap();
    assert!(matches!(
        setup.answer(&challenge, &code).await,
        SignInOutcome::Refused(Refusal::Inactive)
    ));
    assert_eq!(setup.phone.checked.load(Ordering::SeqCst), 0);
    // A first factor of the suspended account is refused before any challenge.
    let signed_in = Authenticated::new(setup.ada.clone(), Factor::Password, setup.auth.now());
    let mut suspended = signed_in.into_user();
    suspended.is_active = false;
    let proof = Authenticated::new(suspended, Factor::Password, setup.auth.now());
    assert!(matches!(
        setup.login.sign_in_pipeline().begin(proof).await.unwrap(),
        SignInOutcome::Refused(Refusal::Inactive)
    ));
}
