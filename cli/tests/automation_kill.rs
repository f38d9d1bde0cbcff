//! `ltf worker automation` killed with SIGKILL mid-stream and restarted: every run
//! completes once, every record action happened once, no emitted event is lost or
//! doubled, and each webhook, repeated or not, took effect once at a receiver that honours
//! `Idempotency-Key`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ltf_domain::automations::Automation;
use ltf_domain::usecases::{
    ChangeContext, CreateAutomation, CreateMultipleRecords, CreateMultipleRecordsInput, CreateTable, CreateTableInput, UseCase,
};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_producers::relay::{Relay, RelayConfig};
use ltf_schemas::{EventCodec, Fields, TopicNames};
use ltf_tests::receiver::Receiver;
use ltf_tests::{bootstrap, fresh_database, registry_url, unique_prefix};
use serde_json::json;
use sqlx::PgPool;

const RUNS: usize = 300;

fn spawn_worker(prefix: &str, db_url: &str, port: u16) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_ltf"))
        .args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix])
        .args(["worker", "automation", "--listen", &format!("127.0.0.1:{port}"), "--session-timeout-ms", "6000"])
        .env("DATABASE_URL", db_url)
        .env("LTF_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        .env("LTF_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting ltf worker automation")
}

async fn scalar(pool: &PgPool, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_automation_worker_killed_mid_stream_and_restarted_completes_every_run_once() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("automation-kill");
    let topics = TopicNames::new(&prefix);
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 3, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let receiver = Receiver::start().await?;
    let ctx = ChangeContext::user("tester");
    for (id, fields) in [("tasks", json!([{"name": "n", "type": "integer"}])), ("log", json!([{"name": "task", "type": "link"}]))]
    {
        let input = CreateTableInput { id: Some(id.into()), name: id.into(), fields: serde_json::from_value(fields)? };
        CreateTable.run(&db.pool, &codec, &ctx, input).await?;
    }
    let automation: Automation = serde_json::from_value(json!({
        "id": "both", "name": "Webhook then a record",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [{"id": "hook", "type": "webhook", "url": receiver.url("/kill"), "body": {"task": "{{recordId}}"}},
                    {"id": "log", "type": "create_record", "tableId": "log", "fields": {"task": "{{recordId}}"}}]
    }))?;
    CreateAutomation.run(&db.pool, &codec, &ctx, automation).await?;
    let records: Vec<Fields> = (0..RUNS).map(|i| json!({"n": i}).as_object().cloned().unwrap_or_default()).collect();
    CreateMultipleRecords { limits: Default::default() }
        .run(&db.pool, &codec, &ctx, CreateMultipleRecordsInput { table_id: "tasks".into(), records })
        .await?;

    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec.clone())?;
    let relay =
        Relay::new(db.pool.clone(), publisher, RelayConfig { poll_interval: Duration::from_millis(100), ..Default::default() })?;
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        relay
            .run(async {
                let _ = relay_stopped.await;
            })
            .await
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut first = spawn_worker(&prefix, &db.url(), port)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while scalar(&db.pool, "SELECT count(*) FROM ltf_automation_steps").await? < (RUNS / 2) as i64 {
        ensure!(Instant::now() < deadline, "the worker did too little in time");
        ensure!(first.try_wait()?.is_none(), "the worker exited early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().context("SIGKILL")?;
    first.wait()?;
    let at_kill = scalar(&db.pool, "SELECT count(*) FROM ltf_automation_steps").await?;

    let mut second = spawn_worker(&prefix, &db.url(), port)?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = scalar(&db.pool, "SELECT count(*) FROM ltf_automation_runs WHERE status <> 'running'").await?;
        let unsent = scalar(&db.pool, "SELECT count(*) FROM ltf_outbox WHERE sent_at IS NULL").await?;
        if done == RUNS as i64 && unsent == 0 {
            break;
        }
        ensure!(Instant::now() < deadline, "{done} of {RUNS} runs ended in time");
        ensure!(second.try_wait()?.is_none(), "the restarted worker exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill").args(["-TERM", &second.id().to_string()]).status()?;
    ensure!(status.success(), "sending SIGTERM");
    ensure!(second.wait()?.success(), "the worker stops cleanly on SIGTERM");
    let _ = stop_relay.send(());
    relay.await??;

    let calls = receiver.calls("/kill").len();
    eprintln!("killed after {at_kill} of {} steps; {calls} webhook calls for {RUNS} runs", 2 * RUNS);
    assert_eq!(scalar(&db.pool, "SELECT count(*) FROM ltf_automation_runs WHERE status = 'succeeded'").await?, RUNS as i64);
    assert_eq!(scalar(&db.pool, "SELECT count(*) FROM ltf_automation_steps").await?, 2 * RUNS as i64);
    // One log record per task: the record action happened once per run.
    assert_eq!(scalar(&db.pool, "SELECT count(*) FROM ltf_records WHERE table_id = 'log'").await?, RUNS as i64);
    assert_eq!(
        scalar(&db.pool, "SELECT count(DISTINCT fields->>'task') FROM ltf_records WHERE table_id = 'log'").await?,
        RUNS as i64
    );
    // Emitted events: one AutomationTriggered and two ActionExecuted per run, one RecordCreated per log record.
    let emitted = |t: &'static str| scalar(&db.pool, t);
    assert_eq!(emitted("SELECT count(*) FROM ltf_outbox WHERE event_type = 'automation-triggered'").await?, RUNS as i64);
    assert_eq!(emitted("SELECT count(*) FROM ltf_outbox WHERE event_type = 'action-executed'").await?, 2 * RUNS as i64);
    assert_eq!(emitted("SELECT count(*) FROM ltf_outbox WHERE aggregate_id = 'log'").await?, RUNS as i64);
    // Each webhook took effect once; any repeat carried the key of its first call.
    assert_eq!(receiver.effects("/kill").len(), RUNS);
    assert!(calls >= RUNS);
    receiver.stop().await?;
    db.drop_database().await
}
