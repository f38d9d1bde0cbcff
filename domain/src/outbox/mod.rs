//! The transactional outbox, whole: this is the only module whose SQL touches
//! `ltf_outbox` and `ltf_aggregate_sequences`.
//!
//! * [`append`] runs inside the transaction that writes the domain rows, so an event is
//!   stored exactly when its change is: committed together or rolled back together; it
//!   takes the aggregate's next sequence under a row lock held until commit;
//! * [`claim_aggregates`], [`unsent_rows`] and [`mark_sent`] are the relay's batch;
//! * [`backlog`] and [`prune`] its housekeeping; [`wait_published`] the API's
//!   `waitForPublish` mode;
//! * the insert trigger notifies [`NOTIFY_CHANNEL`] when the writing transaction commits.

mod backlog;
mod claim;
mod inventory;
mod parking;
mod wait;

pub use backlog::{backlog, prune, Backlog};
pub use claim::{claim_aggregates, claim_relay_slot, mark_sent, unsent_rows, AggregateKey, UnsentRow};
pub use inventory::{inventory, values, InventoryRow};
pub use parking::{park, parked, retry, skip, skipped, ParkedRow};
pub use wait::wait_published;

/// The PostgreSQL notification channel the outbox's insert trigger notifies.
pub const NOTIFY_CHANNEL: &str = "ltf_outbox";

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ltf_schemas::{catalog, DomainEvent, EventCodec, Headers, SchemaError};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::PgConnection;
use thiserror::Error;
use uuid::Uuid;

