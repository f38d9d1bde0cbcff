//! `ltf relay` killed with SIGKILL in the middle of a 10,000-event load, then restarted:
//! every event reaches Kafka, per-key order holds (duplicates of the batch in flight are
//! allowed — the producer could not know whether Kafka had it — and counted), and a
//! SIGTERM stops the second relay cleanly.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::{CreateMultipleRecordsInput, RecordPatch, UpdateMultipleRecordsInput};
use ltf_domain::{ChangeContext, CreateMultipleRecords, RecordLimits, UpdateMultipleRecords, UseCase};
use ltf_schemas::{AggregateType, EventCodec, TopicNames};
use ltf_tests::delivery::{check_delivery, outbox_sequences, read_until_seen};
use ltf_tests::{bootstrap, fresh_database, registry_url, unique_prefix};
use serde_json::json;
use sqlx::PgPool;

const TABLES: usize = 8;
const BATCHES: usize = 5;
const PER_BATCH: usize = 125;
/// Every record is created then updated: 8 × 5 × 125 × 2.
const EVENTS: usize = TABLES * BATCHES * PER_BATCH * 2;

fn spawn_relay(db_url: &str, prefix: &str) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_ltf"))
        .args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix])
        .args(["relay", "--listen", "127.0.0.1:0", "--batch-size", "200", "--partitions", "3"])
        .env("DATABASE_URL", db_url)
        .env("LTF_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting ltf relay")
}

async fn sent(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE sent_at IS NOT NULL").fetch_one(pool).await?)
}

async fn unsent(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE sent_at IS NULL").fetch_one(pool).await?)
}

async fn write_load(pool: PgPool, codec: Arc<EventCodec>, table: usize) -> Result<()> {
    let ctx = ChangeContext::user("loader");
    for b in 0..BATCHES {
        let records = (0..PER_BATCH)
            .map(|i| json!({"title": format!("t{b}-{i}"), "n": i}).as_object().cloned().unwrap_or_default())
            .collect();
        let input = CreateMultipleRecordsInput { table_id: format!("tbl_{table}"), records };
        let created = CreateMultipleRecords::new(RecordLimits::default()).run(&pool, &codec, &ctx, input).await?.value;
        let patches = created
            .iter()
            .map(|r| RecordPatch {
                record_id: r.id.clone(),
                fields: json!({"n": -1}).as_object().cloned().unwrap_or_default(),
                expected_version: Some(1),
            })
            .collect();
        let input = UpdateMultipleRecordsInput { table_id: format!("tbl_{table}"), patches };
        UpdateMultipleRecords::new(RecordLimits::default()).run(&pool, &codec, &ctx, input).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_load_and_restarted_loses_no_event_and_keeps_per_key_order() -> Result<()> {
    let db = fresh_database().await?;
    for i in 0..TABLES {
        let t = TableDef {
            id: format!("tbl_{i}"),
            name: format!("T{i}"),
            fields: vec![FieldDef::new("title", FieldType::Text), FieldDef::new("n", FieldType::Integer)],
        };
        tables::insert(&mut *db.pool.acquire().await?, &t).await?;
    }
    let prefix = unique_prefix("relay-kill");
    let topics = TopicNames::new(&prefix);
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);

    let mut first = spawn_relay(&db.url(), &prefix)?;
    let writers: Vec<_> = (0..TABLES).map(|t| tokio::spawn(write_load(db.pool.clone(), codec.clone(), t))).collect();

    // Kill the relay once it has published part of the load, while writers still write.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent(&db.pool).await? < 1500 {
        ensure!(Instant::now() < deadline, "the relay published nothing in time");
        ensure!(first.try_wait()?.is_none(), "the relay exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().context("SIGKILL")?;
    first.wait()?;
    let sent_at_kill = sent(&db.pool).await?;
    let written_at_kill: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_outbox").fetch_one(&db.pool).await?;
    eprintln!("killed the relay after {sent_at_kill} of {written_at_kill} rows written so far ({EVENTS} in all)");
    ensure!((sent_at_kill as usize) < EVENTS, "the kill came after the whole load was published");

    let mut second = spawn_relay(&db.url(), &prefix)?;
    for w in writers {
        w.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while unsent(&db.pool).await? > 0 {
        ensure!(Instant::now() < deadline, "the restarted relay did not drain the outbox");
        ensure!(second.try_wait()?.is_none(), "the restarted relay exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill").args(["-TERM", &second.id().to_string()]).status()?;
    ensure!(status.success(), "sending SIGTERM");
    let exit = second.wait()?;
    ensure!(exit.success(), "the relay stops cleanly on SIGTERM, got {exit}");

    let seqs = outbox_sequences(&db.pool).await?;
    assert_eq!(seqs.len(), EVENTS);
    let expected: HashSet<_> = seqs.keys().copied().collect();
    let topic = topics.events(AggregateType::Table);
    let msgs = read_until_seen(&[topic], &expected, Duration::from_secs(120), Duration::from_secs(2))?;
    let report = check_delivery(&msgs, &seqs)?;
    eprintln!("{} events delivered, {} duplicates", report.distinct, report.duplicates);
    assert_eq!(report.distinct, EVENTS);
    db.drop_database().await
}
