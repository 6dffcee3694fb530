//! [`Outbox`]: mail sent off the request path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Email, Mailer};

/// How often a message is tried when the server is unavailable, and the first pause between
/// tries (doubling each time).
const TRIES: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// A queue in front of a [`Mailer`], drained by a background task.
///
/// [`send`](Self::send) never waits: an endpoint that mails (a sign-in link, a reset link)
/// answers in the same time whether or not the address has an account, and however slow
/// or broken the mail server is. A transient failure is retried twice with a pause that
/// doubles; failures are logged with the message's kind and the recipient's domain only.
/// Messages still queued when the last `Outbox` clone is dropped are sent before the task
/// ends, as long as the runtime lives.
#[derive(Clone, Debug)]
pub struct Outbox {
    queue: mpsc::Sender<Email>,
}

/// The outbox holds as many messages as it was given room for: this one was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the mail outbox is full; the message was dropped")]
pub struct OutboxFull;

impl Outbox {
    /// Starts the background task on the current Tokio runtime, with room for `capacity`
    /// messages waiting (at least one).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(mailer: impl Mailer, capacity: usize) -> Self {
        let (queue, messages) = mpsc::channel(capacity.max(1));
        tokio::spawn(deliver(Arc::new(mailer), messages));
        Self { queue }
    }

    /// Queues `email` and returns at once; [`OutboxFull`] when the queue is full.
    pub fn send(&self, email: Email) -> Result<(), OutboxFull> {
        self.queue.try_send(email).map_err(|_| OutboxFull)
    }
}

async fn deliver(mailer: Arc<dyn Mailer>, mut messages: mpsc::Receiver<Email>) {
    while let Some(email) = messages.recv().await {
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=TRIES {
            match mailer.send(&email).await {
                Ok(()) => break,
                Err(error) if error.is_transient() && attempt < TRIES => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(error) => {
                    tracing::warn!(
                        target: "portcullis::mail",
                        kind = email.kind,
                        domain = email.recipient_domain(),
                        attempt,
                        %error,
                        "mail not delivered"
                    );
                    break;
                }
            }
        }
    }
}
