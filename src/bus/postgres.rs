//! The PostgreSQL `LISTEN/NOTIFY` bus.

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{BusError, DEFAULT_CHANNEL, InvalidationBus, Subscriber};

/// Invalidations over PostgreSQL `NOTIFY`, for instances that already share a database:
/// no extra service to run.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) {
/// use portcullis::{Auth, bus::PostgresBus, store::PostgresStore};
///
/// let store = PostgresStore::from_pool(pool.clone()).await.unwrap();
/// let auth = Auth::builder(store).invalidation_bus(PostgresBus::new(pool)).build();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresBus {
    pool: PgPool,
    channel: String,
}

impl PostgresBus {
    /// A bus on the default channel of the database behind `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            channel: DEFAULT_CHANNEL.to_owned(),
        }
    }

    /// Uses another channel (instances only hear others on the same channel).
    #[must_use]
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }
}

#[async_trait]
impl InvalidationBus for PostgresBus {
    async fn publish(&self, message: &str) -> Result<(), BusError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(message)
            .execute(&self.pool)
            .await
            .map_err(BusError::new)?;
        Ok(())
    }

    async fn subscribe(&self, subscriber: &Subscriber) -> Result<(), BusError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(BusError::new)?;
        listener
            .listen(&self.channel)
            .await
            .map_err(BusError::new)?;
        subscriber.connected();
        loop {
            // `None` means the connection dropped. The listener could reconnect by itself, but
            // notifications sent in between are lost, so report the outage instead: the
            // caller empties the cache when the next subscription is in place.
            match listener.try_recv().await.map_err(BusError::new)? {
                Some(notification) => subscriber.deliver(notification.payload()),
                None => {
                    return Err(BusError::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "LISTEN connection lost",
                    )));
                }
            }
        }
    }
}
