//! Waiting for the relay to publish outbox rows (stand-in for `relay::wait_published`
//! until the relay lands; same signature and meaning).

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

/// Waits until none of `event_ids` is an unsent outbox row, or `timeout` passed. `true`
/// when all are published; a missing row counts as published (sent rows are pruned).
pub async fn wait_published(pool: &PgPool, event_ids: &[Uuid], timeout: Duration) -> Result<bool, sqlx::Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if event_ids.is_empty() {
            return Ok(true);
        }
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE event_id = ANY($1) AND sent_at IS NULL")
                .bind(event_ids)
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
