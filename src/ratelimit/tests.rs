use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use governor::clock::FakeRelativeClock;
use http::{Request, StatusCode};
use proptest::prelude::*;
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;

fn client_ip() -> ClientIp {
    ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
}

fn layer(policies: Vec<Policy>, clock: &FakeRelativeClock) -> RateLimitLayer {
    policies
        .into_iter()
        .fold(RateLimitLayer::builder().client_ip(client_ip()), |b, p| {
            b.policy(p)
        })
        .build_with_clock(clock.clone())
        .unwrap()
}

async fn send(layer: &RateLimitLayer, peer: &str) -> Response {
    request(layer, peer, None).await
}

/// Sends a request from `peer`, authenticated as `identity` if given.
async fn request(
    layer: &RateLimitLayer,
    peer: &str,
    identity: Option<crate::Identity>,
) -> Response {
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let mut request = Request::new(Body::empty());
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    service.oneshot(request).await.unwrap()
}

/// The status of a request from `peer` authenticated as `identity`.
async fn send_as(layer: &RateLimitLayer, peer: &str, identity: crate::Identity) -> StatusCode {
    request(layer, peer, Some(identity)).await.status()
}

/// User `user` authenticated by `method`.
fn authenticated(user: i64, method: crate::AuthMethod) -> crate::Identity {
    let record = crate::store::User::fixture(user);
    crate::Identity::user(record, method, crate::Scopes::Unrestricted)
}

fn api_key(user: i64, key: i64) -> crate::Identity {
    authenticated(
        user,
        crate::AuthMethod::ApiKey {
            key_id: crate::store::TokenId(key),
        },
    )
}

fn session(user: i64) -> crate::Identity {
    authenticated(
        user,
        crate::AuthMethod::Session {
            session_id: crate::store::TokenId(99),
        },
    )
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

#[tokio::test]
async fn gcra_admits_the_burst_then_one_per_emission_interval() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("ip", Limit::per_second(2).burst(3), KeyBy::ClientIp).unwrap()],
        &clock,
    );
    for _ in 0..3 {
        assert_eq!(send(&limits, "1.1.1.1:1").await.status(), StatusCode::OK);
    }
    let refused = send(&limits, "1.1.1.1:1").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "1", "500 ms, rounded up");
    // Another client has its own bucket.
    assert_eq!(send(&limits, "2.2.2.2:1").await.status(), StatusCode::OK);
    // Half a second later exactly one more request fits.
    clock.advance(Duration::from_millis(500));
    assert_eq!(send(&limits, "1.1.1.1:1").await.status(), StatusCode::OK);
    assert_eq!(
        send(&limits, "1.1.1.1:1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // After a full window the whole burst is back.
    clock.advance(Duration::from_millis(1500));
    for _ in 0..3 {
        assert_eq!(send(&limits, "1.1.1.1:1").await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn responses_carry_ratelimit_policy_and_ratelimit_headers() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("login", Limit::per_minute(10), KeyBy::ClientIp).unwrap()],
        &clock,
    );
    let first = send(&limits, "1.1.1.1:1").await;
    assert_eq!(header(&first, "ratelimit-policy"), "\"login\";q=10;w=60");
    assert_eq!(header(&first, "ratelimit"), "\"login\";r=9;t=6");
    for _ in 0..9 {
        send(&limits, "1.1.1.1:1").await;
    }
    let refused = send(&limits, "1.1.1.1:1").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit"), "\"login\";r=0;t=60");
    assert_eq!(header(&refused, "retry-after"), "6");
    let body = axum::body::to_bytes(refused.into_body(), 100)
        .await
        .unwrap();
    assert_eq!(&body[..], br#"{"detail":"Too many requests"}"#);
}

#[tokio::test]
async fn stacked_policies_all_apply_and_a_refusal_stops_at_the_refusing_policy() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![
            Policy::new("fast", Limit::per_second(10), KeyBy::ClientIp).unwrap(),
            Policy::new("daily", Limit::per_day(12), KeyBy::Route).unwrap(),
        ],
        &clock,
    );
    for _ in 0..10 {
        assert_eq!(send(&limits, "1.1.1.1:1").await.status(), StatusCode::OK);
    }
    assert_eq!(
        send(&limits, "1.1.1.1:1").await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "per second"
    );
    // The refusal did not use up the daily budget: 10 of 12 are spent.
    let ok = send(&limits, "2.2.2.2:1").await;
    assert_eq!(
        header(&ok, "ratelimit"),
        "\"fast\";r=9;t=1, \"daily\";r=1;t=79200"
    );
    assert_eq!(send(&limits, "3.3.3.3:1").await.status(), StatusCode::OK);
    let refused = send(&limits, "4.4.4.4:1").await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the route's daily budget"
    );
    assert_eq!(header(&refused, "retry-after"), "7200");
}

