//! Cross-instance cache invalidation.
//!
//! Every instance keeps its own credential cache. When one instance revokes a key, ends a
//! session or changes a user, it publishes an [`Invalidation`] on a bus; every other instance
//! applies it to its cache, so a revoked credential stops working everywhere within the bus's
//! latency rather than the cache TTL.
//!
//! Buses: [`PostgresBus`] (`LISTEN/NOTIFY`, feature `postgres`) and [`RedisBus`] (pub/sub,
//! feature `redis`), or your own [`InvalidationBus`].
//!
//! A bus can go down. Messages sent meanwhile are lost, so on every (re)connection the local
//! cache is emptied. While it is down, [`WhenBusDown`] decides: bypass the cache (every
//! request asks the store: always correct, more load) or keep serving cached credentials (at
//! most one cache TTL stale). Outages are logged once when they start and once when they end.
//!
//! A connection can also die silently: after a network partition, or with the server or this
//! instance's backend stopped, no error ever arrives and a subscription would wait forever. So
//! every instance publishes a heartbeat each [`DEFAULT_HEARTBEAT`] (see
//! [`AuthBuilder::bus_heartbeat`](crate::AuthBuilder::bus_heartbeat)) and counts the bus as
//! down once it has heard nothing, its own heartbeats included, for [`HEARTBEAT_MISSES`]
//! intervals. TCP keepalive alone would not do: a stopped peer's kernel still answers the
//! probes, and Linux waits two hours before the first one.

pub(crate) mod heartbeat;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "postgres")]
pub use postgres::PostgresBus;
#[cfg(feature = "redis")]
pub use redis::RedisBus;

use crate::cache::{CacheKey, Domain};
use crate::store::{FamilyId, UserId};
use crate::token::TokenDigest;

/// The channel name buses use unless configured otherwise.
pub const DEFAULT_CHANNEL: &str = "portcullis_invalidation";

/// How often an instance publishes a heartbeat on its bus unless configured otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// How many heartbeat intervals of silence make an instance count its bus as down.
pub const HEARTBEAT_MISSES: u32 = 3;

/// How long publishing an invalidation may take before the instance gives up on it, so that a
/// revocation never hangs on a stalled bus. The change is already in the store and in this
/// instance's cache; the other instances' own heartbeats notice the stall.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Carries invalidation messages between instances.
///
/// Messages are short opaque strings; a bus only moves them. [`subscribe`](Self::subscribe)
/// runs for as long as the subscription lives and returns (with an error) when it breaks; the
/// caller reconnects with back-off, and also abandons a subscription that delivers nothing,
/// not even the heartbeats, for [`HEARTBEAT_MISSES`] heartbeat intervals.
#[async_trait]
pub trait InvalidationBus: Send + Sync + 'static {
    /// Sends `message` to every subscribed instance, this one included: an instance knows
    /// its subscription works by hearing its own heartbeats.
    async fn publish(&self, message: &str) -> Result<(), BusError>;

    /// Subscribes, calls [`Subscriber::connected`] once the subscription is in place, then
    /// [`Subscriber::deliver`] for every message, until the subscription fails.
    async fn subscribe(&self, subscriber: &Subscriber) -> Result<(), BusError>;
}

#[async_trait]
impl<B: InvalidationBus + ?Sized> InvalidationBus for Box<B> {
    async fn publish(&self, message: &str) -> Result<(), BusError> {
        (**self).publish(message).await
    }

    async fn subscribe(&self, subscriber: &Subscriber) -> Result<(), BusError> {
        (**self).subscribe(subscriber).await
    }
}

#[async_trait]
impl<B: InvalidationBus + ?Sized> InvalidationBus for std::sync::Arc<B> {
    async fn publish(&self, message: &str) -> Result<(), BusError> {
        (**self).publish(message).await
    }

    async fn subscribe(&self, subscriber: &Subscriber) -> Result<(), BusError> {
        (**self).subscribe(subscriber).await
    }
}

/// A bus failure.
#[derive(Debug, thiserror::Error)]
#[error("invalidation bus: {0}")]
pub struct BusError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl BusError {
    /// Wraps a transport error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// What an instance does with its cache while its bus is down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenBusDown {
    /// Fail closed (default): ignore the cache and ask the store on every request until the
    /// bus is back. Revocations elsewhere take effect at once; the store carries all the load.
    #[default]
    BypassCache,
    /// Fail open: keep serving cached credentials, each for at most the cache TTL. Revocations
    /// made elsewhere during the outage take effect only when the entry expires.
    ServeFromCache,
}

/// Something other instances must drop from their caches.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// Every credential of a user (deactivation, role or password change, logout of all
    /// sessions).
    User(UserId),
    /// Every credential of a session (logout, refresh-token reuse).
    Session(FamilyId),
    /// One credential (a revoked API key).
    Credential(CredentialKey),
}

