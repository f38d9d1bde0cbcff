//! What `ltf dlq replay` re-published, in `ltf_dlq_replays` (one row per dead letter,
//! keyed by group, DLQ topic, partition and offset).

use std::collections::HashSet;

use anyhow::{Context, Result};
use sqlx::PgPool;

/// One replayed letter.
#[derive(Debug, Clone)]
pub struct Replayed<'a> {
    pub group: &'a str,
    pub dlq_topic: &'a str,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub event_id: Option<String>,
    pub error_class: String,
    pub retry_topic: &'a str,
    pub retry_partition: i32,
    pub retry_offset: i64,
}

/// The (partition, offset) of every letter of `dlq_topic` already replayed for `group`.
pub async fn already_replayed(pool: &PgPool, group: &str, dlq_topic: &str) -> Result<HashSet<(i32, i64)>> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT dlq_partition, dlq_offset FROM ltf_dlq_replays WHERE consumer_group = $1 AND dlq_topic = $2")
            .bind(group)
            .bind(dlq_topic)
            .fetch_all(pool)
            .await
            .context("reading ltf_dlq_replays (did `ltf migrate` run?)")?;
    Ok(rows.into_iter().collect())
}

/// Records a replay: a new row, or for a letter replayed before (`--again`) one more
/// replay with the new retry coordinates.
pub async fn record(pool: &PgPool, r: &Replayed<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO ltf_dlq_replays (consumer_group, dlq_topic, dlq_partition, dlq_offset, event_id, error_class,
             retry_topic, retry_partition, retry_offset)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (consumer_group, dlq_topic, dlq_partition, dlq_offset) DO UPDATE
         SET replays = ltf_dlq_replays.replays + 1, last_replayed_at = now(),
             retry_topic = EXCLUDED.retry_topic, retry_partition = EXCLUDED.retry_partition,
             retry_offset = EXCLUDED.retry_offset",
    )
    .bind(r.group)
    .bind(r.dlq_topic)
    .bind(r.dlq_partition)
    .bind(r.dlq_offset)
    .bind(&r.event_id)
    .bind(&r.error_class)
    .bind(r.retry_topic)
    .bind(r.retry_partition)
    .bind(r.retry_offset)
    .execute(pool)
    .await
    .context("recording the replay in ltf_dlq_replays")?;
    Ok(())
}
