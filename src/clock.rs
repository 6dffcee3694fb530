//! Wall-clock time, injectable so that expiry can be tested without sleeping.
//!
//! Every timestamp portcullis stores or compares comes from a [`Clock`] and is truncated to
//! whole microseconds, the precision every supported store keeps, so a value read back from a
//! store compares equal to the value written.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
///
/// [`SystemClock`] is the default; tests use [`ManualClock`] to move time forward explicitly.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time, truncated to whole microseconds.
    fn now(&self) -> OffsetDateTime;

    /// The current time in microseconds since the Unix epoch: what the request path compares
    /// expiry against. Override it when the clock can answer more cheaply than [`now`](Self::now).
    fn now_micros(&self) -> i64 {
        to_micros(self.now())
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc())
    }

    fn now_micros(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => micros(since),
            // A clock before 1970 is broken; treating it as the epoch fails closed on expiry.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to, for tests.
///
/// ```
/// use std::time::Duration;
/// use portcullis::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
/// let before = clock.now();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!((clock.now() - before).whole_seconds(), 90);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            micros: AtomicI64::new(to_micros(start)),
        }
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.micros.fetch_add(micros(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: OffsetDateTime) {
        self.micros.store(to_micros(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        from_micros(self.micros.load(Ordering::SeqCst))
    }

    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}

/// Microseconds since the Unix epoch: the representation stores persist.
pub fn to_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos() / 1_000;
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`to_micros`]; values outside the representable range saturate.
pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(if micros < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        // Far beyond any token lifetime; only reachable from corrupt input.
        time::macros::datetime!(9999-12-31 23:59:59 UTC)
    })
}

fn truncate(at: OffsetDateTime) -> OffsetDateTime {
    from_micros(to_micros(at))
}

/// `duration` in microseconds, saturating at `i64::MAX` for absurd durations.
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// `at + by`, saturating instead of overflowing for absurd durations.
pub(crate) fn add(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    from_micros(to_micros(at).saturating_add(micros(by)))
}

/// `at - by`, saturating instead of overflowing for absurd durations.
pub(crate) fn sub(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    from_micros(to_micros(at).saturating_sub(micros(by)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_truncates_nanoseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let back = from_micros(to_micros(at));
        assert_eq!(back.unix_timestamp_nanos(), 1_700_000_000_123_456_000);
    }

    #[test]
    fn absurd_micros_saturate_instead_of_panicking() {
        assert_eq!(from_micros(i64::MIN), OffsetDateTime::UNIX_EPOCH);
        assert!(from_micros(i64::MAX).year() >= 9999);
    }

    #[test]
    fn system_clock_micros_agree_with_now() {
        let before = to_micros(SystemClock.now());
        let micros = SystemClock.now_micros();
        let after = to_micros(SystemClock.now());
        assert!(before <= micros && micros <= after);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let first = clock.now();
        assert_eq!(clock.now(), first);
        clock.advance(Duration::from_millis(1500));
        assert_eq!((clock.now() - first).whole_milliseconds(), 1500);
    }
}
