//! Noticing a bus that stopped delivering without saying so.
//!
//! A subscription over a half-open connection (a silent partition, a stopped server or
//! backend) neither delivers nor fails. [`watch`] publishes a heartbeat every interval and
//! returns an error once the subscription has delivered nothing for [`HEARTBEAT_MISSES`]
//! intervals; the subscription loop then abandons the connection and treats the bus as down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::{Body, BusError, HEARTBEAT_MISSES, InvalidationBus, Message};

/// When a subscription last delivered anything.
#[derive(Debug)]
pub(crate) struct Liveness {
    epoch: Instant,
    /// Milliseconds after `epoch`.
    heard: AtomicU64,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            heard: AtomicU64::new(0),
        }
    }

    /// Something arrived (or a new subscription starts, which gets a full deadline).
    pub(crate) fn heard_now(&self) {
        self.heard.store(self.millis(), Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(
            self.millis()
                .saturating_sub(self.heard.load(Ordering::Relaxed)),
        )
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Publishes a heartbeat from `origin` every `interval` until the subscription behind
/// `liveness` has been silent for [`HEARTBEAT_MISSES`] intervals, then returns why.
pub(crate) async fn watch(
    bus: &dyn InvalidationBus,
    liveness: &Liveness,
    origin: u64,
    interval: Duration,
) -> BusError {
    let deadline = interval * HEARTBEAT_MISSES;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    loop {
        ticks.tick().await;
        let silence = liveness.silent_for();
        if silence >= deadline {
            return BusError::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "nothing heard on the bus for {silence:?}, not even this instance's heartbeats"
                ),
            ));
        }
        sequence = sequence.wrapping_add(1);
        let message = Message {
            origin,
            body: Body::Heartbeat(sequence),
        };
        // A publish stuck on a half-open connection must not hold up the next check; its
        // failure needs no report of its own, the silence that follows is the report.
        let _ = tokio::time::timeout(interval, bus.publish(&message.to_string())).await;
    }
}
