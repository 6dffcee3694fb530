//! The [`CounterStore`] requirements.

use std::sync::Arc;

use super::support::*;
use crate::store::*;

/// Counters consume within a limit per window.
pub async fn counters_consume_within_a_limit_per_window(stores: Stores) {
    let Stores { counters, .. } = stores;
    use crate::store::Consumption::{Allowed, Exceeded};
    let day = |n: i64| at(n * 86_400);
    let key = "quota:user:1:messages";
    assert_eq!(counters.counter(key, day(0)).await.unwrap(), 0);
    assert_eq!(
        counters.consume(key, day(0), 3, 5).await.unwrap(),
        Allowed { total: 3 }
    );
    assert_eq!(
        counters.consume(key, day(0), 2, 5).await.unwrap(),
        Allowed { total: 5 }
    );
    assert_eq!(
        counters.consume(key, day(0), 1, 5).await.unwrap(),
        Exceeded { total: 5 }
    );
    assert_eq!(
        counters.counter(key, day(0)).await.unwrap(),
        5,
        "a refusal adds nothing"
    );
    // Other keys count on their own.
    assert_eq!(
        counters
            .consume("quota:user:2:messages", day(0), 1, 5)
            .await
            .unwrap(),
        Allowed { total: 1 }
    );
    // A new window starts from zero; the old one is gone.
    assert_eq!(
        counters.consume(key, day(1), 1, 5).await.unwrap(),
        Allowed { total: 1 }
    );
    assert_eq!(counters.counter(key, day(1)).await.unwrap(), 1);
    // A late caller still in the previous window counts in the newest one.
    assert_eq!(
        counters.consume(key, day(0), 1, 5).await.unwrap(),
        Allowed { total: 2 }
    );
    assert_eq!(
        counters.counter(key, day(2)).await.unwrap(),
        0,
        "nothing counted yet on day 2"
    );
    // Limits and amounts at the edges.
    assert_eq!(
        counters.consume("edge", day(0), 0, 0).await.unwrap(),
        Allowed { total: 0 }
    );
    // Counters saturate at i64::MAX, the largest value every store can hold.
    let max = i64::MAX as u64;
    assert_eq!(
        counters
            .consume("edge", day(0), u64::MAX, u64::MAX)
            .await
            .unwrap(),
        Allowed { total: max }
    );
    assert_eq!(
        counters.consume("edge", day(0), 1, u64::MAX).await.unwrap(),
        Exceeded { total: max }
    );
    for bad in ["", "nul\0key"] {
        assert!(matches!(
            counters.consume(bad, day(0), 1, 5).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
    assert!(matches!(
        counters.consume(&"k".repeat(257), day(0), 1, 5).await,
        Err(StoreError::InvalidInput(_))
    ));
}

/// Concurrent consumption never passes the limit.
pub async fn concurrent_consumption_never_passes_the_limit(stores: Stores) {
    let Stores { counters, .. } = stores;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let counters = Arc::clone(&counters);
            tokio::spawn(async move { counters.consume("daily", at(0), 1, 20).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(matches!(
            task.await.unwrap(),
            crate::store::Consumption::Allowed { .. }
        ));
    }
    assert_eq!(allowed, 20);
    assert_eq!(counters.counter("daily", at(0)).await.unwrap(), 20);
}
