//! Rate limits against real Redis (shared by two instances), Redis outages, and memory under a
//! flood of distinct keys.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use portcullis::ratelimit::{
    ClientIp, KeyBy, Limit, Policy, RateLimitLayer, RedisLimits, WhenRedisDown,
};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

fn client_ip() -> ClientIp {
    ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
}

fn redis_layer(
    url: &str,
    prefix: &str,
    policy: Policy,
    when_down: WhenRedisDown,
) -> RateLimitLayer {
    RateLimitLayer::builder()
        .policy(policy)
        .client_ip(client_ip())
        .redis(RedisLimits::open(url, when_down).unwrap().prefix(prefix))
        .build()
        .unwrap()
}

async fn send(layer: &RateLimitLayer, peer: &str) -> Response {
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let mut request = Request::new(Body::empty());
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    service.oneshot(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_admit_exactly_the_limit_under_concurrency() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let limit = 25;
    let policy = || Policy::new("shared", Limit::per_hour(limit), KeyBy::Route).unwrap();
    let a = Arc::new(redis_layer(
        &url,
        &prefix,
        policy(),
        WhenRedisDown::FailClosed,
    ));
    let b = Arc::new(redis_layer(
        &url,
        &prefix,
        policy(),
        WhenRedisDown::FailClosed,
    ));
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let layer = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { send(&layer, "1.1.1.1:1").await.status() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, limit, "exactly the limit, across both instances");
    common::redis_delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limits_send_the_same_headers_and_refusals() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let layer = redis_layer(
        &url,
        &prefix,
        Policy::new("login", Limit::per_minute(3), KeyBy::ClientIp).unwrap(),
        WhenRedisDown::FailClosed,
    );
    let first = send(&layer, "1.1.1.1:1").await;
    assert_eq!(first.headers()["ratelimit-policy"], "\"login\";q=3;w=60");
    assert_eq!(first.headers()["ratelimit"], "\"login\";r=2;t=20");
    send(&layer, "1.1.1.1:1").await;
    send(&layer, "1.1.1.1:1").await;
    let refused = send(&layer, "1.1.1.1:1").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    assert_eq!(
        send(&layer, "2.2.2.2:1").await.status(),
        StatusCode::OK,
        "per client"
    );
    common::redis_delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_closed_as_configured_and_recovers() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let proxy = common::Proxy::start(common::host_port(&url)).await;
    let prefix = common::redis_prefix();
    let policy = || Policy::new("p", Limit::per_minute(100), KeyBy::ClientIp).unwrap();
    let open = redis_layer(&proxy.url(&url), &prefix, policy(), WhenRedisDown::FailOpen);
    let closed = redis_layer(
        &proxy.url(&url),
        &prefix,
        policy(),
        WhenRedisDown::FailClosed,
    );
    assert_eq!(send(&open, "1.1.1.1:1").await.status(), StatusCode::OK);
    assert_eq!(send(&closed, "1.1.1.1:1").await.status(), StatusCode::OK);

    proxy.cut();
    let started = Instant::now();
    let fail_open = send(&open, "1.1.1.1:1").await;
    assert_eq!(
        fail_open.status(),
        StatusCode::OK,
        "fail-open lets the request through"
    );
    assert!(
        fail_open.headers().get("ratelimit").is_none(),
        "but claims no limit state"
    );
    let fail_closed = send(&closed, "1.1.1.1:1").await;
    assert_eq!(fail_closed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fail_closed.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an outage never hangs a request"
    );

    proxy.restore();
    let recovered = Instant::now();
    while send(&closed, "1.1.1.1:1").await.status() != StatusCode::OK {
        assert!(recovered.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::redis_delete_prefix(&url, &prefix).await;
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A million distinct client addresses hit an in-memory limit. Memory grows by a bounded
/// amount per key, and once their buckets refill the janitor's sweep drops every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_distinct_keys_cost_bounded_memory_and_are_swept() {
    const KEYS: u32 = 1_000_000;
    // A bucket refills one emission interval after its request, and the janitor (every 5 s)
    // drops refilled ones: the interval must outlast the loop (about 5 s in a debug build),
    // or the count below would see early keys already swept.
    const INTERVAL: Duration = Duration::from_secs(10);
    let layer = RateLimitLayer::builder()
        .policy(Policy::new("ip", Limit::new(1, INTERVAL), KeyBy::ClientIp).unwrap())
        .client_ip(client_ip())
        .build()
        .unwrap();
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let before = resident_kib();
    let started = Instant::now();
    for n in 0..KEYS {
        let mut request = Request::new(Body::empty());
        request
            .extensions_mut()
            .insert(SocketAddr::from(((n | 0x0100_0000).to_be_bytes(), 1)));
        let status = service.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
    }
    let elapsed = started.elapsed();
    assert_eq!(layer.buckets_in_memory(), KEYS as usize);
    let grown = resident_kib().saturating_sub(before);
    let per_key = grown * 1024 / u64::from(KEYS);
    println!(
        "1,000,000 distinct keys in {elapsed:?}: resident +{} MiB ({per_key} bytes per key), peak {} MiB",
        grown / 1024,
        peak_kib() / 1024
    );
    assert!(per_key <= 256, "{per_key} bytes per key");

    // A bucket is indistinguishable from a new one one emission interval after it refilled.
    tokio::time::sleep(2 * INTERVAL + Duration::from_millis(100)).await;
    layer.retain_recent();
    assert_eq!(layer.buckets_in_memory(), 0, "refilled buckets are dropped");
}

mod quota {
    use std::sync::Arc;

    use axum::Router;
    use axum::routing::get;
    use portcullis::clock::ManualClock;
    use portcullis::ratelimit::QuotaLayer;
    use portcullis::source::Bearer;
    use portcullis::store::{NewUser, SqliteStore, Store};
    use portcullis::token::TokenFormat;
    use portcullis::{ApiKeys, Auth, AuthLayer, NewApiKey};
    use time::macros::datetime;

    use super::*;

    struct App {
        router: Router,
        keys: Vec<String>,
    }

    async fn app(path: &std::path::Path, clock: Arc<ManualClock>) -> App {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        );
        let auth = Auth::builder(store).shared_clock(clock).build();
        let api_keys = ApiKeys::new(&auth, TokenFormat::new("q_").unwrap());
        let mut keys = Vec::new();
        for (name, roles) in [("ada", vec![]), ("root", vec!["admin"])] {
            let user = match auth.users().user_by_username(name).await.unwrap() {
                Some(user) => user,
                None => auth
                    .users()
                    .create_user(NewUser::new(name).roles(roles), auth.now())
                    .await
                    .unwrap(),
            };
            keys.push(
                api_keys
                    .create(&user, NewApiKey::named("k"))
                    .await
                    .unwrap()
                    .secret
                    .into_exposed(),
            );
        }
        let quota = QuotaLayer::daily(&auth, "messages", |identity| {
            (!identity.has_role("admin")).then_some(3)
        })
        .unwrap();
        let router = Router::new()
            .route("/chat", get(|| async { "ok" }).layer(quota))
            .layer(AuthLayer::builder().source(Bearer::new(api_keys)).build());
        App { router, keys }
    }

    async fn chat(app: &App, key: Option<&str>) -> Response {
        let mut request = Request::get("/chat");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        app.router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_daily_quota_resets_at_the_boundary_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("quota.db");
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-25 20:00 UTC)));
        let first = app(&db, clock.clone()).await;
        let ada = first.keys[0].clone();
        for remaining in [2, 1] {
            let response = chat(&first, Some(&ada)).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()["ratelimit-policy"],
                "\"messages\";q=3;w=86400"
            );
            assert_eq!(
                response.headers()["ratelimit"],
                format!("\"messages\";r={remaining};t=14400")
            );
        }
        // A restart (a new Auth over the same database) keeps the count.
        let second = app(&db, clock.clone()).await;
        assert_eq!(chat(&second, Some(&ada)).await.status(), StatusCode::OK);
        let refused = chat(&second, Some(&ada)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.headers()["retry-after"],
            "14400",
            "until midnight UTC"
        );
        // Unlimited users and anonymous requests are not counted.
        for _ in 0..10 {
            assert_eq!(
                chat(&second, Some(&second.keys[1])).await.status(),
                StatusCode::OK
            );
            assert_eq!(chat(&second, None).await.status(), StatusCode::OK);
        }
        clock.advance(Duration::from_secs(4 * 3600));
        assert_eq!(
            chat(&second, Some(&ada)).await.status(),
            StatusCode::OK,
            "a new day"
        );
    }

    #[tokio::test]
    async fn the_quota_boundary_follows_the_configured_offset() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-25 20:00 UTC)));
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
                .await
                .unwrap(),
        );
        let auth = Auth::builder(store).shared_clock(clock).build();
        let api_keys = ApiKeys::new(&auth, TokenFormat::new("q_").unwrap());
        let user = auth
            .users()
            .create_user(NewUser::new("ada"), auth.now())
            .await
            .unwrap();
        let key = api_keys
            .create(&user, NewApiKey::named("k"))
            .await
            .unwrap()
            .secret
            .into_exposed();
        let quota = QuotaLayer::daily(&auth, "messages", |_| Some(1))
            .unwrap()
            .resets_at(time::UtcOffset::from_hms(-5, 0, 0).unwrap());
        let router: Router = Router::new()
            .route("/chat", get(|| async { "ok" }).layer(quota))
            .layer(AuthLayer::builder().source(Bearer::new(api_keys)).build());
        let request = || {
            Request::get("/chat")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap()
        };
        router.clone().oneshot(request()).await.unwrap();
        let refused = router.oneshot(request()).await.unwrap();
        // 20:00 UTC is 15:00 at UTC-5: nine hours to that midnight.
        assert_eq!(refused.headers()["retry-after"], "32400");
    }
}

