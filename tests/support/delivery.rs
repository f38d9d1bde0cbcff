//! What reached Kafka from an outbox: read everything a relay published and check it
//! against the outbox rows — none lost, per-key order kept, duplicates counted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rdkafka::message::{Message, OwnedMessage};
use uuid::Uuid;

use crate::headers;

/// Reads every partition of `topics` from the beginning until each of `expected` event ids
/// was seen, then `linger` longer to catch duplicates; fails naming how many are missing.
pub fn read_until_seen(
    topics: &[String],
    expected: &HashSet<Uuid>,
    timeout: Duration,
    linger: Duration,
) -> Result<Vec<OwnedMessage>> {
    let consumer = crate::reader_from_beginning(topics)?;
    let deadline = Instant::now() + timeout;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut done_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if done_at.is_some_and(|d| now > d + linger) {
            return Ok(out);
        }
        if done_at.is_none() && now > deadline {
            bail!("saw {} of {} events on {topics:?} before the timeout", seen.len(), expected.len());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?.detach();
            if let Some(id) = event_id(&m) {
                if expected.contains(&id) {
                    seen.insert(id);
                }
            }
            out.push(m);
            if done_at.is_none() && seen.len() == expected.len() {
                done_at = Some(Instant::now());
            }
        }
    }
}

/// The `event-id` header of a message.
pub fn event_id(m: &OwnedMessage) -> Option<Uuid> {
    headers(m).into_iter().find(|(k, _)| k == "event-id").and_then(|(_, v)| v.parse().ok())
}

/// What a delivery check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Distinct events delivered.
    pub distinct: usize,
    /// Messages repeating an event already delivered.
    pub duplicates: usize,
}

/// Checks `messages` against the outbox rows `expected` (eventId → (aggregateId,
/// aggregateSequence)): every event delivered, none unknown, each on the partition of its
/// key, and, per aggregate, first deliveries in strictly increasing sequence order with no
/// sequence skipped.
pub fn check_delivery(messages: &[OwnedMessage], expected: &HashMap<Uuid, (String, i64)>) -> Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let mut first_seen = HashSet::new();
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    let mut partition_of: HashMap<&str, (String, i32)> = HashMap::new();
    for m in messages {
        let id = event_id(m).context("a message without an event-id header")?;
        let Some((aggregate, seq)) = expected.get(&id) else { continue };
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        ensure!(&key == aggregate, "event {id}: key {key:?}, expected the aggregate id {aggregate}");
        let place = (m.topic().to_owned(), m.partition());
        let known = partition_of.entry(aggregate.as_str()).or_insert_with(|| place.clone());
        ensure!(*known == place, "aggregate {aggregate} was written to {place:?} and {known:?}");
        if !first_seen.insert(id) {
            report.duplicates += 1;
            continue;
        }
        let last = last_seq.entry(aggregate.as_str()).or_insert(0);
        ensure!(*seq == *last + 1, "aggregate {aggregate}: sequence {seq} delivered after {last}");
        *last = *seq;
    }
    report.distinct = first_seen.len();
    ensure!(report.distinct == expected.len(), "{} of {} events delivered", report.distinct, expected.len());
    Ok(report)
}

/// eventId → (aggregateId, aggregateSequence) of every outbox row.
pub async fn outbox_sequences(pool: &sqlx::PgPool) -> Result<HashMap<Uuid, (String, i64)>> {
    let rows: Vec<(Uuid, String, i64)> =
        sqlx::query_as("SELECT event_id, aggregate_id, aggregate_sequence FROM ltf_outbox").fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id, agg, seq)| (id, (agg, seq))).collect())
}
