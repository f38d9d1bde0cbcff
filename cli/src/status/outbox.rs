//! The outbox backlog: unsent rows and the age of the oldest (`ltf_domain::outbox::backlog`).

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
    let b = ltf_domain::outbox::backlog(pool).await.context("reading the outbox backlog")?;
    Ok(OutboxBacklog { unsent: b.rows, oldest_age_seconds: b.oldest_age.as_secs_f64() })
}
