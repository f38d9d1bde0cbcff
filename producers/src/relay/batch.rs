//! One relay batch: claim aggregates, read their lowest unsent rows, publish, mark sent —
//! all inside one transaction whose advisory locks keep other relays off the aggregates.

use std::collections::BTreeMap;
use std::time::Instant;

use ltf_domain::outbox::{self, UnsentRow};
use ltf_schemas::EncodedEvent;
use metrics::{counter, histogram};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::metrics::{labels, RELAY_BATCH_DURATION_SECONDS, RELAY_PUBLISHED_TOTAL};
use crate::relay::{RelayConfig, RelayError};
use ltf_kafka::EventPublisher;

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
    let claimed = outbox::claim_aggregates(&mut tx, config.max_aggregates).await?;
    if claimed.is_empty() {
        return Ok(BatchReport::default());
    }
    let rows = outbox::unsent_rows(&mut tx, &claimed, config.batch_size).await?;

    let messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
    for result in publisher.publish_encoded_batch(&messages).await {
        result?;
    }
    let sent: Vec<i64> = rows.iter().map(|r| r.id).collect();
    outbox::mark_sent(&mut tx, &sent).await?;
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
    Ok(BatchReport { published: rows.len(), aggregates: claimed.len() })
}

fn message(r: &UnsentRow) -> Result<EncodedEvent, RelayError> {
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
