//! The whole outbox, row by row, for tools that audit it against the topics (the chaos
//! harness): every row without its value, and the values of chosen rows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// An outbox row, without its value.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InventoryRow {
    /// The row id (the relay's order within an aggregate follows the sequence).
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type string.
    pub event_type: String,
    /// The aggregate.
    pub aggregate_id: String,
    /// The event's place in its aggregate.
    pub aggregate_sequence: i64,
    /// When the relay published it, if it did.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the relay parked it (Kafka refused it for good), if it did.
    pub parked_at: Option<DateTime<Utc>>,
    /// Why it was parked.
    pub park_reason: Option<String>,
    /// When an operator skipped it (a recorded gap), if one did.
    pub skipped_at: Option<DateTime<Utc>>,
}

/// Every row of the outbox, by id.
pub async fn inventory(pool: &PgPool) -> Result<Vec<InventoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_id, event_type, aggregate_id, aggregate_sequence, sent_at, parked_at, park_reason, skipped_at
         FROM ltf_outbox ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// The encoded values (the Kafka message value) of the rows `ids`, by id.
pub async fn values(pool: &PgPool, ids: &[i64]) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, value FROM ltf_outbox WHERE id = ANY($1) ORDER BY id").bind(ids).fetch_all(pool).await
}
