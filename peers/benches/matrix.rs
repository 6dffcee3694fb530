//! Every scenario of `portcullis_peers::scenarios` in one run (one request through a reused
//! service each), then the cost of a cached API key as the store grows from a thousand to a
//! million keys.
//!
//! ```sh
//! ./scripts/bench.sh                       # this, the load test, and BENCHMARKS.md
//! cd peers && cargo bench --bench matrix   # this alone
//! ```
//!
//! `PORTCULLIS_TEST_POSTGRES_URL` adds the uncached PostgreSQL row (required when `CI=true`).
//! `PORTCULLIS_BENCH_MAX_KEYS` caps the scaling series (default 1 000 000; 1 000 under
//! `cargo test --benches`).

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, header};
use portcullis::source::TokenResolver;
use portcullis::store::MemoryStore;
use portcullis::{CacheConfig, guard::RequireLayer};
use portcullis_peers::scenario::{CLIENT, IN_PROCESS_ONLY};
use portcullis_peers::{Env, fixture, scenarios, stored_keys};
use tower::{Service, ServiceExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Criterion runs each benchmark once, as a test, unless `cargo bench` passes `--bench`.
fn test_mode() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

fn postgres_url() -> Option<String> {
    match std::env::var("PORTCULLIS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "PORTCULLIS_TEST_POSTGRES_URL is not set and CI=true: the PostgreSQL row must run"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED: portcullis_api_key_postgres (PORTCULLIS_TEST_POSTGRES_URL is not set)"
            );
            None
        }
    }
}

fn request_matrix(c: &mut Criterion) {
    let runtime = runtime();
    let data = tempfile::tempdir().expect("a temporary directory");
    let env = Env {
        postgres_url: postgres_url(),
        data_dir: data.path().to_owned(),
    };
    let all = runtime.block_on(scenarios(&env));
    let mut group = c.benchmark_group("request");
    for scenario in &all {
        let mut service = scenario.router.clone().into_service::<Body>();
        // The first request fills the caches; the loop measures the steady state.
        let status = runtime.block_on(async {
            let ready = service.ready().await.expect("infallible");
            ready
                .call(scenario.request())
                .await
                .expect("infallible")
                .status()
        });
        assert_eq!(
            status, 200,
            "{} must let its request through",
            scenario.name
        );
        group.bench_function(scenario.name, |b| {
            b.to_async(&runtime).iter(|| {
                let mut service = service.clone();
                let request = scenario.request();
                async move {
                    let ready = service.ready().await.expect("infallible");
                    black_box(ready.call(request).await.expect("infallible"))
                }
            })
        });
    }
    group.finish();
}

/// A JWT never seen before on every request: tokens are issued outside the timed loop.
fn first_seen(c: &mut Criterion) {
    let runtime = runtime();
    let (fixture, router) = runtime.block_on(async {
        let fixture = fixture(MemoryStore::new(), CacheConfig::default()).await;
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(fixture.jwt_layers(&fixture.hs256, RequireLayer::authenticated()));
        (fixture, router)
    });
    let service = router.into_service::<Body>();
    let (name, ..) = IN_PROCESS_ONLY[0];
    let mut group = c.benchmark_group("request");
    // Building the request (issuing its token) is setup, outside the timing; small batches
    // keep the pending requests in cache, as a server's would be.
    group.bench_function(name, |b| {
        b.to_async(&runtime).iter_batched(
            || {
                let token = fixture
                    .hs256
                    .issue(&fixture.user, None)
                    .expect("a token")
                    .token
                    .into_exposed();
                let mut request = Request::get("/")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .expect("a request");
                request.extensions_mut().insert(ConnectInfo(CLIENT));
                (service.clone(), request)
            },
            |(mut service, request)| async move {
                let ready = service.ready().await.expect("infallible");
                let response = ready.call(request).await.expect("infallible");
                debug_assert_eq!(response.status(), 200);
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A cached API key among `total` stored keys, with up to 90 000 of them in the cache.
fn scaling(c: &mut Criterion) {
    let runtime = runtime();
    let max: usize = std::env::var("PORTCULLIS_BENCH_MAX_KEYS")
        .ok()
        .and_then(|max| max.parse().ok())
        .unwrap_or(if test_mode() { 1_000 } else { 1_000_000 });
    let mut group = c.benchmark_group("stored_keys");
    for total in [1_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
    {
        let (router, keys) = runtime.block_on(async {
            let fixture = fixture(MemoryStore::new(), CacheConfig::default()).await;
            let keys = stored_keys(&fixture, total, total.min(90_000)).await;
            for key in &keys {
                fixture.api_keys.resolve(key).await.expect("a valid key");
            }
            let router = axum::Router::new()
                .route("/", axum::routing::get(|| async { "ok" }))
                .layer(fixture.api_key_layers(RequireLayer::authenticated()));
            (router, keys)
        });
        let headers: Vec<HeaderValue> = keys
            .iter()
            .take(1_024)
            .map(|key| HeaderValue::from_str(&format!("Bearer {key}")).expect("a header"))
            .collect();
        let service = router.into_service::<Body>();
        let next = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("api_key_cached", total), &total, |b, _| {
            b.to_async(&runtime).iter(|| {
                let mut service = service.clone();
                let n = next.fetch_add(1, Ordering::Relaxed) % headers.len();
                let mut request = Request::get("/")
                    .header(header::AUTHORIZATION, headers[n].clone())
                    .body(Body::empty())
                    .expect("a request");
                request.extensions_mut().insert(ConnectInfo(CLIENT));
                async move {
                    let ready = service.ready().await.expect("infallible");
                    let response = ready.call(request).await.expect("infallible");
                    debug_assert_eq!(response.status(), 200);
                    black_box(response)
                }
            })
        });
    }
    group.finish();
}

/// One `SELECT 1` through a sqlx pool of each database: the round trip a cache miss cannot
/// beat, against which the uncached rows are read.
fn round_trips(c: &mut Criterion) {
    let runtime = runtime();
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("round_trip");
    let sqlite = runtime.block_on(async {
        let url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("select.db").display()
        );
        sqlx::sqlite::SqlitePoolOptions::new()
            .connect(&url)
            .await
            .expect("a SQLite database")
    });
    group.bench_function("sqlite_select_1", |b| {
        b.to_async(&runtime).iter(|| async {
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&sqlite)
                .await
                .expect("one");
            black_box(one)
        })
    });
    if let Some(url) = postgres_url() {
        let postgres = runtime.block_on(async {
            sqlx::postgres::PgPoolOptions::new()
                .connect(&url)
                .await
                .expect("the PostgreSQL server")
        });
        group.bench_function("postgres_select_1", |b| {
            b.to_async(&runtime).iter(|| async {
                let one: i32 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(&postgres)
                    .await
                    .expect("one");
                black_box(one)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = request_matrix, first_seen, round_trips, scaling
}
criterion_main!(benches);
