//! Rate limiting on the same in-memory policy (per peer IP, never refusing, headers on),
//! portcullis's `RateLimitLayer` against `tower_governor`, with bare axum as the baseline, in one
//! run.
//!
//! ```sh
//! cd peers && cargo bench --bench rate_limit
//! ```

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use portcullis::ratelimit::{ClientIp, KeyBy, Limit, Policy, RateLimitLayer};
use tower::{Service, ServiceExt};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

fn request() -> Request<Body> {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40_000))));
    request
}

fn routers() -> [(&'static str, Router); 3] {
    let bare = Router::new().route("/", get(|| async { "ok" }));
    // One request per nanosecond with a burst of a million: the policy never refuses, so both
    // middlewares do the full bookkeeping on every request.
    let portcullis = RateLimitLayer::builder()
        .policy(
            Policy::new(
                "ip",
                Limit::new(1_000_000_000, Duration::from_secs(1)).burst(1_000_000),
                KeyBy::ClientIp,
            )
            .unwrap(),
        )
        .client_ip(ClientIp::new(|parts| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0)
        }))
        .build()
        .unwrap();
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000)
        .key_extractor(PeerIpKeyExtractor)
        .use_headers()
        .finish()
        .unwrap();
    [
        ("bare_axum", bare.clone()),
        ("portcullis_rate_limit", bare.clone().layer(portcullis)),
        ("tower_governor", bare.layer(GovernorLayer::new(config))),
    ]
}

fn rate_limit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("rate_limit");
    for (name, router) in routers() {
        let mut service = router.into_service::<Body>();
        let status = runtime.block_on(async {
            service
                .ready()
                .await
                .unwrap()
                .call(request())
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let mut service = service.clone();
                let request = request();
                async move { black_box(service.ready().await.unwrap().call(request).await.unwrap()) }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = rate_limit
}
criterion_main!(benches);
