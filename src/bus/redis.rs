//! The Redis pub/sub bus.

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;

use super::{BusError, DEFAULT_CHANNEL, InvalidationBus, Subscriber};

/// Invalidations over Redis pub/sub.
///
/// ```no_run
/// use portcullis::{Auth, bus::RedisBus, store::MemoryStore};
///
/// let bus = RedisBus::open("redis://127.0.0.1:6379").unwrap();
/// let auth = Auth::builder(MemoryStore::new()).invalidation_bus(bus).build();
/// ```
#[derive(Clone, Debug)]
pub struct RedisBus {
    client: redis::Client,
    channel: String,
    publisher: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl RedisBus {
    /// A bus on the Redis server at `url` (`redis://host:port/db`), on the default channel.
    /// Nothing connects until the bus is used.
    pub fn open(url: &str) -> Result<Self, BusError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(BusError::new)?,
            channel: DEFAULT_CHANNEL.to_owned(),
            publisher: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses another channel.
    #[must_use]
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }
}

#[async_trait]
impl InvalidationBus for RedisBus {
    async fn publish(&self, message: &str) -> Result<(), BusError> {
        let connection = self
            .publisher
            .get_or_try_init(|| redis::aio::ConnectionManager::new(self.client.clone()))
            .await
            .map_err(BusError::new)?;
        // A cheap handle to one multiplexed connection that reconnects after a failure.
        let mut connection = connection.clone();
        let _receivers: i64 = connection
            .publish(&self.channel, message)
            .await
            .map_err(BusError::new)?;
        Ok(())
    }

    async fn subscribe(&self, subscriber: &Subscriber) -> Result<(), BusError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(BusError::new)?;
        pubsub
            .subscribe(&self.channel)
            .await
            .map_err(BusError::new)?;
        subscriber.connected();
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            match message.get_payload::<String>() {
                Ok(payload) => subscriber.deliver(&payload),
                Err(error) => tracing::warn!(%error, "ignoring a non-text invalidation message"),
            }
        }
        Err(BusError::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "Redis subscription closed",
        )))
    }
}
