//! Backlog sampling (with its gauges) and pruning of sent rows (with its counter).

use std::time::Duration;

use ltf_domain::outbox::{self, Backlog};
use metrics::{counter, gauge};
use sqlx::PgPool;

use crate::metrics::{OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE_SECONDS, OUTBOX_PARKED, RELAY_PRUNED_TOTAL};

/// Reads the backlog and sets its gauges.
pub(crate) async fn sample_backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let backlog = outbox::backlog(pool).await?;
    gauge!(OUTBOX_BACKLOG).set(backlog.rows as f64);
    gauge!(OUTBOX_OLDEST_AGE_SECONDS).set(backlog.oldest_age.as_secs_f64());
    gauge!(OUTBOX_PARKED).set(backlog.parked as f64);
    Ok(backlog)
}

/// Deletes rows sent longer than `retention` ago; returns how many.
pub(crate) async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let deleted = outbox::prune(pool, retention).await?;
    counter!(RELAY_PRUNED_TOTAL).increment(deleted);
    Ok(deleted)
}
