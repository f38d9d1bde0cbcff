//! Waiting until the relay published given events (the API's `waitForPublish` mode).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

/// Waits until a relay has published every event of `event_ids` (the `wait_for_publish`
/// processing mode); returns `false` when `timeout` passed first. The events stay queued
/// either way: a `false` means "not yet", never "lost".
///
/// A row that no longer exists counts as published: only sent rows are ever deleted.
pub async fn wait_published(pool: &PgPool, event_ids: &[Uuid], timeout: Duration) -> Result<bool, sqlx::Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE event_id = ANY($1) AND sent_at IS NULL")
            .bind(event_ids)
            .fetch_one(pool)
            .await?;
        if unsent == 0 {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
