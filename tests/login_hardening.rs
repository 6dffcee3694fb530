//! Password login under attack, through `PasswordLogin` on real stores (a SQLite file, a
//! PostgreSQL server) with the throttle in memory and in a real Redis: concurrent guesses,
//! address rotation within one IPv6 network, attacker-sized and unstorable usernames
//! (hardening items 2 to 4 and 8). Each test is named after the defect it pins down.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use argon2::Params;
use portcullis::audit::{AuditKind, RecordedEvents};
use portcullis::flows::{PasswordLogin, Registration};
use portcullis::ratelimit::{LoginThrottle, ThrottlePolicy, WhenRedisDown};
use portcullis::sign_in::Refusal;
use portcullis::store::{MemoryStore, PostgresStore, SqliteStore, Store};
use portcullis::{Auth, PasswordPolicy, Passwords};

struct Fixture {
    login: PasswordLogin,
    events: RecordedEvents,
    _dir: tempfile::TempDir,
}

/// Cheap hashes, two at a time: what is tested is the throttle, not Argon2's cost.
fn passwords() -> Passwords {
    Passwords::with_params(
        PasswordPolicy::default(),
        Params::new(1024, 1, 1, None).unwrap(),
        2,
    )
}

async fn fixture(throttle: LoginThrottle) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .unwrap();
    let events = RecordedEvents::new();
    let auth = Auth::builder(store).events(events.clone()).build();
    let login = PasswordLogin::new(&auth, &passwords()).throttle(throttle);
    login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    Fixture {
        login,
        events,
        _dir: dir,
    }
}

fn verifications(events: &RecordedEvents) -> usize {
    events
        .events()
        .iter()
        .filter(|event| event.kind == AuditKind::LoginFailed)
        .count()
}

fn address(n: usize) -> Option<IpAddr> {
    Some(common::client_address(n).parse().unwrap())
}

