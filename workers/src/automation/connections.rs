//! Per-service usage and health (`ltf_connection_usage`): each ConnectionEstablished
//! counts once for its service (with the dedup record, in one transaction) and marks the
//! service healthy: a connection was just authenticated against it.

use async_trait::async_trait;
use ltf_schemas::{EventPayload, EventType};

use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// Keeps per-service usage and health.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionsHandler;

#[async_trait]
impl Handler for ConnectionsHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "connections"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        event_type == EventType::ConnectionEstablished
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let EventPayload::ConnectionEstablished(p) = &event.event.payload else { return Ok(()) };
        let Some(mut tx) = ctx.dedup_store()?.begin(ctx, event).await? else { return Ok(()) };
        sqlx::query(
            "INSERT INTO ltf_connection_usage (service, connections, last_connection_id, last_user_id, last_established_at, health)
             VALUES ($1, 1, $2, $3, $4, 'healthy')
             ON CONFLICT (service) DO UPDATE SET
                 connections = ltf_connection_usage.connections + 1,
                 last_connection_id = CASE WHEN EXCLUDED.last_established_at >= ltf_connection_usage.last_established_at
                                           THEN EXCLUDED.last_connection_id ELSE ltf_connection_usage.last_connection_id END,
                 last_user_id = CASE WHEN EXCLUDED.last_established_at >= ltf_connection_usage.last_established_at
                                     THEN EXCLUDED.last_user_id ELSE ltf_connection_usage.last_user_id END,
                 last_established_at = greatest(EXCLUDED.last_established_at, ltf_connection_usage.last_established_at),
                 health = 'healthy'",
        )
        .bind(&p.service)
        .bind(&p.connection_id)
        .bind(&p.user_id)
        .bind(event.event.envelope.occurred_on)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
