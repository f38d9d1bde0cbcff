//! The unsent part of the outbox, and pruning of sent rows.

use std::time::Duration;

use sqlx::PgPool;

/// The unsent part of the outbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Unsent rows.
    pub rows: i64,
    /// Age of the oldest unsent row; zero when there is none.
    pub oldest_age: Duration,
    /// Parked rows (Kafka refused them for good; an operator retries or skips them).
    pub parked: i64,
}

/// Reads the backlog: unsent rows (skipped ones are not), the age of the oldest, and the
/// parked rows.
pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let (rows, age, parked): (i64, f64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0),
                count(*) FILTER (WHERE parked_at IS NOT NULL)
         FROM ltf_outbox WHERE sent_at IS NULL AND skipped_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog { rows, oldest_age: Duration::from_secs_f64(age.max(0.0)), parked })
}

/// Rows deleted per statement, so pruning a large backlog of sent rows never holds long
/// locks or one huge transaction.
const PRUNE_CHUNK: i64 = 5000;

/// Deletes rows sent longer than `retention` ago, in chunks; returns how many. Unsent
/// rows are never deleted.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM ltf_outbox WHERE id IN (
                 SELECT id FROM ltf_outbox
                 WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1)
                 LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(PRUNE_CHUNK)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}
