//! The durable dedup store: which events a handler of a consumer group has processed.
//!
//! One row of `ltf_processed_events` per (consumer group, handler, eventId), written in
//! the transaction of the handler's side effect. Guarantees:
//! * **side effect and dedup record are atomic**: [`DedupStore::begin`] opens a
//!   transaction that already holds the record; the handler writes its side effect in
//!   it and commits both, or neither survives (a rollback, a crash, a lost connection);
//! * **at most one delivery wins**: two deliveries of one event that race (a redelivery
//!   after a rebalance, a duplicate from the outbox relay) both insert the record; the
//!   second insert waits on the first's row lock, then finds the conflict once the first
//!   commits and gets `None` — or takes over if the first rolled back. So the side
//!   effect is applied exactly once per (group, handler, eventId);
//! * a dead-lettered event is never recorded (its transaction is not committed), so a
//!   replay of it runs the handler again;
//! * **recorded once, by whoever holds the side effect**: a handler that calls
//!   [`DedupStore::begin`] records the event itself (the call marks its [`Recording`]);
//!   for any other handler the middleware records the event right after the call
//!   succeeded ([`record_after`]); a failed call records nothing;
//! * records are kept for [`DedupStore::retention`] and then deleted by
//!   [`DedupStore::prune`], in bounded chunks; a duplicate arriving later than the
//!   retention is processed again, so the retention must exceed how long duplicates can
//!   arrive (consumer-group offset retention, outbox relay retries, DLQ replays).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::counter;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tracing::debug;
use uuid::Uuid;

use crate::handler::{Event, HandlerContext};
use crate::metrics::DEDUP_PRUNED_TOTAL;
use crate::HandlerError;

/// Rows deleted per statement by [`DedupStore::prune`], so pruning never holds long locks
/// or builds one huge transaction.
const PRUNE_CHUNK: i64 = 5000;

/// The dedup middleware's state of one handler call: whether the handler recorded the
/// event itself, in the transaction of its side effect ([`DedupStore::begin`]). Every
/// [`HandlerContext`] carries one.
#[derive(Debug, Default)]
pub struct Recording {
    by_handler: AtomicBool,
}

impl Recording {
    fn mark_recorded_by_handler(&self) {
        self.by_handler.store(true, Ordering::SeqCst);
    }

    /// Whether the handler recorded the event itself.
    pub fn recorded_by_handler(&self) -> bool {
        self.by_handler.load(Ordering::SeqCst)
    }
}

/// The dedup step after a handler call: runs `call` (one call on `events`, one event or a
/// batch), and when it succeeded records every event for `ctx.handler` unless the handler
/// did so itself. Without a dedup store on `ctx` it only runs `call`.
pub(crate) async fn record_after<F>(ctx: &HandlerContext, events: &[&Event], call: F) -> Result<(), HandlerError>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    call.await?;
    let Some(dedup) = &ctx.dedup else { return Ok(()) };
    if ctx.call.recording.recorded_by_handler() {
        return Ok(());
    }
    let mut conn = dedup.pool().acquire().await?;
    for event in events {
        DedupStore::record(&mut conn, &ctx.group, &ctx.handler, event.event_id()).await?;
    }
    Ok(())
}

/// The dedup records of the consumers, in PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct DedupStore {
    pool: PgPool,
    retention: Duration,
}

impl DedupStore {
    /// A store on `pool` (migrated with the repository's migrations) keeping records for
    /// `retention`.
    pub fn new(pool: PgPool, retention: Duration) -> DedupStore {
        DedupStore { pool, retention }
    }

    /// The pool the store writes to; a handler's side effect must use this database for
    /// the record and the effect to commit together.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How long records are kept before [`prune`](DedupStore::prune) deletes them.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Whether `handler` of `group` has committed the processing of `event_id`. A quick
    /// check before doing work; the authoritative check is [`begin`](DedupStore::begin).
    pub async fn is_processed(&self, group: &str, handler: &str, event_id: Uuid) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM ltf_processed_events
                            WHERE consumer_group = $1 AND handler = $2 AND event_id = $3)",
        )
        .bind(group)
        .bind(handler)
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
    }

    /// Records `event_id` as processed by `handler` of `group` on `conn`, inside whatever
    /// transaction the caller holds. Returns `true` when the record is new, `false` when
    /// it already existed (committed by another transaction). While another open
    /// transaction holds an uncommitted record of the same event, this waits for it to end.
    pub async fn record(conn: &mut PgConnection, group: &str, handler: &str, event_id: Uuid) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO ltf_processed_events (consumer_group, handler, event_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(handler)
        .bind(event_id)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Begins a transaction holding the record of `event` for `ctx.group` and
    /// `ctx.handler`; `None` when the event was already processed (the transaction is
    /// rolled back). The handler writes its side effect in the returned transaction and
    /// commits it; dropping it without commit rolls back both.
    ///
    /// A concurrent delivery of the same event blocks in this call until the holder of
    /// the record commits (then it gets `None`) or rolls back (then it gets the record).
    /// This relies on READ COMMITTED, PostgreSQL's default; under a REPEATABLE READ or
    /// SERIALIZABLE default the waiting delivery fails with a serialization error instead
    /// (a retryable [`HandlerError`](crate::HandlerError)), and its retry gets `None`.
    pub async fn begin(
        &self,
        ctx: &HandlerContext,
        event: &Event,
    ) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        ctx.call.recording.mark_recorded_by_handler();
        if DedupStore::record(&mut tx, &ctx.group, &ctx.handler, event.event_id()).await? {
            Ok(Some(tx))
        } else {
            debug!(group = %ctx.group, handler = %ctx.handler, event_id = %event.event_id(), "event already processed");
            tx.rollback().await?;
            Ok(None)
        }
    }

    /// Deletes records older than the retention, of every group, in chunks of 5000 rows
    /// (one statement each); returns how many were deleted.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM ltf_processed_events WHERE (consumer_group, handler, event_id) IN (
                     SELECT consumer_group, handler, event_id FROM ltf_processed_events
                     WHERE processed_at < now() - make_interval(secs => $1)
                     LIMIT $2)",
            )
            .bind(self.retention.as_secs_f64())
            .bind(PRUNE_CHUNK)
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += deleted;
            counter!(DEDUP_PRUNED_TOTAL).increment(deleted);
            if deleted < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