mod throttle {
    use portcullis::clock::ManualClock;
    use portcullis::ratelimit::{LoginThrottle, ThrottlePolicy};

    use super::*;

    fn ip(n: u8) -> Option<std::net::IpAddr> {
        Some(std::net::IpAddr::from([198, 51, 100, n]))
    }

    /// Two instances share one throttle through Redis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_throttle_is_shared_by_instances_and_follows_the_policy() {
        let Some(url) = common::redis_url() else {
            return;
        };
        let prefix = common::redis_prefix();
        let clock = Arc::new(ManualClock::starting_now());
        let instance = || {
            LoginThrottle::redis(&url, ThrottlePolicy::default(), WhenRedisDown::FailClosed)
                .unwrap()
                .prefix(prefix.clone())
                .clock(clock.clone())
        };
        let (a, b) = (instance(), instance());
        b.attempt("ada", ip(7)).await.unwrap().succeeded().await;
        for n in 0..5 {
            let instance = if n % 2 == 0 { &a } else { &b };
            instance.attempt("ada", ip(66)).await.unwrap().failed();
        }
        let throttled = a.attempt("ada", ip(66)).await.unwrap_err();
        assert_eq!(throttled.retry_after, Duration::from_secs(1));
        let owner = b.attempt("ada", ip(7)).await;
        assert!(owner.is_ok(), "the owner's known address is exempt");
        owner.unwrap().refund().await;
        clock.advance(Duration::from_secs(1));
        b.attempt("ada", ip(66)).await.unwrap().failed();
        assert_eq!(
            a.attempt("ada", ip(66)).await.unwrap_err().retry_after,
            Duration::from_secs(2)
        );
        a.attempt("ada", ip(7)).await.unwrap().succeeded().await;
        assert!(
            b.attempt("ada", ip(9)).await.is_ok(),
            "success cleared the account"
        );
        // A refunded attempt (the store failed, say) is not a failure.
        for _ in 0..10 {
            a.attempt("bob", ip(9)).await.unwrap().refund().await;
        }
        assert!(b.attempt("bob", ip(10)).await.is_ok());
        common::redis_delete_prefix(&url, &prefix).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_throttle_fails_open_or_closed_when_redis_is_down() {
        let dead = "redis://127.0.0.1:1";
        let open =
            LoginThrottle::redis(dead, ThrottlePolicy::default(), WhenRedisDown::FailOpen).unwrap();
        let closed =
            LoginThrottle::redis(dead, ThrottlePolicy::default(), WhenRedisDown::FailClosed)
                .unwrap();
        let started = Instant::now();
        open.attempt("ada", ip(1)).await.unwrap().failed();
        assert!(closed.attempt("ada", ip(1)).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

/// Sends a request from `peer` with `headers`, through `layer`.
async fn send_with(layer: &RateLimitLayer, peer: &str, headers: &[(&str, &str)]) -> StatusCode {
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let mut request = Request::builder();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    service.oneshot(request).await.unwrap().status()
}

fn one_per_minute_per_address(client_ip: ClientIp) -> RateLimitLayer {
    RateLimitLayer::builder()
        .policy(Policy::new("ip", Limit::per_minute(1), KeyBy::ClientIp).unwrap())
        .client_ip(client_ip)
        .build()
        .unwrap()
}

/// Hardening item 1. nginx, HAProxy, Caddy and the cloud load balancers append the peer they
/// saw to `X-Forwarded-For` and pass a `Forwarded` header through as the client wrote it: a
/// client that could pick its address with `Forwarded` would get a fresh bucket per request.
#[tokio::test]
async fn a_client_written_forwarded_header_cannot_choose_the_address_behind_a_proxy() {
    let layer = one_per_minute_per_address(client_ip().trust_proxies(["10.0.0.0/8"]).unwrap());
    for n in 1..=3 {
        let forged = format!("for=198.51.100.{n}");
        let status = send_with(
            &layer,
            "10.0.0.1:4000",
            &[
                ("forwarded", forged.as_str()),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        )
        .await;
        let expected = if n == 1 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "request {n} with {forged:?}");
    }
}

/// Hardening item 2. One customer's /64 holds 2^64 addresses: keyed per address, each one is
/// a fresh bucket. IPv6 clients share a bucket per /64 unless configured otherwise.
#[tokio::test]
async fn ipv6_clients_of_one_slash_64_share_a_bucket() {
    let layer = one_per_minute_per_address(client_ip());
    assert_eq!(
        send_with(&layer, "[2001:db8:1:2::1]:4000", &[]).await,
        StatusCode::OK
    );
    for other in [
        "[2001:db8:1:2::2]:4000",
        "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1",
    ] {
        assert_eq!(
            send_with(&layer, other, &[]).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{other} is in the same /64"
        );
    }
    assert_eq!(
        send_with(&layer, "[2001:db8:1:3::1]:4000", &[]).await,
        StatusCode::OK,
        "the next /64 is another client"
    );
    // IPv4 is keyed per address.
    assert_eq!(send_with(&layer, "192.0.2.1:1", &[]).await, StatusCode::OK);
    assert_eq!(send_with(&layer, "192.0.2.2:1", &[]).await, StatusCode::OK);
}

/// Hardening item 5, on Redis: failed authentications are counted by every instance together,
/// and only failures are: `401`s and answers marked [`AuthenticationFailed`] (here a
/// WebSocket accepted only to be closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_policy_on_redis_counts_only_failed_authentications_across_instances() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = common::redis_prefix();
    let policy = || {
        Policy::new("auth-failures", Limit::per_minute(4), KeyBy::ClientIp)
            .unwrap()
            .charge(portcullis::ratelimit::Charge::FailedAuthentication)
    };
    let instance = || redis_layer(&url, &prefix, policy(), WhenRedisDown::FailClosed);
    let (a, b) = (instance(), instance());
    let marked = |layer: &RateLimitLayer, status: StatusCode, failed: bool| {
        layer.layer(service_fn(move |_: Request<Body>| async move {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            if failed {
                response
                    .extensions_mut()
                    .insert(portcullis::ratelimit::AuthenticationFailed);
            }
            Ok::<_, Infallible>(response)
        }))
    };
    let answering = |layer: &RateLimitLayer, status: StatusCode| marked(layer, status, false);
    let request = |peer: &str| {
        let mut request = Request::new(Body::empty());
        request
            .extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        request
    };
    for _ in 0..10 {
        let ok = answering(&a, StatusCode::OK).oneshot(request("1.1.1.1:1"));
        assert_eq!(ok.await.unwrap().status(), StatusCode::OK);
    }
    for n in 0..4 {
        let layer = if n % 2 == 0 { &a } else { &b };
        let failed = answering(layer, StatusCode::UNAUTHORIZED).oneshot(request("1.1.1.1:1"));
        let failed = if n < 2 {
            failed
        } else {
            marked(layer, StatusCode::SWITCHING_PROTOCOLS, true).oneshot(request("1.1.1.1:1"))
        };
        assert!(failed.await.unwrap().status().as_u16() < 500);
    }
    for layer in [&a, &b] {
        let refused = answering(layer, StatusCode::OK)
            .oneshot(request("1.1.1.1:1"))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "15");
    }
    let other = answering(&b, StatusCode::OK).oneshot(request("2.2.2.2:1"));
    assert_eq!(other.await.unwrap().status(), StatusCode::OK);
    common::redis_delete_prefix(&url, &prefix).await;
}
