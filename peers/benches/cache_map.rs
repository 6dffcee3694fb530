//! Which concurrent map should hold portcullis's credential cache? One hit on a warm cache of
//! 100 000 entries keyed like portcullis's (`(kind, SHA-256 digest)`), for each candidate the
//! benchmarks issue named: `moka` (`sync` and `future`), a sharded map (`dashmap`), and
//! `quick_cache`, which portcullis uses because it was the fastest bounded, scan-resistant one.
//!
//! ```sh
//! cargo bench --bench cache_map
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    kind: u8,
    digest: [u8; 32],
}

fn key(n: u64) -> Key {
    let mut digest = [0; 32];
    digest[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    digest[8..16].copy_from_slice(&n.to_le_bytes());
    Key { kind: 1, digest }
}

const ENTRIES: u64 = 100_000;

fn cache_hit(c: &mut Criterion) {
    let value = Arc::new(String::from("resolved identity"));
    let probe = key(4_242);
    let mut group = c.benchmark_group("cache_hit");

    let moka_sync = moka::sync::Cache::builder()
        .max_capacity(2 * ENTRIES)
        .time_to_live(Duration::from_secs(600))
        .build();
    (0..ENTRIES).for_each(|n| moka_sync.insert(key(n), Arc::clone(&value)));
    moka_sync.run_pending_tasks();
    group.bench_function("moka_sync", |b| {
        b.iter(|| black_box(moka_sync.get(black_box(&probe))))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let moka_future = moka::future::Cache::builder()
        .max_capacity(2 * ENTRIES)
        .time_to_live(Duration::from_secs(600))
        .build();
    runtime.block_on(async {
        for n in 0..ENTRIES {
            moka_future.insert(key(n), Arc::clone(&value)).await;
        }
        moka_future.run_pending_tasks().await;
    });
    group.bench_function("moka_future", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(moka_future.get(black_box(&probe)).await) })
    });

    let sharded = dashmap::DashMap::new();
    (0..ENTRIES).for_each(|n| {
        sharded.insert(key(n), Arc::clone(&value));
    });
    group.bench_function("dashmap", |b| {
        b.iter(|| black_box(sharded.get(black_box(&probe)).map(|v| Arc::clone(&v))))
    });

    let quick = quick_cache::sync::Cache::new(2 * ENTRIES as usize);
    (0..ENTRIES).for_each(|n| quick.insert(key(n), Arc::clone(&value)));
    group.bench_function("quick_cache", |b| {
        b.iter(|| black_box(quick.get(black_box(&probe))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = cache_hit
}
criterion_main!(benches);
