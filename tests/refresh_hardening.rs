//! Refresh-token families under abuse, on a real SQLite file with a real Redis bus: an old
//! token presented again and again, and a family kept alive by rotating forever (hardening
//! items 11 and 12). Each test is named after the defect it pins down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use portcullis::audit::RecordedEvents;
use portcullis::bus::RedisBus;
use portcullis::clock::ManualClock;
use portcullis::store::{NewUser, SqliteStore, User};
use portcullis::token::TokenFormat;
use portcullis::{Auth, AuthError, InvalidToken, RefreshTokens};

const DAY: Duration = Duration::from_secs(86_400);

struct Fixture {
    auth: Auth,
    events: RecordedEvents,
    clock: Arc<ManualClock>,
    user: User,
    _dir: tempfile::TempDir,
}

async fn fixture(bus: Option<RedisBus>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .unwrap();
    let events = RecordedEvents::new();
    let clock = Arc::new(ManualClock::starting_now());
    let mut builder = Auth::builder(store)
        .events(events.clone())
        .shared_clock(clock.clone());
    if let Some(bus) = bus {
        builder = builder.invalidation_bus(bus);
    }
    let auth = builder.build();
    let user = auth
        .users()
        .create_user(NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    Fixture {
        auth,
        events,
        clock,
        user,
        _dir: dir,
    }
}

fn count(events: &RecordedEvents, kind: &str) -> usize {
    events
        .events()
        .iter()
        .filter(|event| event.kind.name() == kind)
        .count()
}

/// Hardening item 11: every re-presentation of a rotated token re-ran the family revoke, a bus
/// broadcast and a warn-level audit event, long after the family was dead: free writes, bus
/// traffic and log flooding for anyone holding one old token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presenting_a_rotated_token_again_acts_once_per_family() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let channel = format!("{}reuse", common::redis_prefix());
    let listener = redis::Client::open(url.as_str()).unwrap();
    let mut pubsub = listener.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let f = fixture(Some(RedisBus::open(&url).unwrap().channel(&channel))).await;
    let refresh = RefreshTokens::new(&f.auth, TokenFormat::new("rt_").unwrap(), 30 * DAY);
    let first = refresh
        .issue(&common::password_sign_in(&f.auth, &f.user))
        .await
        .unwrap();
    let second = refresh.rotate(first.secret.expose()).await.unwrap();
    for _ in 0..50 {
        let refused = refresh.rotate(first.secret.expose()).await.unwrap_err();
        assert!(matches!(refused, AuthError::InvalidToken(_)), "{refused:?}");
    }
    assert!(
        refresh.rotate(second.issued.secret.expose()).await.is_err(),
        "family revoked"
    );
    assert_eq!(
        count(&f.events, "refresh_token_reused"),
        1,
        "one audit event per family"
    );
    // Count the invalidations that reached the bus in the next moment: one, not fifty. The
    // instance's heartbeats (`<origin> h <n>`, one a second) share the channel and do not count.
    let mut messages = pubsub.on_message();
    let mut published = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), messages.next()).await
    {
        let text: String = message.get_payload().unwrap();
        if text.split(' ').nth(1) != Some("h") {
            published += 1;
        }
    }
    assert_eq!(published, 1, "invalidations for one reused family");
}

/// Hardening item 12: each rotation gave the family the full lifetime again, so rotating once
/// a month kept one sign-in alive forever. A family now ends at an absolute lifetime (90 days
/// by default) after its sign-in, whatever its rotations.
#[tokio::test]
async fn a_refresh_family_ends_at_its_absolute_lifetime_however_often_it_rotates() {
    let f = fixture(None).await;
    let refresh = RefreshTokens::new(&f.auth, TokenFormat::new("rt_").unwrap(), 30 * DAY);
    let signed_in = f.auth.now();
    let mut current = refresh
        .issue(&common::password_sign_in(&f.auth, &f.user))
        .await
        .unwrap()
        .secret;
    let mut last_expiry = None;
    for _ in 0..3 {
        f.clock.advance(29 * DAY);
        let rotated = refresh.rotate(current.expose()).await.unwrap();
        assert!(rotated.issued.expires_at <= signed_in + 90 * DAY);
        last_expiry = Some(rotated.issued.expires_at);
        current = rotated.issued.secret;
    }
    assert_eq!(
        last_expiry,
        Some(signed_in + 90 * DAY),
        "capped at the family's end"
    );
    f.clock.advance(4 * DAY); // day 91
    let ended = refresh.rotate(current.expose()).await.unwrap_err();
    assert!(
        matches!(ended, AuthError::InvalidToken(InvalidToken::Expired)),
        "{ended:?}"
    );
}
