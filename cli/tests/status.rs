//! `ltf status` against the real stack: a group with a known lag (messages and seconds),
//! known dead letters and a known outbox backlog; without DATABASE_URL the outbox section
//! is skipped with a note; `--watch` refreshes until Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_schemas::TopicNames;
use ltf_tests::{bootstrap, fresh_database, registry_url, unique_prefix};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

fn ltf(prefix: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ltf"));
    c.args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix]);
    c.env("LTF_LOG", "warn").env("RUST_BACKTRACE", "0").env_remove("DATABASE_URL");
    c
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().context("running ltf")?;
    ensure!(out.status.success(), "ltf failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// `n` messages to partition `partition` of `topic`, timestamped `ts_ms`, with `headers`.
fn produce(topic: &str, partition: i32, n: usize, ts_ms: i64, headers: &[(&str, &str)]) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    for i in 0..n {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let key = format!("k{i}");
        let r: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(topic).partition(partition).key(key.as_str()).payload(&[1u8, 2, 3][..]).timestamp(ts_ms).headers(h);
        producer.send(r).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_lag_dead_letters_and_the_outbox_backlog() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("status");
    let table = format!("{prefix}.table.events");
    let form = format!("{prefix}.form.events");
    let group = format!("{prefix}.audit");
    let dlq = TopicNames::dlq(&table, &group);
    let specs: Vec<TopicSpec> =
        [&table, &form, &dlq].iter().map(|t| TopicSpec { name: (*t).clone(), partitions: 2, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;

    // 10 messages two minutes old on partition 0, 3 fresh ones on partition 1; the group
    // committed 4 and 3: lag 6 (the oldest unconsumed is ~120 s old) and 0.
    let now_ms = chrono::Utc::now().timestamp_millis();
    produce(&table, 0, 10, now_ms - 120_000, &[])?;
    produce(&table, 1, 3, now_ms, &[])?;
    produce(&dlq, 0, 2, now_ms, &[("dlq-error-class", "database")])?;
    produce(&dlq, 1, 1, now_ms, &[("dlq-error-class", "validation")])?;
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&table, 0, Offset::Offset(4))?;
    tpl.add_partition_offset(&table, 1, Offset::Offset(3))?;
    committer.commit(&tpl, CommitMode::Sync)?;
    drop(committer);

    // Three unsent outbox rows, the oldest 30 s old, and a sent one.
    for (i, age, sent) in [(1, 30, false), (2, 10, false), (3, 5, false), (4, 300, true)] {
        sqlx::query(
            "INSERT INTO ltf_outbox (event_id, aggregate_type, aggregate_id, aggregate_sequence, event_type, topic, key,
                 value, headers, created_at, sent_at)
             VALUES ($1, 'table', 'tbl_s', $2, 'record-created', $3, 'tbl_s', '\\x00'::bytea, '{}'::jsonb,
                 now() - make_interval(secs => $4), CASE WHEN $5 THEN now() END)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(i as i64)
        .bind(&table)
        .bind(age as f64)
        .bind(sent)
        .execute(&db.pool)
        .await?;
    }

    let out = run_ok(ltf(&prefix).args(["status", "--json"]).env("DATABASE_URL", db.url()))?;
    let s: Value = serde_json::from_str(&out)?;
    let groups = s["groups"].as_array().context("groups")?;
    assert_eq!(groups.len(), 1, "{out}");
    let g = &groups[0];
    assert_eq!(g["group"], group);
    assert_eq!(g["state"], "Empty", "{out}");
    assert_eq!(g["members"].as_array().map(Vec::len), Some(0));
    let topics = g["topics"].as_array().context("topics")?;
    assert_eq!(topics.len(), 1, "only the topic the group committed: {out}");
    let t = &topics[0];
    assert_eq!(t["topic"], table);
    assert_eq!(t["lag"], 6);
    let lag_s = t["lag_seconds"].as_f64().context("lag_seconds")?;
    assert!((119.0..200.0).contains(&lag_s), "lag seconds {lag_s}");
    assert_eq!(t["partitions"][0]["committed"], 4);
    assert_eq!(t["partitions"][0]["high_watermark"], 10);
    assert_eq!(t["partitions"][1]["lag"], 0);
    assert_eq!(t["partitions"][1]["lag_seconds"], 0.0);
    assert_eq!(g["dead_letters_total"], 3);
    assert_eq!(g["dead_letters"][0]["by_class"], serde_json::json!({"database": 2, "validation": 1}));
    assert_eq!(s["outbox"]["unsent"], 3);
    let age = s["outbox"]["oldest_age_seconds"].as_f64().context("age")?;
    assert!((30.0..100.0).contains(&age), "oldest age {age}");

    // Human output; no database: the outbox is skipped with a note.
    let out = run_ok(ltf(&prefix).args(["status"]))?;
    assert!(out.contains(&format!("group {group}  state Empty  members 0")), "{out}");
    let line = out.lines().find(|l| l.trim_start().starts_with(&table)).context("the lag line")?;
    assert_eq!(line.split_whitespace().nth(1), Some("6"), "{line}");
    assert!(out.contains("dead letters 3"), "{out}");
    assert!(out.contains("outbox skipped: no DATABASE_URL"), "{out}");

    // --watch refreshes until Ctrl-C (SIGINT), then exits cleanly.
    let child = ltf(&prefix).args(["status", "--watch", "1"]).stdout(Stdio::piped()).spawn()?;
    tokio::time::sleep(Duration::from_secs(6)).await; // a refresh takes ~1.5 s, then 1 s of sleep
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status()?;
    ensure!(sent.success(), "sending SIGINT");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut child = child;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("ltf status --watch did not stop on Ctrl-C");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "exits cleanly on Ctrl-C: {}", out.status);
    let refreshes = String::from_utf8_lossy(&out.stdout).matches("ltf status  prefix").count();
    assert!(refreshes >= 2, "refreshed {refreshes} times");
    db.drop_database().await
}
