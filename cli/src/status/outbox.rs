//! The outbox backlog: unsent rows of `ltf_outbox` and the age of the oldest.

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct OutboxBacklog {
    pub unsent: i64,
    /// Age of the oldest unsent row in seconds; 0 when there is none.
    pub oldest_age_seconds: f64,
}

pub async fn backlog(pool: &PgPool) -> Result<OutboxBacklog> {
    let (unsent, age): (i64, f64) = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
         FROM ltf_outbox WHERE sent_at IS NULL",
    )
    .fetch_one(pool)
    .await
    .context("reading the outbox backlog")?;
    Ok(OutboxBacklog { unsent, oldest_age_seconds: age.max(0.0) })
}