/// Why events could not be appended to the outbox.
#[derive(Debug, Error)]
pub enum OutboxError {
    /// A statement failed; the caller's transaction must be rolled back.
    #[error("writing the outbox failed: {0}")]
    Db(#[from] sqlx::Error),

    /// An event could not be encoded (registry unreachable, invalid event, …).
    #[error("encoding event {event_id} ({event_type}) for the outbox failed: {source}")]
    Encode {
        /// The event's eventId.
        event_id: Uuid,
        /// Its event type string.
        event_type: &'static str,
        /// What the codec reported.
        #[source]
        source: Box<SchemaError>,
    },
}

fn encode_error(event: &DomainEvent, source: SchemaError) -> OutboxError {
    OutboxError::Encode { event_id: event.event_id(), event_type: event.event_type().as_str(), source: Box::new(source) }
}

/// Appends `events` to the outbox inside the caller's transaction and returns them with
/// their `aggregateSequence` set.
///
/// For each aggregate the next sequence numbers are taken by incrementing its row of
/// `ltf_aggregate_sequences`; the row stays locked until the transaction ends, so a
/// concurrent writer of the same aggregate waits and continues after the committed
/// numbers (or reuses those of a rolled-back transaction): per aggregate, sequences are
/// gap-free, unique and in commit order. Aggregates are locked in sorted order so two
/// batches cannot deadlock on them. Within an aggregate, events get their numbers in the
/// order given.
///
/// Each row holds the Confluent-framed value, the topic, the key (aggregateId) and the
/// contract's headers; `traceparent`, when given, is added to the headers.
pub async fn append(
    conn: &mut PgConnection,
    codec: &EventCodec,
    traceparent: Option<&str>,
    mut events: Vec<DomainEvent>,
) -> Result<Vec<DomainEvent>, OutboxError> {
    if events.is_empty() {
        return Ok(events);
    }
    warm_schema_ids(codec, &events).await?;

    let mut counts: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
    for e in &events {
        *counts.entry((e.aggregate_type().as_str(), e.aggregate_id().to_owned())).or_default() += 1;
    }
    let mut next: HashMap<(&'static str, String), i64> = HashMap::with_capacity(counts.len());
    for ((aggregate_type, aggregate_id), n) in counts {
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO ltf_aggregate_sequences (aggregate_type, aggregate_id, last_sequence)
             VALUES ($1, $2, $3)
             ON CONFLICT (aggregate_type, aggregate_id)
             DO UPDATE SET last_sequence = ltf_aggregate_sequences.last_sequence + EXCLUDED.last_sequence
             RETURNING last_sequence",
        )
        .bind(aggregate_type)
        .bind(&aggregate_id)
        .bind(n)
        .fetch_one(&mut *conn)
        .await?;
        next.insert((aggregate_type, aggregate_id), last - n + 1);
    }

    let mut rows = Rows::with_capacity(events.len());
    for e in &mut events {
        let key = (e.aggregate_type().as_str(), e.aggregate_id().to_owned());
        // Every aggregate of `events` was counted above; a sequence left at 0 would be
        // refused by the table's CHECK.
        if let Some(seq) = next.get_mut(&key) {
            e.envelope.aggregate_sequence = *seq;
            *seq += 1;
        }
        let mut encoded = codec.encode(e).await.map_err(|err| encode_error(e, err))?;
        if let Some(tp) = traceparent {
            encoded.set_header(Headers::TRACEPARENT, tp);
        }
        let headers: Map<String, Value> = encoded.headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        rows.event_id.push(e.event_id());
        rows.aggregate_type.push(key.0);
        rows.aggregate_id.push(key.1);
        rows.sequence.push(e.envelope.aggregate_sequence);
        rows.event_type.push(e.event_type().as_str());
        rows.topic.push(encoded.topic);
        rows.key.push(encoded.key);
        rows.value.push(encoded.value);
        rows.headers.push(Json(headers));
    }
    rows.insert(conn).await?;
    Ok(events)
}

/// Registers (or looks up) the schema of every event type in `events` before any
/// aggregate is locked, so a first registry round trip does not hold the locks.
async fn warm_schema_ids(codec: &EventCodec, events: &[DomainEvent]) -> Result<(), OutboxError> {
    let mut seen = BTreeSet::new();
    for e in events {
        if seen.insert((e.event_type(), e.envelope.version)) {
            let def = catalog::schema_def(e.event_type(), e.envelope.version).map_err(|err| encode_error(e, err))?;
            codec.schema_id(&e.topic(codec.topics()), def).await.map_err(|err| encode_error(e, err))?;
        }
    }
    Ok(())
}

/// Outbox rows as column arrays, inserted with one `UNNEST` statement.
struct Rows {
    event_id: Vec<Uuid>,
    aggregate_type: Vec<&'static str>,
    aggregate_id: Vec<String>,
    sequence: Vec<i64>,
    event_type: Vec<&'static str>,
    topic: Vec<String>,
    key: Vec<String>,
    value: Vec<Vec<u8>>,
    headers: Vec<Json<Map<String, Value>>>,
}

impl Rows {
    fn with_capacity(n: usize) -> Rows {
        Rows {
            event_id: Vec::with_capacity(n),
            aggregate_type: Vec::with_capacity(n),
            aggregate_id: Vec::with_capacity(n),
            sequence: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            topic: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            value: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
        }
    }

    async fn insert(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        // WITH ORDINALITY keeps the given order, so `id` follows the sequence numbers.
        sqlx::query(
            "INSERT INTO ltf_outbox (event_id, aggregate_type, aggregate_id, aggregate_sequence,
                                     event_type, topic, key, value, headers)
             SELECT u.event_id, u.aggregate_type, u.aggregate_id, u.seq, u.event_type, u.topic, u.key, u.value, u.headers
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                         $7::text[], $8::bytea[], $9::jsonb[])
                  WITH ORDINALITY AS u(event_id, aggregate_type, aggregate_id, seq, event_type, topic, key, value, headers, n)
             ORDER BY u.n",
        )
        .bind(&self.event_id)
        .bind(&self.aggregate_type)
        .bind(&self.aggregate_id)
        .bind(&self.sequence)
        .bind(&self.event_type)
        .bind(&self.topic)
        .bind(&self.key)
        .bind(&self.value)
        .bind(&self.headers)
        .execute(conn)
        .await?;
        Ok(())
    }
}
