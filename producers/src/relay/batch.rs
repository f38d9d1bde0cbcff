//! One relay batch: claim aggregates, read their lowest unsent rows, publish, mark sent —
//! all inside one transaction whose advisory locks keep other relays off the aggregates.
//!
//! Per aggregate, in sequence order, the rows Kafka acknowledged are marked sent up to
//! the first that failed: a row Kafka refuses for good is parked (its later rows wait
//! behind it, other aggregates go on); after a failure that a retry may heal, the row and
//! the later rows of its aggregate stay unsent for the next batch, and the batch reports
//! the error once what was published is committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use ltf_domain::outbox::{self, UnsentRow};
use ltf_schemas::EncodedEvent;
use metrics::{counter, histogram};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tracing::warn;

use crate::metrics::{labels, RELAY_BATCH_DURATION_SECONDS, RELAY_PARKED_TOTAL, RELAY_PUBLISHED_TOTAL};
use crate::relay::{RelayConfig, RelayError};
use ltf_kafka::EventPublisher;

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Rows published and marked sent.
    pub published: usize,
    /// Aggregates claimed.
    pub aggregates: usize,
    /// Rows parked (refused by Kafka for good).
    pub parked: usize,
}

/// Runs one batch on `conn`. A database error rolls the transaction back: nothing is
/// marked sent and the locks are released. A publish failure that a retry may heal is
/// returned after the rows acknowledged before it (per aggregate) are committed as sent.
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
    // Rows come by sequence, so each aggregate's rows are in order here.
    let mut stopped: HashSet<(&str, &str)> = HashSet::new();
    let (mut sent, mut parked, mut retry_later) = (Vec::new(), Vec::new(), None);
    // A row larger than its topic takes is parked before anything is sent: once sent, the
    // later rows of its aggregate, in flight with it, could be written before it.
    let (mut send_rows, mut batch) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    // Each topic's limit, looked up once per batch.
    let mut limits: HashMap<String, usize> = HashMap::new();
    for (row, msg) in rows.iter().zip(messages) {
        let aggregate = (row.aggregate_type.as_str(), row.aggregate_id.as_str());
        if stopped.contains(&aggregate) {
            continue;
        }
        let bytes = msg.message_bytes();
        let mut limit = match limits.get(&msg.topic) {
            Some(l) => *l,
            None => *limits.entry(msg.topic.clone()).or_insert(publisher.message_limit(&msg.topic).await),
        };
        if bytes > limit {
            // The topic's setting may have been raised since it was read (a retried row).
            publisher.forget_limit(&msg.topic);
            limit = publisher.message_limit(&msg.topic).await;
            limits.insert(msg.topic.clone(), limit);
        }
        if bytes > limit {
            stopped.insert(aggregate);
            let reason = format!("Message size too large: {bytes} bytes, the topic {} takes at most {limit}", msg.topic);
            warn!(event_id = %row.event_id, aggregate_id = %row.aggregate_id, sequence = row.aggregate_sequence,
                topic = %row.topic, bytes, limit, "outbox row too large for its topic: parked");
            parked.push((row, reason));
            continue;
        }
        send_rows.push(row);
        batch.push(msg);
    }
    let results = publisher.publish_encoded_batch(&batch).await;
    for ((row, msg), result) in send_rows.into_iter().zip(&batch).zip(results) {
        let aggregate = (row.aggregate_type.as_str(), row.aggregate_id.as_str());
        if stopped.contains(&aggregate) {
            continue;
        }
        // Kafka refuses a whole produce batch for one bad message in it: a row refused
        // in the batch is tried alone before it is parked.
        let result = match result {
            Err(e) if e.is_permanent() => {
                publisher.forget_limit(&msg.topic);
                publisher.publish_encoded(msg).await
            }
            other => other,
        };
        match result {
            Ok(_) => sent.push(row),
            Err(e) => {
                stopped.insert(aggregate);
                if e.is_permanent() {
                    warn!(event_id = %row.event_id, aggregate_id = %row.aggregate_id, sequence = row.aggregate_sequence,
                        topic = %row.topic, error = %e, "outbox row refused by Kafka for good: parked");
                    parked.push((row, e.to_string()));
                } else {
                    retry_later.get_or_insert(e);
                }
            }
        }
    }
    outbox::mark_sent(&mut tx, &sent.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
    for (row, reason) in &parked {
        outbox::park(&mut tx, row.id, reason).await?;
    }
    tx.commit().await?;
    if !parked.is_empty() {
        counter!(RELAY_PARKED_TOTAL).increment(parked.len() as u64);
    }

    let mut by_label: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for r in &sent {
        *by_label.entry((r.topic.as_str(), r.event_type.as_str())).or_default() += 1;
    }
    for ((topic, event_type), n) in by_label {
        counter!(RELAY_PUBLISHED_TOTAL, labels::TOPIC => topic.to_owned(), labels::EVENT_TYPE => event_type.to_owned())
            .increment(n);
    }
    histogram!(RELAY_BATCH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    if let Some(e) = retry_later {
        return Err(e.into());
    }
    Ok(BatchReport { published: sent.len(), aggregates: claimed.len(), parked: parked.len() })
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
