//! What the relay reads and writes of the outbox, inside its batch transaction: claim
//! aggregates, read their lowest unsent rows, mark rows sent.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// First key of the two-key advisory locks the relay takes: ("ltf_" as an i32), so they
/// do not collide with other users of advisory locks in the same database.
const LOCK_SPACE: i32 = 0x6c74_665f;

/// The aggregates with unsent rows, oldest first, that no other relay holds and that have
/// no parked row (its later rows wait behind it); each claimed one stays locked until the
/// batch's transaction ends.
const CLAIM: &str = "
    WITH candidates AS MATERIALIZED (
        SELECT aggregate_type, aggregate_id, min(id) AS first_id
        FROM ltf_outbox
        WHERE sent_at IS NULL AND skipped_at IS NULL
        GROUP BY aggregate_type, aggregate_id
        HAVING bool_and(parked_at IS NULL)
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
    SELECT id, event_id, event_type, aggregate_type, aggregate_id, aggregate_sequence, topic, key, value, headers
    FROM ltf_outbox
    WHERE sent_at IS NULL AND skipped_at IS NULL
      AND (aggregate_type, aggregate_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
    ORDER BY aggregate_sequence, aggregate_type, aggregate_id
    LIMIT $3";

/// An aggregate, as (aggregate type, aggregate id).
pub type AggregateKey = (String, String);

/// An unsent row, as the relay publishes it.
#[derive(Debug, Clone, FromRow)]
pub struct UnsentRow {
    /// The row id (insertion order).
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
    /// The Kafka key (the aggregateId).
    pub key: String,
    /// The encoded value (Confluent frame).
    pub value: Vec<u8>,
    /// The headers, name → string value.
    pub headers: Json<serde_json::Map<String, Value>>,
}

/// Claims up to `max_aggregates` aggregates with unsent rows, oldest first, skipping those
/// another relay holds: each stays locked (transaction-scoped advisory lock) until the
/// transaction `conn` is in ends.
pub async fn claim_aggregates(conn: &mut PgConnection, max_aggregates: u32) -> Result<Vec<AggregateKey>, sqlx::Error> {
    sqlx::query_as(CLAIM).bind(i64::from(max_aggregates)).bind(LOCK_SPACE).fetch_all(conn).await
}

/// The lowest unsent rows of `aggregates` (claimed in this transaction), at most `limit`,
/// by aggregate sequence.
pub async fn unsent_rows(
    conn: &mut PgConnection,
    aggregates: &[AggregateKey],
    limit: u32,
) -> Result<Vec<UnsentRow>, sqlx::Error> {
    let (types, ids): (Vec<&str>, Vec<&str>) = aggregates.iter().map(|(t, i)| (t.as_str(), i.as_str())).unzip();
    sqlx::query_as(ROWS).bind(&types).bind(&ids).bind(i64::from(limit)).fetch_all(conn).await
}

/// Marks the rows `ids` sent.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ltf_outbox SET sent_at = now() WHERE id = ANY($1)").bind(ids).execute(conn).await?;
    Ok(())
}

/// First key of the relays' slot locks ("ltfs" as an i32), apart from the aggregate locks.
const SLOT_SPACE: i32 = 0x6c74_6673;

/// Takes the lowest relay slot in `0..slots` no other live relay holds: a session-level
/// advisory lock that `conn` holds until it closes (a relay that dies frees its slot with
/// its connection). A relay names its Kafka transactions after its slot, so a restarted
/// relay takes the slot, and the transactional id, its predecessor had. `None`: every
/// slot is taken.
pub async fn claim_relay_slot(conn: &mut PgConnection, slots: u32) -> Result<Option<u32>, sqlx::Error> {
    for slot in 0..slots {
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(SLOT_SPACE)
            .bind(slot as i32)
            .fetch_one(&mut *conn)
            .await?;
        if taken {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}
