//! Parked rows: rows Kafka refused for good (too large for the topic, an invalid record,
//! a policy violation). The relay parks such a row instead of failing its batch forever;
//! the later rows of its aggregate wait behind it (order per aggregate holds) while other
//! aggregates flow. An operator lists the parked rows, retries one once the cause is
//! fixed (the topic's limit raised), or skips it: a skip is a recorded gap in the
//! aggregate's sequence (who, when, why), never published and never pruned.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// A parked or skipped row, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ParkedRow {
    /// The row id.
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type string.
    pub event_type: String,
    /// Its aggregate's type.
    pub aggregate_type: String,
    /// Its aggregate's id.
    pub aggregate_id: String,
    /// Its place in the aggregate's sequence.
    pub aggregate_sequence: i64,
    /// The topic it goes to.
    pub topic: String,
    /// Its encoded size in bytes.
    pub bytes: i32,
    /// When the relay parked it.
    pub parked_at: Option<DateTime<Utc>>,
    /// Why (Kafka's error).
    pub park_reason: Option<String>,
    /// When it was skipped, if it was.
    pub skipped_at: Option<DateTime<Utc>>,
    /// Who skipped it.
    pub skipped_by: Option<String>,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
}

const COLUMNS: &str = "id, event_id, event_type, aggregate_type, aggregate_id, aggregate_sequence, topic,
    octet_length(value) AS bytes, parked_at, park_reason, skipped_at, skipped_by, skip_reason";

/// Parks the row `id` with `reason` (inside the relay's batch transaction).
pub async fn park(conn: &mut PgConnection, id: i64, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ltf_outbox SET parked_at = now(), park_reason = $2 WHERE id = $1 AND sent_at IS NULL")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// The parked rows, oldest first.
pub async fn parked(pool: &PgPool) -> Result<Vec<ParkedRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ltf_outbox WHERE parked_at IS NOT NULL AND skipped_at IS NULL AND sent_at IS NULL ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// The skipped rows of `aggregate_id` (every aggregate type), by sequence: the gaps in
/// its history.
pub async fn skipped(pool: &PgPool, aggregate_id: &str) -> Result<Vec<ParkedRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ltf_outbox WHERE aggregate_id = $1 AND skipped_at IS NOT NULL ORDER BY aggregate_sequence"
    ))
    .bind(aggregate_id)
    .fetch_all(pool)
    .await
}

/// Unparks the parked row `id`: the relay tries it again. Returns whether it was parked.
pub async fn retry(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE ltf_outbox SET parked_at = NULL, park_reason = NULL
         WHERE id = $1 AND parked_at IS NOT NULL AND skipped_at IS NULL AND sent_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Skips the parked row `id`: it is never published, and the later rows of its aggregate
/// flow again. `by` and `reason` are recorded with the time. Returns whether it was parked.
pub async fn skip(pool: &PgPool, id: i64, by: &str, reason: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE ltf_outbox SET skipped_at = now(), skipped_by = $2, skip_reason = $3
         WHERE id = $1 AND parked_at IS NOT NULL AND skipped_at IS NULL AND sent_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