#[tokio::test]
async fn requests_without_a_recorded_peer_share_one_bucket_instead_of_failing() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("ip", Limit::per_minute(1), KeyBy::ClientIp).unwrap()],
        &clock,
    );
    let service = limits.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let first = service
        .clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    let second = service.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn user_and_api_key_policies_exempt_anonymous_requests() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![
            Policy::new("user", Limit::per_minute(1), KeyBy::User).unwrap(),
            Policy::new("key", Limit::per_minute(1), KeyBy::ApiKey).unwrap(),
        ],
        &clock,
    );
    for _ in 0..5 {
        let response = send(&limits, "1.1.1.1:1").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers().get("ratelimit").is_none(),
            "no policy applied"
        );
    }
}

#[tokio::test]
async fn an_api_key_policy_counts_each_key_apart_and_nothing_else() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("key", Limit::per_minute(1), KeyBy::ApiKey).unwrap()],
        &clock,
    );
    assert_eq!(send_as(&limits, "1.1.1.1:1", api_key(1, 10)).await, 200);
    assert_eq!(
        send_as(&limits, "2.2.2.2:1", api_key(1, 10)).await,
        429,
        "the key's bucket, from any address"
    );
    assert_eq!(
        send_as(&limits, "1.1.1.1:1", api_key(1, 11)).await,
        200,
        "another key of the same user has its own bucket"
    );
    for _ in 0..3 {
        assert_eq!(send_as(&limits, "1.1.1.1:1", session(1)).await, 200);
    }
}

#[tokio::test]
async fn a_user_policy_counts_every_credential_of_the_user_together() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("user", Limit::per_minute(2), KeyBy::User).unwrap()],
        &clock,
    );
    assert_eq!(send_as(&limits, "1.1.1.1:1", api_key(1, 10)).await, 200);
    assert_eq!(send_as(&limits, "2.2.2.2:1", session(1)).await, 200);
    assert_eq!(send_as(&limits, "3.3.3.3:1", api_key(1, 11)).await, 429);
    assert_eq!(send_as(&limits, "1.1.1.1:1", session(2)).await, 200);
}

#[test]
fn keys_and_key_choices_describe_themselves_without_secrets() {
    use super::policy::RequestKey;
    let ip = "192.0.2.1".parse().unwrap();
    for (key, shown) in [
        (RequestKey::Ip(Some(ip)), "ip:192.0.2.1"),
        (RequestKey::Ip(None), "ip:unknown"),
        (RequestKey::User(crate::store::UserId(7)), "user:7"),
        (RequestKey::ApiKey(crate::store::TokenId(8)), "key:8"),
        (RequestKey::Route, "route"),
        (RequestKey::Custom("tenant-1".into()), "custom:tenant-1"),
    ] {
        assert_eq!(key.to_string(), shown);
    }
    let custom = KeyBy::Custom(std::sync::Arc::new(|_: &http::request::Parts| None));
    for (key_by, shown) in [
        (KeyBy::ClientIp, "ClientIp"),
        (KeyBy::User, "User"),
        (KeyBy::ApiKey, "ApiKey"),
        (KeyBy::Route, "Route"),
        (custom, "Custom(..)"),
    ] {
        assert_eq!(format!("{key_by:?}"), shown);
    }
}

#[tokio::test]
async fn idle_buckets_are_dropped_so_memory_stays_bounded() {
    let clock = FakeRelativeClock::default();
    let limits = layer(
        vec![Policy::new("ip", Limit::per_second(1), KeyBy::ClientIp).unwrap()],
        &clock,
    );
    for n in 0..1000u32 {
        let [a, b, c, d] = n.to_be_bytes();
        send(&limits, &format!("{}.{b}.{c}.{d}:1", a + 1)).await;
    }
    assert_eq!(limits.buckets_in_memory(), 1000);
    clock.advance(Duration::from_secs(2));
    limits.retain_recent();
    assert_eq!(limits.buckets_in_memory(), 0);
}

