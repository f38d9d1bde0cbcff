//! One relay batch: claim aggregates, read their lowest unsent rows, publish, mark sent —
//! all inside one transaction whose advisory locks keep other relays off the aggregates.

use std::collections::BTreeMap;
use std::time::Instant;

use ltf_schemas::EncodedEvent;
use metrics::{counter, histogram};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Connection, FromRow, PgConnection};
use uuid::Uuid;

use crate::metrics::{labels, RELAY_BATCH_DURATION_SECONDS, RELAY_PUBLISHED_TOTAL};
use crate::relay::{RelayConfig, RelayError};
use ltf_kafka::EventPublisher;

/// First key of the two-key advisory locks the relay takes: ("ltf_" as an i32), so they
/// do not collide with other users of advisory locks in the same database.
const LOCK_SPACE: i32 = 0x6c74_665f;

/// The aggregates with unsent rows, oldest first, that no other relay holds; each claimed
/// one stays locked until the batch's transaction ends.
const CLAIM: &str = "
    WITH candidates AS MATERIALIZED (
        SELECT aggregate_type, aggregate_id, min(id) AS first_id
        FROM ltf_outbox
        WHERE sent_at IS NULL
        GROUP BY aggregate_type, aggregate_id
        ORDER BY first_id
        LIMIT $1)
    SELECT aggregate_type, aggregate_id
    FROM candidates
    WHERE pg_try_advisory_xact_lock($2, hashtext(aggregate_type || '/' || aggregate_id))
    ORDER BY first_id";

/// The lowest unsent sequences of the claimed aggregates. Ordering by sequence across
/// aggregates means the rows taken of each aggregate are a prefix of its unsent rows,
/// whatever the limit cuts off. This statement runs after the locks were taken, so it
/// sees every row a previous holder marked sent.
const ROWS: &str = "
    SELECT id, event_id, event_type, topic, key, value, headers
    FROM ltf_outbox
    WHERE sent_at IS NULL
      AND (aggregate_type, aggregate_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
    ORDER BY aggregate_sequence, aggregate_type, aggregate_id
    LIMIT $3";

#[derive(FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    event_type: String,
    topic: String,
    key: String,
    value: Vec<u8>,
    headers: Json<serde_json::Map<String, Value>>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Rows published and marked sent.
    pub published: usize,
    /// Aggregates claimed.
    pub aggregates: usize,
}

/// Runs one batch on `conn`. On any error the transaction rolls back: nothing is marked
/// sent and the locks are released.
pub(crate) async fn run_batch(
    conn: &mut PgConnection,
    publisher: &EventPublisher,
    config: &RelayConfig,
) -> Result<BatchReport, RelayError> {
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let claimed: Vec<(String, String)> =
        sqlx::query_as(CLAIM).bind(i64::from(config.max_aggregates)).bind(LOCK_SPACE).fetch_all(&mut *tx).await?;
    if claimed.is_empty() {
        return Ok(BatchReport::default());
    }
    let (types, ids): (Vec<String>, Vec<String>) = claimed.into_iter().unzip();
    let rows: Vec<Row> =
        sqlx::query_as(ROWS).bind(&types).bind(&ids).bind(i64::from(config.batch_size)).fetch_all(&mut *tx).await?;

    let messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
    for result in publisher.publish_encoded_batch(&messages).await {
        result?;
    }
    let sent: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("UPDATE ltf_outbox SET sent_at = now() WHERE id = ANY($1)").bind(&sent).execute(&mut *tx).await?;
    tx.commit().await?;

    let mut by_label: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for r in &rows {
        *by_label.entry((r.topic.as_str(), r.event_type.as_str())).or_default() += 1;
    }
    for ((topic, event_type), n) in by_label {
        counter!(RELAY_PUBLISHED_TOTAL, labels::TOPIC => topic.to_owned(), labels::EVENT_TYPE => event_type.to_owned())
            .increment(n);
    }
    histogram!(RELAY_BATCH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(BatchReport { published: rows.len(), aggregates: types.len() })
}

fn message(r: &Row) -> Result<EncodedEvent, RelayError> {
    let mut headers = Vec::with_capacity(r.headers.len());
    for (name, value) in r.headers.iter() {
        let Value::String(v) = value else {
            return Err(RelayError::MalformedRow {
                id: r.id,
                event_id: r.event_id,
                reason: format!("header {name} is not a string"),
            });
        };
        headers.push((name.clone(), v.clone()));
    }
    // A publish span in the row's trace; the message carries the span's context.
    if let Some(i) = headers.iter().position(|(name, _)| name == ltf_kafka::trace::TRACEPARENT) {
        let span = tracing::info_span!("relay_publish", event_id = %r.event_id, event_type = %r.event_type, topic = %r.topic,
            trace_id = tracing::field::Empty);
        ltf_kafka::trace::adopt(&span, Some(&headers[i].1));
        if let Some(tp) = ltf_kafka::trace::traceparent_of(&span, Some(&headers[i].1)) {
            headers[i].1 = tp;
        }
        let trace_id = ltf_kafka::trace::trace_id_of(&headers[i].1).unwrap_or_default().to_owned();
        span.in_scope(|| tracing::debug!(event_id = %r.event_id, trace_id, "publishing"));
    }
    Ok(EncodedEvent { topic: r.topic.clone(), key: r.key.clone(), value: r.value.clone(), headers })
}
