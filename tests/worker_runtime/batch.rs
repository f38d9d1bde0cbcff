//! Batch mode: events grouped by type into batches, a failing event isolated and
//! dead-lettered alone, the rest applied once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use ltf_consumers::ErrorClass;
use ltf_consumers::{BatchConfig, BatchHandler, BatchPipeline, Event, HandlerContext, HandlerError, Router};
use ltf_schemas::{DomainEvent, EventPayload, EventType, Fields, RecordDeleted, TopicNames};
use ltf_tests::{headers, read_n};

use super::{applied, created, fixture, header, pipeline, run, wait_applied};
use ltf_consumers::BreakerConfig;

/// Writes each batch's size and type, and each event's label, in one transaction.
struct BatchSink;

#[async_trait]
impl BatchHandler for BatchSink {
    fn name(&self) -> &str {
        "batch-sink"
    }

    fn can_handle(&self, t: EventType) -> bool {
        matches!(t, EventType::RecordCreated | EventType::RecordDeleted)
    }

    async fn handle_batch(&self, ctx: &HandlerContext, t: EventType, events: &[Event]) -> Result<(), HandlerError> {
        let labels: Vec<String> = events.iter().map(label).collect();
        if labels.iter().any(|l| l == "bad") {
            return Err(HandlerError::permanent(ErrorClass::Validation, "a bad label"));
        }
        let pool =
            ctx.dedup.as_ref().map(|d| d.pool().clone()).ok_or_else(|| HandlerError::permanent(ErrorClass::Config, "no pool"))?;
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO test_batches (size, event_type) VALUES ($1, $2)")
            .bind(events.len() as i32)
            .bind(t.as_str())
            .execute(&mut *tx)
            .await?;
        for (e, l) in events.iter().zip(&labels) {
            sqlx::query("INSERT INTO test_side_effects (event_id, label, attempt) VALUES ($1, $2, $3)")
                .bind(e.event_id())
                .bind(l)
                .bind(ctx.attempt as i32)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn label(e: &Event) -> String {
    match &e.event.payload {
        EventPayload::RecordCreated(p) => p.fields.get("label").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
        EventPayload::RecordDeleted(p) => format!("deleted {}", p.record_id),
        _ => String::new(),
    }
}

fn deleted(table: &str, record: &str) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
        table_id: table.into(),
        record_id: record.into(),
        record_version: 2,
        deleted_fields: Fields::new().into(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_group_events_by_type_and_a_failing_event_is_dead_lettered_alone() -> Result<()> {
    let f = fixture("rt-batch").await?;
    sqlx::raw_sql("CREATE TABLE test_batches (n bigserial PRIMARY KEY, size int NOT NULL, event_type text NOT NULL)")
        .execute(&f.db.pool)
        .await?;
    let mut events: Vec<DomainEvent> =
        (0..300).map(|i| created(&format!("tbl_{}", i % 6), &format!("rec{i}"), &format!("{i}"))).collect();
    events.push(created("tbl_0", "rec_bad", "bad"));
    events.extend((0..50).map(|i| deleted(&format!("tbl_{}", i % 6), &format!("gone{i}"))));
    f.publisher.publish_batch(&events).await?;

    let core = pipeline(&f, Router::new(), BreakerConfig::default());
    let batch = BatchPipeline::new(core, BatchSink, BatchConfig { max_batch: 100, max_wait: Duration::from_millis(100) });
    let running = run(&f, Arc::new(batch))?;
    let got = wait_applied(&f.db.pool, 350, Duration::from_secs(60)).await?;
    assert!(!got.iter().any(|l| l == "bad"), "the failing event was not applied");
    let dead = read_n(&[TopicNames::dlq(&f.topic, &f.group)], 1, Duration::from_secs(30))?;
    let h = headers(&dead[0]);
    assert_eq!(header(&h, "dlq-handler"), Some("batch-sink"));
    assert_eq!(header(&h, "dlq-error-class"), Some("validation"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await?;

    let applied_now = applied(&f.db.pool).await?;
    assert_eq!(applied_now.len(), 350, "every other event applied once");
    let (batches, biggest): (i64, i32) =
        sqlx::query_as("SELECT count(*), max(size) FROM test_batches").fetch_one(&f.db.pool).await?;
    assert!(biggest > 1, "events were batched (largest batch {biggest}, {batches} batches)");
    assert!(batches < 350, "fewer batches than events ({batches})");
    let dead = read_n(&[TopicNames::dlq(&f.topic, &f.group)], 2, Duration::from_secs(2));
    assert!(dead.is_err(), "only the failing event was dead-lettered");
    f.db.drop_database().await
}