/// Identifies one cached credential without revealing it: which resolver, and the SHA-256 of
/// the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialKey(pub(crate) CacheKey);

/// A decoded bus message: who sent it and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) origin: u64,
    pub(crate) body: Body,
}

/// What a bus message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Drop something from the cache.
    Invalidate(Invalidation),
    /// The sender is alive and its subscription should hear this: the sequence number only
    /// tells heartbeats apart when debugging.
    Heartbeat(u64),
}

impl fmt::Display for Message {
    /// `<origin hex> u <user id>`, `<origin> s <session>`, `<origin> k <domain> <digest hex>`,
    /// `<origin> h <sequence>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x} ", self.origin)?;
        let invalidation = match &self.body {
            Body::Heartbeat(sequence) => return write!(f, "h {sequence}"),
            Body::Invalidate(invalidation) => invalidation,
        };
        match invalidation {
            Invalidation::User(id) => write!(f, "u {id}"),
            Invalidation::Session(family) => write!(f, "s {family}"),
            Invalidation::Credential(CredentialKey(key)) => {
                let domain = match key.domain() {
                    Domain::ApiKey => 'a',
                    Domain::AccessToken => 'j',
                    Domain::Session => 'c',
                };
                write!(f, "k {domain} {}", key.digest().to_hex())
            }
        }
    }
}

impl FromStr for Message {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let mut parts = text.splitn(3, ' ');
        let origin = u64::from_str_radix(parts.next().ok_or(())?, 16).map_err(|_| ())?;
        let kind = parts.next().ok_or(())?;
        let rest = parts.next().ok_or(())?;
        let invalidation = match kind {
            "h" => {
                return Ok(Self {
                    origin,
                    body: Body::Heartbeat(rest.parse().map_err(|_| ())?),
                });
            }
            "u" => Invalidation::User(rest.parse().map_err(|_| ())?),
            "s" if !rest.is_empty() => Invalidation::Session(FamilyId::new(rest)),
            "k" => {
                let (domain, digest) = rest.split_once(' ').ok_or(())?;
                let domain = match domain {
                    "a" => Domain::ApiKey,
                    "j" => Domain::AccessToken,
                    "c" => Domain::Session,
                    _ => return Err(()),
                };
                let digest = TokenDigest::from_hex(digest).ok_or(())?;
                Invalidation::Credential(CredentialKey(CacheKey::new(domain, digest)))
            }
            _ => return Err(()),
        };
        Ok(Self {
            origin,
            body: Body::Invalidate(invalidation),
        })
    }
}

/// The receiving end a bus hands its messages to. Cheap to clone.
#[derive(Clone)]
pub struct Subscriber {
    pub(crate) inner: std::sync::Arc<dyn SubscriberSink>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscriber(..)")
    }
}

pub(crate) trait SubscriberSink: Send + Sync {
    fn connected(&self);
    fn deliver(&self, message: &str);
}

impl Subscriber {
    /// The subscription is in place: everything published from now on will be delivered.
    pub fn connected(&self) {
        self.inner.connected();
    }

    /// A message arrived. Malformed messages are ignored (and logged).
    pub fn deliver(&self, message: &str) {
        self.inner.deliver(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(invalidation: Invalidation) {
        round_trip_body(Body::Invalidate(invalidation));
    }

    fn round_trip_body(body: Body) {
        let message = Message {
            origin: 0xdead_beef,
            body,
        };
        assert_eq!(message.to_string().parse::<Message>(), Ok(message));
    }

    #[test]
    fn heartbeats_round_trip_through_the_wire_format() {
        round_trip_body(Body::Heartbeat(0));
        round_trip_body(Body::Heartbeat(u64::MAX));
    }

    #[test]
    fn every_invalidation_round_trips_through_the_wire_format() {
        round_trip(Invalidation::User(UserId(42)));
        round_trip(Invalidation::User(UserId(-1)));
        round_trip(Invalidation::Session(FamilyId::new("0123abcd")));
        let digest = TokenDigest::of("smtk_x");
        for domain in [Domain::ApiKey, Domain::AccessToken, Domain::Session] {
            round_trip(Invalidation::Credential(CredentialKey(CacheKey::new(
                domain, digest,
            ))));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for text in [
            "",
            "zz u 1",
            "01 u",
            "01 u x",
            "01 x 1",
            "01 k a 00",
            "01 k q 00",
            "01 s ",
            "01 h ",
            "01 h -1",
        ] {
            assert!(text.parse::<Message>().is_err(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,120}") {
            let _ = text.parse::<Message>();
        }
    }
}
