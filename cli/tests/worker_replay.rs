//! Replay safety of `ltf worker analytics`: the group's offsets are deleted and the whole
//! stream is consumed again (same dedup store): the rollups do not change, because each
//! rollup update commits with the event's dedup record.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::{
    ActionExecuted, ActionResult, AutomationTriggered, ConnectionEstablished, DomainEvent, EventCodec, EventPayload, Fields,
    FormSubmitted, RecordCreated, RecordDeleted, TopicNames,
};
use ltf_tests::{bootstrap, fresh_database, registry_url, unique_prefix, wait_caught_up};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use sqlx::PgPool;

fn spawn_worker(prefix: &str, db_url: &str) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_ltf"))
        .args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix])
        .args(["worker", "analytics", "--listen", "127.0.0.1:0", "--session-timeout-ms", "6000"])
        .env("DATABASE_URL", db_url)
        .env("LTF_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting ltf worker analytics")
}

fn stop(mut child: Child) -> Result<()> {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    ensure!(status.success(), "sending SIGTERM");
    let exit = child.wait()?;
    ensure!(exit.success(), "the worker stops cleanly on SIGTERM, got {exit}");
    Ok(())
}

fn events() -> Vec<DomainEvent> {
    let mut out = Vec::new();
    for i in 0..30 {
        out.push(EventPayload::RecordCreated(RecordCreated {
            table_id: format!("tbl_{}", i % 3),
            record_id: format!("r{i}"),
            record_version: 1,
            fields: Fields::new().into(),
            created_by: None,
        }));
    }
    for i in 0..6 {
        out.push(EventPayload::RecordDeleted(RecordDeleted {
            table_id: "tbl_0".into(),
            record_id: format!("r{}", i * 3),
            record_version: 2,
            deleted_fields: Fields::new().into(),
        }));
    }
    for i in 0..8 {
        out.push(EventPayload::FormSubmitted(FormSubmitted {
            form_id: "frm_contact".into(),
            submission_id: format!("s{i}"),
            data: Fields::new().into(),
            submitted_by: None,
        }));
    }
    for i in 0..4 {
        out.push(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: format!("c{i}"),
            service: if i < 3 { "github".into() } else { "google".into() },
            user_id: "u".into(),
        }));
    }
    for i in 0..5 {
        out.push(EventPayload::AutomationTriggered(AutomationTriggered {
            automation_id: "auto_1".into(),
            trigger_id: "t".into(),
            trigger_data: Fields::new().into(),
            run_id: format!("run{i}"),
        }));
        out.push(EventPayload::ActionExecuted(ActionExecuted {
            automation_id: "auto_1".into(),
            action_id: "a".into(),
            run_id: format!("run{i}"),
            result: if i == 4 { ActionResult::Failure } else { ActionResult::Success },
            data: None,
            error: (i == 4).then(|| "timeout".to_owned()),
        }));
    }
    out.into_iter().map(DomainEvent::new).collect()
}

async fn rollups(pool: &PgPool) -> Result<BTreeMap<(String, String, String), i64>> {
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT dimension, key, metric, sum(value)::bigint FROM ltf_analytics_rollups GROUP BY 1, 2, 3")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(d, k, m, v)| ((d, k, m), v)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_the_whole_stream_again_changes_no_rollup() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("replay");
    let topics = TopicNames::new(&prefix);
    let all = topics.all_events();
    let specs: Vec<TopicSpec> =
        all.iter().map(|name| TopicSpec { name: name.clone(), partitions: 3, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    let stream = events();
    publisher.publish_batch(&stream).await?;
    let group = format!("{prefix}.analytics");

    let worker = spawn_worker(&prefix, &db.url())?;
    wait_caught_up(&group, &all, Duration::from_secs(90))?;
    stop(worker)?;
    let first = rollups(&db.pool).await?;
    let get = |d: &str, k: &str, m: &str| first.get(&(d.to_owned(), k.to_owned(), m.to_owned())).copied().unwrap_or(0);
    assert_eq!(get("table", "tbl_0", "records_created"), 10);
    assert_eq!(get("table", "tbl_0", "records_deleted"), 6);
    assert_eq!(get("form", "frm_contact", "form_submissions"), 8);
    assert_eq!(get("service", "github", "connections_established"), 3);
    assert_eq!(get("automation", "auto_1", "automation_runs"), 5);
    assert_eq!(get("automation", "auto_1", "actions_succeeded"), 4);
    assert_eq!(get("automation", "auto_1", "actions_failed"), 1);

    // Replay: forget the group's offsets; the next run reads everything again.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = admin.delete_groups(&[group.as_str()], &AdminOptions::new()).await?;
        if results.iter().all(Result::is_ok) {
            break;
        }
        ensure!(Instant::now() < deadline, "could not delete the group's offsets: {results:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let worker = spawn_worker(&prefix, &db.url())?;
    wait_caught_up(&group, &all, Duration::from_secs(90))?;
    stop(worker)?;
    assert_eq!(rollups(&db.pool).await?, first, "a replay counts nothing twice");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM ltf_processed_events WHERE consumer_group = $1")
        .bind(&group)
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(recorded as usize, stream.len(), "one dedup record per event");
    db.drop_database().await
}
