//! The audit worker: every event of every topic written once to the append-only event log
//! (`ltf_event_log`), with the dedup record in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ltf_schemas::EventType;
use sqlx::PgPool;
use uuid::Uuid;

use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Writes each event to the event log. A redelivered event finds its dedup record and
/// writes nothing; the log's primary key on eventId refuses a second row in any case.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditHandler;

#[async_trait]
impl Handler for AuditHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "event-log"
    }

    fn can_handle(&self, _event_type: EventType) -> bool {
        true
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let dedup = ctx.dedup_store()?;
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        let e = &event.event;
        let payload = serde_json::to_value(&e.payload).map_err(|err| HandlerError::permanent(ErrorClass::Serialize, err))?;
        sqlx::query(
            "INSERT INTO ltf_event_log (event_id, event_type, event_version, aggregate_type, aggregate_id,
                 aggregate_sequence, correlation_id, causation_id, payload, occurred_on, topic,
                 kafka_partition, kafka_offset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.event_id())
        .bind(e.event_type().as_str())
        .bind(e.envelope.version)
        .bind(e.aggregate_type().as_str())
        .bind(e.aggregate_id())
        .bind(e.envelope.aggregate_sequence)
        .bind(&e.envelope.correlation_id)
        .bind(&e.envelope.causation_id)
        .bind(payload)
        .bind(e.envelope.occurred_on)
        .bind(&*event.meta.topic)
        .bind(event.meta.partition)
        .bind(event.meta.offset)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One entry of an aggregate's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LogEntry {
    /// The eventId.
    pub event_id: Uuid,
    /// The event type string.
    pub event_type: String,
    /// The aggregateSequence.
    pub aggregate_sequence: i64,
    /// When it happened.
    pub occurred_on: DateTime<Utc>,
    /// When the audit worker wrote it.
    pub received_at: DateTime<Utc>,
    /// The correlation id.
    pub correlation_id: String,
    /// The causing event, if any.
    pub causation_id: Option<String>,
    /// The payload as JSON.
    pub payload: serde_json::Value,
}

/// The history of `aggregate_id` in aggregateSequence order, optionally from `since`.
pub async fn history(pool: &PgPool, aggregate_id: &str, since: Option<DateTime<Utc>>) -> Result<Vec<LogEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, event_type, aggregate_sequence, occurred_on, received_at, correlation_id, causation_id, payload
         FROM ltf_event_log
         WHERE aggregate_id = $1 AND ($2::timestamptz IS NULL OR occurred_on >= $2)
         ORDER BY aggregate_sequence, occurred_on",
    )
    .bind(aggregate_id)
    .bind(since)
    .fetch_all(pool)
    .await
}
