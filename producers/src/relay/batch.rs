//! One relay batch: claim aggregates, read their lowest unsent rows, publish, mark sent —
//! all inside one transaction whose advisory locks keep other relays off the aggregates.
//!
//! The rows go to Kafka in one Kafka transaction: all of them become visible to readers
//! at once, or none. When Kafka refuses a row, the transaction is aborted, so no later row
//! of its aggregate that Kafka took is seen before it. Then, per aggregate: the rows before
//! the refused one are published again without it; the refused row, once it is the
//! aggregate's first unsent row, is tried alone, and parked if refused again (its later
//! rows wait behind it, other aggregates go on). After a failure that a retry may heal,
//! the batch reports the error once what was committed is marked sent.

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
use ltf_kafka::{EventPublisher, TransactionOutcome};

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
    let (mut sent, mut parked, mut retry_later): (Vec<&UnsentRow>, _, _) = (Vec::new(), Vec::new(), None);
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
    publish_in_transactions(publisher, &send_rows, &batch, &mut sent, &mut parked, &mut retry_later).await;
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

/// How many transactions one batch tries before it leaves the rest to the next batch:
/// each failed one takes at least one row out, so a few suffice for isolated refusals.
const MAX_TRANSACTIONS: usize = 8;

/// Publishes `msgs` (the rows `rows`, each aggregate's in sequence order) in Kafka
/// transactions, adding to `sent` the rows committed, to `parked` the rows Kafka refused
/// alone, and to `retry_later` a failure a retry may heal (which ends the batch).
async fn publish_in_transactions<'r>(
    publisher: &EventPublisher,
    rows: &[&'r UnsentRow],
    msgs: &[EncodedEvent],
    sent: &mut Vec<&'r UnsentRow>,
    parked: &mut Vec<(&'r UnsentRow, String)>,
    retry_later: &mut Option<ltf_kafka::PublishError>,
) {
    let aggregate = |i: usize| (rows[i].aggregate_type.as_str(), rows[i].aggregate_id.as_str());
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    for _ in 0..MAX_TRANSACTIONS {
        if pending.is_empty() {
            return;
        }
        let batch: Vec<&EncodedEvent> = pending.iter().map(|&i| &msgs[i]).collect();
        let refused = match publisher.publish_transaction(&batch).await {
            TransactionOutcome::Committed => {
                sent.extend(pending.iter().map(|&i| rows[i]));
                return;
            }
            TransactionOutcome::Failed(e) => {
                retry_later.get_or_insert(e);
                return;
            }
            TransactionOutcome::Refused(refused) => refused,
        };
        // Per aggregate, the first refused row: the rows before it go again without it; a
        // refused row that comes first of its aggregate is tried alone.
        let mut cut: HashMap<(&str, &str), usize> = HashMap::new();
        for (at, e) in refused {
            let i = pending[at];
            if cut.contains_key(&aggregate(i)) {
                continue;
            }
            cut.insert(aggregate(i), i);
            let first = pending.iter().find(|&&j| aggregate(j) == aggregate(i)) == Some(&i);
            if !first {
                continue;
            }
            publisher.forget_limit(&msgs[i].topic);
            match publisher.publish_transaction(&[&msgs[i]]).await {
                TransactionOutcome::Committed => sent.push(rows[i]),
                TransactionOutcome::Refused(mut again) => {
                    let reason = again.pop().map_or(e.to_string(), |(_, e)| e.to_string());
                    warn!(event_id = %rows[i].event_id, aggregate_id = %rows[i].aggregate_id,
                        sequence = rows[i].aggregate_sequence, topic = %rows[i].topic, error = %reason,
                        "outbox row refused by Kafka for good: parked");
                    parked.push((rows[i], reason));
                }
                TransactionOutcome::Failed(e) => {
                    retry_later.get_or_insert(e);
                    return;
                }
            }
        }
        // Rows from each aggregate's refused row on wait for a later transaction or batch
        // (a row tried alone and committed is sent; its later rows follow next batch).
        pending.retain(|&j| cut.get(&aggregate(j)).is_none_or(|&i| j < i));
    }
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
