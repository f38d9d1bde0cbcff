//! `ltf worker audit` as operators run it: killed with SIGKILL mid-stream and restarted,
//! every event is logged once (the dedup store and the log's key show no side effect
//! applied twice), nothing is dead-lettered, `/readyz` and `/metrics` answer, SIGTERM
//! stops it cleanly, and `ltf audit` prints an aggregate's history in order.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::{AggregateType, DomainEvent, EventCodec, EventPayload, Fields, RecordCreated, TopicNames};
use ltf_tests::{bootstrap, fresh_database, read_n, registry_url, unique_prefix};
use sqlx::PgPool;

const EVENTS: usize = 5000;
const TABLES: usize = 20;

fn ltf(prefix: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ltf"));
    c.args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix]);
    c.env("LTF_LOG", "warn").env("RUST_BACKTRACE", "0");
    c
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn_worker(prefix: &str, db_url: &str, port: u16) -> Result<Child> {
    ltf(prefix)
        .args(["worker", "audit", "--listen", &format!("127.0.0.1:{port}"), "--session-timeout-ms", "6000"])
        .env("DATABASE_URL", db_url)
        .stdout(Stdio::null())
        .spawn()
        .context("starting ltf worker audit")
}

async fn logged(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ltf_event_log").fetch_one(pool).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_and_restarted_logs_every_event_once() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("worker-kill");
    let topics = TopicNames::new(&prefix);
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 6, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    let events: Vec<DomainEvent> = (0..EVENTS)
        .map(|i| {
            let mut e = DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
                table_id: format!("tbl_{}", i % TABLES),
                record_id: format!("rec_{i}"),
                record_version: 1,
                fields: Fields::new().into(),
                created_by: None,
            }));
            e.envelope.aggregate_sequence = (i / TABLES + 1) as i64;
            e
        })
        .collect();
    publisher.publish_batch(&events).await?;

    let port = free_port()?;
    let mut first = spawn_worker(&prefix, &db.url(), port)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while logged(&db.pool).await? < 1500 {
        ensure!(Instant::now() < deadline, "the worker logged too little in time");
        ensure!(first.try_wait()?.is_none(), "the worker exited early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().context("SIGKILL")?;
    first.wait()?;
    let at_kill = logged(&db.pool).await?;
    eprintln!("killed the worker after {at_kill} of {EVENTS} events logged");
    ensure!((at_kill as usize) < EVENTS, "the kill came after the whole stream was handled");

    let mut second = spawn_worker(&prefix, &db.url(), port)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while logged(&db.pool).await? < EVENTS as i64 {
        ensure!(Instant::now() < deadline, "the restarted worker did not finish the stream");
        ensure!(second.try_wait()?.is_none(), "the restarted worker exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = reqwest::Client::new();
    let ready = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await?;
    assert_eq!(ready.status(), 200, "ready while consuming");
    let metrics = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.text().await?;
    assert!(metrics.contains("latechforce_consumer_events_total"), "{metrics}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let status = Command::new("kill").args(["-TERM", &second.id().to_string()]).status()?;
    ensure!(status.success(), "sending SIGTERM");
    let exit = second.wait()?;
    ensure!(exit.success(), "the worker stops cleanly on SIGTERM, got {exit}");

    assert_eq!(logged(&db.pool).await?, EVENTS as i64, "each event logged once");
    let group = format!("{prefix}.audit");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_processed_events WHERE consumer_group = $1")
        .bind(&group)
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(recorded, EVENTS as i64, "one dedup record per event");
    let dlq = TopicNames::dlq(&topics.events(AggregateType::Table), &group);
    assert!(read_n(&[dlq], 1, Duration::from_secs(2)).is_err(), "nothing dead-lettered");

    let out = ltf(&prefix).args(["audit", "tbl_3"]).env("DATABASE_URL", db.url()).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout)?.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), EVENTS / TABLES, "tbl_3's history");
    let seqs: Vec<i64> = lines.iter().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert_eq!(seqs, (1..=(EVENTS / TABLES) as i64).collect::<Vec<_>>(), "in aggregateSequence order");
    db.drop_database().await
}