#[test]
fn misconfigurations_are_reported() {
    let ip_policy = || Policy::new("ip", Limit::per_second(1), KeyBy::ClientIp).unwrap();
    assert!(matches!(
        RateLimitLayer::builder().build(),
        Err(RateLimitConfigError::NoPolicy)
    ));
    assert!(matches!(
        RateLimitLayer::builder().policy(ip_policy()).build(),
        Err(RateLimitConfigError::NoClientIp(_))
    ));
    assert!(matches!(
        RateLimitLayer::builder()
            .client_ip(client_ip())
            .policy(ip_policy())
            .policy(ip_policy())
            .build(),
        Err(RateLimitConfigError::DuplicateName(_))
    ));
    for bad in ["", "Upper", "with space", "quote\"", &"x".repeat(33)] {
        assert!(
            Policy::new(bad, Limit::per_second(1), KeyBy::Route).is_err(),
            "{bad:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over any schedule of requests, a GCRA policy never admits more than its burst plus one
    /// request per elapsed emission interval.
    #[test]
    fn gcra_never_admits_more_than_its_policy(
        count in 1u32..20,
        burst in 1u32..10,
        gaps in proptest::collection::vec(0u64..400, 1..200),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let clock = FakeRelativeClock::default();
        let limit = Limit::per_second(count).burst(burst);
        let limits = layer(vec![Policy::new("p", limit, KeyBy::Route).unwrap()], &clock);
        let mut admitted = 0u64;
        let mut elapsed = Duration::ZERO;
        for gap in gaps {
            clock.advance(Duration::from_millis(gap));
            elapsed += Duration::from_millis(gap);
            if runtime.block_on(send(&limits, "1.1.1.1:1")).status() == StatusCode::OK {
                admitted += 1;
            }
            let allowance = u64::from(burst) + (elapsed.as_nanos() / limit.emission_interval().as_nanos()) as u64;
            prop_assert!(admitted <= allowance, "{admitted} > {allowance} after {elapsed:?}");
        }
    }
}

/// Sends a request from `peer` to a service that answers `status`.
async fn answered(layer: &RateLimitLayer, peer: &str, status: StatusCode) -> Response {
    let service = layer.layer(service_fn(move |_: Request<Body>| async move {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    }));
    let mut request = Request::new(Body::empty());
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    service.oneshot(request).await.unwrap()
}

fn failures_per_minute(count: u32) -> Policy {
    Policy::new("auth-failures", Limit::per_minute(count), KeyBy::ClientIp)
        .unwrap()
        .charge(Charge::FailedAuthentication)
}

#[tokio::test]
async fn a_failure_policy_charges_only_unauthorized_answers() {
    let clock = FakeRelativeClock::default();
    let limits = layer(vec![failures_per_minute(3)], &clock);
    for _ in 0..20 {
        let ok = answered(&limits, "1.1.1.1:1", StatusCode::OK).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(
            ok.headers().get("ratelimit").is_none(),
            "not counted, not shown"
        );
        assert_eq!(
            answered(&limits, "1.1.1.1:1", StatusCode::FORBIDDEN)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
    }
    for _ in 0..3 {
        let failed = answered(&limits, "1.1.1.1:1", StatusCode::UNAUTHORIZED).await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    // The budget is spent: every request from that address waits, whatever it carries.
    let refused = answered(&limits, "1.1.1.1:1", StatusCode::OK).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "20");
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"auth-failures\";q=3;w=60"
    );
    assert_eq!(
        answered(&limits, "2.2.2.2:1", StatusCode::UNAUTHORIZED)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "per address"
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        answered(&limits, "1.1.1.1:1", StatusCode::OK)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_failure_policy_charges_answers_marked_as_failed_authentications() {
    let clock = FakeRelativeClock::default();
    let limits = layer(vec![failures_per_minute(2)], &clock);
    let service = limits.layer(service_fn(|_: Request<Body>| async {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
            .extensions_mut()
            .insert(super::AuthenticationFailed);
        Ok::<_, Infallible>(response)
    }));
    for _ in 0..2 {
        let mut request = Request::new(Body::empty());
        request
            .extensions_mut()
            .insert("1.1.1.1:1".parse::<SocketAddr>().unwrap());
        let marked = service.clone().oneshot(request).await.unwrap();
        assert_eq!(marked.status(), StatusCode::SWITCHING_PROTOCOLS);
    }
    let refused = answered(&limits, "1.1.1.1:1", StatusCode::OK).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn failures_in_flight_at_once_overdraw_the_budget_and_pay_it_back_by_waiting() {
    let clock = FakeRelativeClock::default();
    let limits = layer(vec![failures_per_minute(2)], &clock);
    // Four failures decided before any was charged (concurrent requests): all pass …
    let everyone_decided = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let service = limits.layer(service_fn(move |_: Request<Body>| {
        let everyone_decided = everyone_decided.clone();
        async move {
            everyone_decided.wait().await;
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok::<_, Infallible>(response)
        }
    }));
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let mut request = Request::new(Body::empty());
        request
            .extensions_mut()
            .insert("1.1.1.1:1".parse::<SocketAddr>().unwrap());
        in_flight.push(service.clone().oneshot(request));
    }
    for response in futures_util::future::join_all(in_flight).await {
        assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // … then the overdraft (two cells beyond the burst) costs two intervals of 30 s more.
    let refused = answered(&limits, "1.1.1.1:1", StatusCode::OK).await;
    assert_eq!(header(&refused, "retry-after"), "90");
    clock.advance(Duration::from_secs(90));
    assert_eq!(
        answered(&limits, "1.1.1.1:1", StatusCode::OK)
            .await
            .status(),
        StatusCode::OK
    );
}
