//! The Redis pub/sub bus.

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;

use super::{BusError, DEFAULT_CHANNEL, InvalidationBus, Subscriber};

/// Idle time before the first TCP keepalive probe, and the limit on unacknowledged data.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(15);

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
    ///
    /// Its connections send TCP keepalive probes after 15 s of silence and (on Linux) give up
    /// on data unacknowledged for 15 s, so that a vanished host is noticed by the kernel too; the
    /// heartbeat (see [`bus`](crate::bus)) covers a host that is there but not answering.
    pub fn open(url: &str) -> Result<Self, BusError> {
        use redis::IntoConnectionInfo;
        use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};

        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_IDLE / 3);
        let tcp = TcpSettings::default()
            .set_nodelay(true)
            .set_keepalive(keepalive);
        #[cfg(target_os = "linux")]
        let tcp = tcp.set_user_timeout(KEEPALIVE_IDLE);
        let info = url
            .into_connection_info()
            .map_err(BusError::new)?
            .set_tcp_settings(tcp);
        Ok(Self {
            client: redis::Client::open(info).map_err(BusError::new)?,
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
