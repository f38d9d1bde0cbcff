use thiserror::Error;

use ltf_kafka::PublishError;

/// Why a relay batch or the relay failed. A failed batch is rolled back: nothing of it is
/// marked sent, and it is published again later.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A setting is invalid.
    #[error("relay config: {key}: {reason}")]
    Config {
        /// The bad key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading or updating the outbox failed.
    #[error("relay database: {0}")]
    Db(#[from] sqlx::Error),

    /// Kafka did not acknowledge a row.
    #[error("relay publish: {0}")]
    Publish(#[from] PublishError),

    /// Every relay slot is taken by a live relay (see `RelayConfig::max_relays`).
    #[error("all {max_relays} relay slots are taken by running relays (raise max_relays)")]
    NoSlot {
        /// The number of slots.
        max_relays: u32,
    },

    /// A stored row is not a publishable message (its headers are not a JSON object of
    /// strings); it stays unsent and blocks its aggregate until repaired.
    #[error("outbox row {id} ({event_id}) is malformed: {reason}")]
    MalformedRow {
        /// The row id.
        id: i64,
        /// Its eventId.
        event_id: uuid::Uuid,
        /// What is wrong.
        reason: String,
    },
}

impl RelayError {
    /// The bounded `reason` label of [`crate::metrics::RELAY_FAILURES_TOTAL`].
    pub fn reason(&self) -> &'static str {
        match self {
            RelayError::Config { .. } => "config",
            RelayError::Db(_) => "database",
            RelayError::Publish(_) => "kafka",
            RelayError::MalformedRow { .. } => "malformed_row",
            RelayError::NoSlot { .. } => "no_slot",
        }
    }
}