/// Hardening item 4: the throttle was checked before the password and charged after it, so
/// guesses sent at once all passed the check. Each attempt now reserves its failure up front.
async fn concurrent_wrong_passwords_reach_verification_only_as_often_as_the_throttle_allows(
    throttle: LoginThrottle,
) {
    let allowed = throttle.policy().account_free as usize;
    let f = Arc::new(fixture(throttle).await);
    let guesses: Vec<_> = (0..200)
        .map(|n| {
            let f = f.clone();
            tokio::spawn(async move {
                common::sign_in_with_password(&f.login, "ada", &format!("guess {n}"), address(n))
                    .await
            })
        })
        .collect();
    for guess in guesses {
        match guess.await.unwrap() {
            Err(Refusal::InvalidCredentials | Refusal::Throttled { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let verified = verifications(&f.events);
    assert!(
        verified <= allowed,
        "{verified} guesses reached password verification; the policy allows {allowed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_reach_verification_only_as_often_as_the_throttle_allows_in_memory()
 {
    concurrent_wrong_passwords_reach_verification_only_as_often_as_the_throttle_allows(
        LoginThrottle::in_memory(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_reach_verification_only_as_often_as_the_throttle_allows_on_redis()
 {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let throttle = LoginThrottle::redis(&url, ThrottlePolicy::default(), WhenRedisDown::FailClosed)
        .unwrap()
        .prefix(prefix.clone());
    concurrent_wrong_passwords_reach_verification_only_as_often_as_the_throttle_allows(throttle)
        .await;
    common::redis_delete_prefix(&url, &prefix).await;
}

/// Hardening item 2: an attacker with one IPv6 /64 has 2^64 addresses; the throttle's
/// per-address back-off counts the network.
async fn ipv6_addresses_of_one_slash_64_share_the_address_back_off(throttle: LoginThrottle) {
    let f = fixture(throttle).await;
    let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
    for n in 1..=3 {
        let attempt = common::sign_in_with_password(
            &f.login,
            &format!("user{n}"),
            "wrong",
            ip(&format!("2001:db8:7:7::{n}")),
        )
        .await;
        assert!(
            matches!(attempt, Err(Refusal::InvalidCredentials)),
            "{attempt:?}"
        );
    }
    let rotated =
        common::sign_in_with_password(&f.login, "someone", "wrong", ip("2001:db8:7:7:ffff::99"))
            .await;
    assert!(
        matches!(rotated, Err(Refusal::Throttled { .. })),
        "another address of the same /64: {rotated:?}"
    );
    let neighbour =
        common::sign_in_with_password(&f.login, "someone", "wrong", ip("2001:db8:7:8::1")).await;
    assert!(
        matches!(neighbour, Err(Refusal::InvalidCredentials)),
        "the next /64 is another client: {neighbour:?}"
    );
}

fn three_free_failures_per_address() -> ThrottlePolicy {
    ThrottlePolicy {
        address_free: 3,
        account_free: 1000,
        ..ThrottlePolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_of_one_slash_64_share_the_address_back_off_in_memory() {
    ipv6_addresses_of_one_slash_64_share_the_address_back_off(LoginThrottle::in_memory_with(
        three_free_failures_per_address(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_of_one_slash_64_share_the_address_back_off_on_redis() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let throttle = LoginThrottle::redis(
        &url,
        three_free_failures_per_address(),
        WhenRedisDown::FailClosed,
    )
    .unwrap()
    .prefix(prefix.clone());
    ipv6_addresses_of_one_slash_64_share_the_address_back_off(throttle).await;
    common::redis_delete_prefix(&url, &prefix).await;
}

/// Hardening item 3: the throttle was keyed by the username as sent, so every failed login
/// with a long name stored a key of that length (in Redis: up to the body limit per failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_keys_stay_small_whatever_username_is_sent() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let throttle = LoginThrottle::redis(&url, ThrottlePolicy::default(), WhenRedisDown::FailClosed)
        .unwrap()
        .prefix(prefix.clone());
    let f = fixture(throttle).await;
    for (n, username) in ["x".repeat(60_000), "y".repeat(200), "ADA".to_owned()]
        .iter()
        .enumerate()
    {
        let attempt = common::sign_in_with_password(&f.login, username, "wrong", address(n)).await;
        assert!(
            matches!(attempt, Err(Refusal::InvalidCredentials)),
            "{} bytes: {attempt:?}",
            username.len()
        );
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}*", prefix.replace('{', "\\{").replace('}', "\\}"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "failures were recorded");
    let longest = keys.iter().map(String::len).max().unwrap();
    assert!(
        longest <= prefix.len() + 80,
        "a throttle key of {longest} bytes: {:?}",
        keys.iter()
            .map(|k| &k[..k.len().min(100)])
            .collect::<Vec<_>>()
    );
    common::redis_delete_prefix(&url, &prefix).await;
}

/// Hardening item 8: a username holding text PostgreSQL cannot store (U+0000) made the
/// lookup fail, which the login answered as a store outage (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_login_username_is_a_wrong_password_on_postgres() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let schema = common::PgSchema::create(&server).await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&schema.url).await.unwrap());
    let auth = Auth::builder(store).build();
    let login = PasswordLogin::new(&auth, &passwords());
    login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    for username in ["ada\0", "\0", "a\0da"] {
        let attempt = common::sign_in_with_password(&login, username, "correct horse", None).await;
        assert!(
            matches!(attempt, Err(Refusal::InvalidCredentials)),
            "{username:?}: {attempt:?}"
        );
    }
    common::sign_in_with_password(&login, "ada", "correct horse", None)
        .await
        .unwrap();
}

/// Hardening item 6: the concurrency cap's permit belonged to the request's future while the
/// hash ran on the blocking pool, so a client that hung up right after posting freed its
/// permit with its hash still running: 200 such logins ran up to 200 hashes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_cancelled_mid_hash_never_run_more_hashes_than_the_cap() {
    const CAP: usize = 2;
    // The memory store answers within the request's first poll, so every login has handed
    // its hash to the blocking pool before its 1 ms can run out, however busy the machine
    // (behind SQLite's connection pool, a loaded run cancelled all 200 before they hashed).
    let auth = Auth::builder(MemoryStore::new()).build();
    // About 10 ms a hash: long enough to outlive the 1 ms its request waits.
    let passwords = Passwords::with_params(
        PasswordPolicy::default(),
        Params::new(8192, 2, 1, None).unwrap(),
        CAP,
    );
    let login = PasswordLogin::new(&auth, &passwords);
    login
        .register(Registration::new("ada", "correct horse"))
        .await
        .unwrap();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (passwords, watching, most) = (passwords.clone(), watching.clone(), most.clone());
        tokio::task::spawn_blocking(move || {
            while watching.load(std::sync::atomic::Ordering::Acquire) {
                most.fetch_max(
                    passwords.hashes_in_flight(),
                    std::sync::atomic::Ordering::AcqRel,
                );
                std::thread::yield_now();
            }
        })
    };
    // On a loaded machine a round can be cancelled before any of its hashes start; another
    // round then gives the cap something to hold.
    for _round in 0..5 {
        let hang_ups: Vec<_> = (0..200)
            .map(|n| {
                let login = login.clone();
                tokio::spawn(async move {
                    let guess = format!("guess {n}");
                    let attempt = common::sign_in_with_password(&login, "ada", &guess, None);
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_millis(1), attempt).await;
                })
            })
            .collect();
        for hang_up in hang_ups {
            hang_up.await.unwrap();
        }
        if most.load(std::sync::atomic::Ordering::Acquire) > 0 {
            break;
        }
    }
    // Let whatever the cancelled requests left behind finish.
    let started = std::time::Instant::now();
    while passwords.hashes_in_flight() > 0 && started.elapsed().as_secs() < 30 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    watching.store(false, std::sync::atomic::Ordering::Release);
    watcher.await.unwrap();
    let most = most.load(std::sync::atomic::Ordering::Acquire);
    assert!(most >= 1, "the watcher saw hashing");
    assert!(most <= CAP, "{most} hashes ran at once; the cap is {CAP}");
}

/// Hardening item 6: a login whose client hung up before the answer was never charged to the
/// throttle, so hanging up after each guess made guessing free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_cancelled_mid_check_counts_as_a_failure() {
    let f = fixture(LoginThrottle::in_memory()).await;
    for n in 0..10 {
        let guess = format!("guess {n}");
        let attempt = common::sign_in_with_password(&f.login, "ada", &guess, address(n));
        // Long enough for the throttle to admit it, too short for the password check.
        let _ = tokio::time::timeout(std::time::Duration::from_micros(200), attempt).await;
    }
    let after = common::sign_in_with_password(&f.login, "ada", "correct horse", address(99)).await;
    assert!(
        matches!(after, Err(Refusal::Throttled { .. })),
        "the hang-ups were free: {after:?}"
    );
}

/// Hardening item 7: a stored hash that could not be parsed was answered at once, and a
/// legacy bcrypt hash took bcrypt's time where an unknown user took the dummy Argon2id
/// verification's, so the timing told which accounts exist. Every failure now costs a
/// verification and waits out the slowest scheme seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_login_takes_as_long_as_the_slowest_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .unwrap();
    let auth = Auth::builder(store).build();
    // Argon2id a few times faster than bcrypt at cost 10 (the seeds use 12: slower still).
    let passwords = Passwords::with_params(
        PasswordPolicy::default(),
        Params::new(4096, 1, 1, None).unwrap(),
        2,
    );
    let login = PasswordLogin::new(&auth, &passwords);
    login
        .register(Registration::new("argon", "correct horse"))
        .await
        .unwrap();
    let legacy = bcrypt::hash("correct horse", 10).unwrap();
    for (name, hash) in [
        ("legacy", Some(legacy.as_str())),
        ("corrupt", Some("$argon2id$v=19$garbage")),
        ("sso", None),
    ] {
        let mut user = portcullis::store::NewUser::new(name);
        user.password_hash = hash.map(str::to_owned);
        auth.users().create_user(user, auth.now()).await.unwrap();
    }
    let paths = ["legacy", "argon", "nobody", "corrupt", "sso"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..12 {
        for (path, username) in paths.iter().enumerate() {
            let started = std::time::Instant::now();
            let attempt =
                common::sign_in_with_password(&login, username, "wrong horse", None).await;
            let elapsed = started.elapsed().as_secs_f64();
            assert!(
                matches!(attempt, Err(Refusal::InvalidCredentials)),
                "{username}: {attempt:?}"
            );
            // The first round teaches the hasher each scheme's time.
            if round > 0 {
                times[path].push(elapsed);
            }
        }
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    let legacy = medians[0];
    for (username, time) in paths.iter().zip(&medians) {
        let ratio = time / legacy;
        eprintln!(
            "{username}: median {:.1} ms, {ratio:.2} × a wrong bcrypt password",
            time * 1e3
        );
        assert!(
            (0.8..=1.25).contains(&ratio),
            "a failed login for {username:?} takes {ratio:.2} × what a wrong bcrypt password takes"
        );
    }
}
