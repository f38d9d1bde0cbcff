//! The analytics worker: hourly rollups per table, form, service and automation
//! (`ltf_analytics_rollups`), updated in the same transaction as the event's dedup
//! record, so a replay never counts twice; totals by event type and by service as
//! Prometheus counters, counted only for events applied for the first time.

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use ltf_schemas::{ActionResult, EventPayload, EventType};
use metrics::counter;
use sqlx::PgPool;

use crate::metrics::{labels, ANALYTICS_CONNECTIONS_TOTAL, ANALYTICS_EVENTS_TOTAL};
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError};

/// What an event counts for: (dimension, key, metric).
pub fn counts(payload: &EventPayload) -> Vec<(&'static str, &str, &'static str)> {
    match payload {
        EventPayload::RecordCreated(p) => vec![("table", p.table_id.as_str(), "records_created")],
        EventPayload::RecordUpdated(p) => vec![("table", p.table_id.as_str(), "records_updated")],
        EventPayload::RecordDeleted(p) => vec![("table", p.table_id.as_str(), "records_deleted")],
        EventPayload::FormSubmitted(p) => vec![("form", p.form_id.as_str(), "form_submissions")],
        EventPayload::ConnectionEstablished(p) => vec![("service", p.service.as_str(), "connections_established")],
        EventPayload::AutomationTriggered(p) => vec![("automation", p.automation_id.as_str(), "automation_runs")],
        EventPayload::ActionExecuted(p) => {
            let metric = match p.result {
                ActionResult::Success => "actions_succeeded",
                ActionResult::Failure => "actions_failed",
            };
            vec![("automation", p.automation_id.as_str(), metric)]
        }
    }
}

/// The hour an event falls in.
pub fn bucket(occurred_on: DateTime<Utc>) -> DateTime<Utc> {
    occurred_on.duration_trunc(TimeDelta::hours(1)).unwrap_or(occurred_on)
}

/// Adds each event to its rollups.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyticsHandler;

#[async_trait]
impl Handler for AnalyticsHandler {
    fn dependencies(&self) -> &[&'static str] {
        &["postgres"]
    }

    fn name(&self) -> &str {
        "rollups"
    }

    fn can_handle(&self, _event_type: EventType) -> bool {
        true
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let dedup = ctx.dedup_store()?;
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        let hour = bucket(event.event.envelope.occurred_on);
        for (dimension, key, metric) in counts(&event.event.payload) {
            sqlx::query(
                "INSERT INTO ltf_analytics_rollups (bucket, dimension, key, metric, value) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (bucket, dimension, key, metric) DO UPDATE SET value = ltf_analytics_rollups.value + 1",
            )
            .bind(hour)
            .bind(dimension)
            .bind(key)
            .bind(metric)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        counter!(ANALYTICS_EVENTS_TOTAL, labels::EVENT_TYPE => event.event_type().as_str()).increment(1);
        if let EventPayload::ConnectionEstablished(p) = &event.event.payload {
            counter!(ANALYTICS_CONNECTIONS_TOTAL, labels::SERVICE => p.service.clone()).increment(1);
        }
        Ok(())
    }
}

/// The total of `metric` for (`dimension`, `key`) over every bucket in `[from, to)`.
pub async fn total(
    pool: &PgPool,
    dimension: &str,
    key: &str,
    metric: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(value), 0)::bigint FROM ltf_analytics_rollups
         WHERE dimension = $1 AND key = $2 AND metric = $3
           AND ($4::timestamptz IS NULL OR bucket >= $4) AND ($5::timestamptz IS NULL OR bucket < $5)",
    )
    .bind(dimension)
    .bind(key)
    .bind(metric)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ltf_schemas::{ActionExecuted, Fields};

    #[test]
    fn events_count_for_their_dimension_and_hour() {
        let failed = EventPayload::ActionExecuted(ActionExecuted {
            automation_id: "auto_1".into(),
            action_id: "a".into(),
            run_id: "r".into(),
            result: ActionResult::Failure,
            data: None,
            error: Some("timeout".into()),
        });
        assert_eq!(counts(&failed), vec![("automation", "auto_1", "actions_failed")]);
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 59, 59).unwrap();
        assert_eq!(bucket(t), Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap());
        let _ = Fields::new();
    }
}
