//! `ltf dlq list|show|replay` against the real stack: dead letters counted by class,
//! shown with headers and decoded values, replayed to the group's retry topic only (and
//! recorded, so a second replay skips them), and the "Done when": a dead letter of
//! `ltf worker audit` found with `ltf dlq show`, the handler healed, replayed with
//! `ltf dlq replay`, then handled exactly once.

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::{DomainEvent, EncodedEvent, EventCodec, EventPayload, Fields, RecordCreated, TopicNames};
use ltf_tests::{bootstrap, fresh_database, headers, read_n, registry_url, unique_prefix};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::Value;
use sqlx::PgPool;

fn ltf(prefix: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ltf"));
    c.args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix]);
    c.env("LTF_LOG", "warn").env("RUST_BACKTRACE", "0").env_remove("DATABASE_URL");
    c
}

/// Runs `ltf` and returns its stdout; fails with its stderr when it fails.
fn run_ok(cmd: &mut Command) -> Result<String> {
    let out: Output = cmd.output().context("running ltf")?;
    ensure!(
        out.status.success(),
        "ltf failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8(out.stdout)?)
}

async fn create(topics: &[&str], partitions: i32) -> Result<()> {
    let specs: Vec<TopicSpec> =
        topics.iter().map(|t| TopicSpec { name: (*t).to_owned(), partitions, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    Ok(())
}

/// A dead letter as the worker writes it: the original's key, value and headers plus
/// the `dlq-*` headers.
struct Letter<'a> {
    key: Option<&'a str>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn letter<'a>(
    key: Option<&'a str>,
    value: Vec<u8>,
    original: &[(String, String)],
    class: &str,
    source: &str,
    group: &str,
) -> Letter<'a> {
    let mut headers = original.to_vec();
    for (k, v) in [
        ("dlq-error-class", class),
        ("dlq-error-message", "it failed"),
        ("dlq-attempts", "3"),
        ("dlq-original-topic", source),
        ("dlq-original-partition", "0"),
        ("dlq-original-offset", "12"),
        ("dlq-original-timestamp", "1700000000000"),
        ("dlq-consumer-group", group),
        ("dlq-handler", "event-log"),
        ("dlq-first-failure", "2026-01-01T00:00:00.000Z"),
        ("dlq-last-failure", "2026-01-01T00:00:01.000Z"),
    ] {
        headers.push((k.to_owned(), v.to_owned()));
    }
    Letter { key, value, headers }
}

fn produce(topic: &str, letters: &[Letter<'_>]) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).set("enable.idempotence", "true").create()?;
    for l in letters {
        let mut h = OwnedHeaders::new();
        for (k, v) in &l.headers {
            h = h.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(l.value.as_slice()).headers(h).partition(0);
        if let Some(k) = l.key {
            r = r.key(k);
        }
        producer.send(r).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Messages in `topic` (all partitions); 0 when it does not exist.
fn count(topic: &str) -> Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut n = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            n += high - low;
        }
    }
    Ok(n)
}

fn record_event(table: &str, record: &str) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: 1,
        fields: Fields::new().into(),
        created_by: None,
    }))
}

async fn encoded(prefix: &str, e: &DomainEvent) -> Result<EncodedEvent> {
    let codec = EventCodec::new(&registry_url(), TopicNames::new(prefix))?;
    Ok(codec.encode(e).await?)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_counts_dead_letters_per_group_topic_and_class() -> Result<()> {
    let prefix = unique_prefix("dlq-list");
    let topics = TopicNames::new(&prefix);
    let (table, form) = (format!("{prefix}.table.events"), format!("{prefix}.form.events"));
    let (audit, analytics) = (format!("{prefix}.audit"), format!("{prefix}.analytics"));
    let audit_table = TopicNames::dlq(&table, &audit);
    let audit_form = TopicNames::dlq(&form, &audit);
    let analytics_table = TopicNames::dlq(&table, &analytics);
    let audit_retry = TopicNames::retry(&table, &audit);
    create(&[&table, &form, &audit_table, &audit_form, &analytics_table, &audit_retry], 2).await?;
    let _ = topics;
    let l = |class: &str, source: &str, group: &str| letter(Some("k"), vec![1, 2, 3], &[], class, source, group);
    produce(
        &audit_table,
        &[
            l("database", &table, &audit),
            l("database", &table, &audit),
            l("validation", &table, &audit),
            l("database", &table, &audit),
        ],
    )?;
    produce(&audit_form, &[l("undecodable", &form, &audit), l("undecodable", &form, &audit)])?;
    produce(&analytics_table, &[l("timeout", &table, &analytics)])?;
    produce(&audit_retry, &[l("database", &table, &audit)])?;

    let out = run_ok(ltf(&prefix).args(["dlq", "list", "--json"]))?;
    let all: Value = serde_json::from_str(&out)?;
    let rows = all.as_array().context("an array")?;
    assert_eq!(rows.len(), 3, "{out}");
    let find = |group: &str, source: &str| {
        rows.iter().find(|r| r["group"] == group && r["source_topic"] == source).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(find(&audit, &table)["by_class"], serde_json::json!({"database": 3, "validation": 1}));
    assert_eq!(find(&audit, &table)["total"], 4);
    assert_eq!(find(&audit, &form)["by_class"], serde_json::json!({"undecodable": 2}));
    assert_eq!(find(&analytics, &table)["by_class"], serde_json::json!({"timeout": 1}));

    // By worker name; the human table.
    let out = run_ok(ltf(&prefix).args(["dlq", "list", "--group", "audit"]))?;
    assert!(!out.contains(&analytics), "{out}");
    let line = out.lines().find(|l| l.contains(&table) && l.contains("database")).context("a database line")?;
    assert!(line.starts_with(&audit) && line.trim_end().ends_with(" 3"), "{line}");
    assert!(out.contains("total 6"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_partition_offset_key_headers_and_the_decoded_value() -> Result<()> {
    let prefix = unique_prefix("dlq-show");
    let table = format!("{prefix}.table.events");
    let group = format!("{prefix}.audit");
    let dlq = TopicNames::dlq(&table, &group);
    create(&[&table, &dlq], 1).await?;
    let event = record_event("tbl_show", "rec_show_1");
    let enc = encoded(&prefix, &event).await?;
    produce(
        &dlq,
        &[
            letter(Some(&enc.key), enc.value.clone(), &enc.headers, "database", &table, &group),
            letter(Some("tbl_show"), vec![1, 2, 3], &[], "undecodable", &table, &group),
        ],
    )?;

    let out = run_ok(ltf(&prefix).args(["dlq", "show", "--group", "audit"]))?;
    assert!(out.contains(&format!("== {dlq} partition 0 offset 0")), "{out}");
    assert!(out.contains("key: tbl_show"), "{out}");
    assert!(out.contains(&format!("  event-id: {}", event.event_id())), "{out}");
    assert!(out.contains("  dlq-error-class: database"), "{out}");
    assert!(out.contains("  dlq-attempts: 3"), "{out}");
    assert!(out.contains("\"recordId\": \"rec_show_1\""), "the decoded value: {out}");
    assert!(out.contains(&format!("\"eventId\": \"{}\"", event.event_id())), "{out}");
    assert!(out.contains(&format!("== {dlq} partition 0 offset 1")), "{out}");
    assert!(out.contains("value: cannot decode: "), "{out}");
    assert!(out.contains("3 bytes: 010203"), "{out}");

    let out = run_ok(ltf(&prefix).args(["dlq", "show", "--group", &group, "--class", "undecodable", "--json"]))?;
    let shown: Value = serde_json::from_str(&out)?;
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(shown[0]["offset"], 1);
    assert_eq!(shown[0]["value"]["undecodable"]["length"], 3);
    assert_eq!(shown[0]["value"]["undecodable"]["hex"], "010203");

    let out = run_ok(ltf(&prefix).args(["dlq", "show", "--group", &group, "--offset", "0", "--limit", "1", "--json"]))?;
    let shown: Value = serde_json::from_str(&out)?;
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(shown[0]["value"]["event"]["eventId"], event.event_id().to_string());
    assert_eq!(shown[0]["key"], "tbl_show");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_publishes_and_records_nothing() -> Result<()> {
    let prefix = unique_prefix("dlq-dry");
    let table = format!("{prefix}.table.events");
    let group = format!("{prefix}.audit");
    let (dlq, retry) = (TopicNames::dlq(&table, &group), TopicNames::retry(&table, &group));
    create(&[&table, &dlq, &retry], 1).await?;
    let l = |class: &str| letter(Some("k"), vec![0, 0, 0, 0, 1], &[("event-id".into(), "e-1".into())], class, &table, &group);
    produce(&dlq, &[l("database"), l("timeout")])?;

    // No DATABASE_URL needed for a dry run.
    let out = run_ok(ltf(&prefix).args(["dlq", "replay", "--group", "audit", "--dry-run"]))?;
    assert_eq!(out.lines().filter(|l| l.starts_with("would replay ") && l.contains(" -> ")).count(), 2, "{out}");
    assert!(out.contains(&format!("-> {retry}")), "{out}");
    assert!(out.contains("would replay 2 dead letter(s)"), "{out}");
    let out = run_ok(ltf(&prefix).args(["dlq", "replay", "--group", "audit", "--dry-run", "--class", "timeout", "--json"]))?;
    let summary: Value = serde_json::from_str(&out)?;
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["replayed"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(summary["replayed"][0]["offset"], 1);
    assert_eq!(count(&retry)?, 0, "nothing published");
    assert_eq!(count(&dlq)?, 2, "the DLQ is unchanged");

    // A real replay without a database to record in is refused before publishing.
    let out = ltf(&prefix).args(["dlq", "replay", "--group", "audit"]).output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    assert_eq!(count(&retry)?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_publishes_to_the_group_retry_topic_only_with_the_original_key_value_and_headers() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("dlq-replay");
    let table = format!("{prefix}.table.events");
    let (audit, analytics) = (format!("{prefix}.audit"), format!("{prefix}.analytics"));
    let (dlq, retry) = (TopicNames::dlq(&table, &audit), TopicNames::retry(&table, &audit));
    let (other_dlq, other_retry) = (TopicNames::dlq(&table, &analytics), TopicNames::retry(&table, &analytics));
    create(&[&table, &dlq, &retry, &other_dlq, &other_retry], 1).await?;
    let event = record_event("tbl_r", "rec_r");
    let enc = encoded(&prefix, &event).await?;
    produce(
        &dlq,
        &[
            letter(Some(&enc.key), enc.value.clone(), &enc.headers, "database", &table, &audit),
            letter(None, vec![9, 9], &[("event-id".into(), "e-keyless".into())], "validation", &table, &audit),
        ],
    )?;
    produce(&other_dlq, &[letter(Some("x"), vec![1], &[], "database", &table, &analytics)])?;
    let replay = |extra: &[&str]| -> Result<String> {
        run_ok(
            ltf(&prefix).args(["dlq", "replay", "--group", "audit", "--rate", "20/s"]).args(extra).env("DATABASE_URL", db.url()),
        )
    };

    let out = replay(&["--class", "database"])?;
    assert!(out.contains("replayed 1 dead letter(s); skipped 0"), "{out}");
    let got = read_n(std::slice::from_ref(&retry), 1, Duration::from_secs(20))?;
    let m = &got[0];
    assert_eq!(m.key(), Some(enc.key.as_bytes()), "the original key");
    assert_eq!(m.payload(), Some(&enc.value[..]), "the original value bytes");
    let h = headers(m);
    let originals: Vec<&(String, String)> = h.iter().filter(|(k, _)| !k.starts_with("dlq-")).collect();
    assert_eq!(originals, enc.headers.iter().collect::<Vec<_>>(), "the original headers, in order, eventId unchanged");
    assert_eq!(header(&h, "event-id"), Some(event.event_id().to_string().as_str()));
    assert_eq!(header(&h, "dlq-original-topic"), Some(table.as_str()), "the origin is kept");
    assert_eq!(header(&h, "dlq-original-offset"), Some("12"));
    for gone in ["dlq-error-class", "dlq-error-message", "dlq-attempts", "dlq-handler", "dlq-consumer-group", "dlq-first-failure"]
    {
        assert_eq!(header(&h, gone), None, "{gone} is dropped: fresh attempts");
    }
    assert!(header(&h, "dlq-replayed-at").is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    assert_eq!(header(&h, "dlq-replayed-from"), Some(format!("{dlq}/0/0").as_str()));

    // The rest; the first is recorded and skipped.
    let out = replay(&[])?;
    assert!(out.contains("replayed 1 dead letter(s); skipped 1"), "{out}");
    let got = read_n(std::slice::from_ref(&retry), 2, Duration::from_secs(20))?;
    let keyless = got.iter().find(|m| m.payload() == Some(&[9, 9][..])).context("the keyless letter")?;
    assert_eq!(keyless.key(), None, "a keyless letter stays keyless");
    assert_eq!(count(&other_retry)?, 0, "no other group's retry topic");
    assert_eq!(count(&table)?, 0, "nothing to the event topic");
    assert_eq!(count(&dlq)?, 2, "the DLQ is unchanged");

    let rows: Vec<(i32, i64, Option<String>, String, String, i32)> = sqlx::query_as(
        "SELECT dlq_partition, dlq_offset, event_id, error_class, retry_topic, replays FROM ltf_dlq_replays
         WHERE consumer_group = $1 AND dlq_topic = $2 ORDER BY dlq_offset",
    )
    .bind(&audit)
    .bind(&dlq)
    .fetch_all(&db.pool)
    .await?;
    assert_eq!(
        rows,
        vec![
            (0, 0, Some(event.event_id().to_string()), "database".into(), retry.clone(), 1),
            (0, 1, Some("e-keyless".into()), "validation".into(), retry.clone(), 1)
        ]
    );

    // A second replay changes nothing; --again with --offsets replays one letter once more.
    let out = replay(&[])?;
    assert!(out.contains("replayed 0 dead letter(s); skipped 2"), "{out}");
    assert_eq!(count(&retry)?, 2);
    let out = replay(&["--again", "--offsets", "0:0", "--topic", "table"])?;
    assert!(out.contains("replayed 1 dead letter(s)"), "{out}");
    assert_eq!(count(&retry)?, 3);
    let replays: i32 = sqlx::query_scalar("SELECT replays FROM ltf_dlq_replays WHERE dlq_offset = 0").fetch_one(&db.pool).await?;
    assert_eq!(replays, 2);
    db.drop_database().await
}

fn spawn_worker(prefix: &str, db_url: &str) -> Result<Child> {
    ltf(prefix)
        .args(["worker", "audit", "--listen", "127.0.0.1:0", "--session-timeout-ms", "6000", "--max-attempts", "2"])
        .env("DATABASE_URL", db_url)
        .stdout(Stdio::null())
        .spawn()
        .context("starting ltf worker audit")
}

async fn logged(pool: &PgPool, event_id: Option<uuid::Uuid>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM ltf_event_log WHERE $1::uuid IS NULL OR event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await?)
}

async fn wait_logged(pool: &PgPool, n: i64, worker: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while logged(pool, None).await? < n {
        ensure!(Instant::now() < deadline, "the worker did not log {n} events in time");
        ensure!(worker.try_wait()?.is_none(), "the worker exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_of_a_failing_handler_is_shown_healed_replayed_and_handled_exactly_once() -> Result<()> {
    let started = Instant::now();
    let db = fresh_database().await?;
    let prefix = unique_prefix("dlq-done");
    let topics = TopicNames::new(&prefix);
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 2, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let table = format!("{prefix}.table.events");
    let group = format!("{prefix}.audit");
    let (dlq, retry) = (TopicNames::dlq(&table, &group), TopicNames::retry(&table, &group));
    let events: Vec<DomainEvent> = (0..5).map(|i| record_event("tbl_done", &format!("rec_{i}")).with_sequence(i + 1)).collect();
    let bad = events[2].event_id();
    // The handler's database refuses one event: a retryable `database` error (a
    // serialization failure, SQLSTATE 40001; a plain RAISE would be permanent),
    // dead-lettered once the attempts are spent.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.event_id = '{bad}' THEN RAISE EXCEPTION 'refused for the test' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER test_refuse BEFORE INSERT ON ltf_event_log FOR EACH ROW EXECUTE FUNCTION test_refuse();"
    ))
    .execute(&db.pool)
    .await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?.publish_batch(&events).await?;

    let mut worker = spawn_worker(&prefix, &db.url())?;
    wait_logged(&db.pool, 4, &mut worker).await?;
    let first = read_n(std::slice::from_ref(&dlq), 1, Duration::from_secs(60))?;
    assert_eq!(header(&headers(&first[0]), "event-id"), Some(bad.to_string().as_str()));
    eprintln!("dead-lettered after {:?}", started.elapsed());

    // Found with `ltf dlq show`.
    let out = run_ok(ltf(&prefix).args(["dlq", "show", "--group", "audit"]))?;
    assert!(out.contains(&format!("  event-id: {bad}")), "{out}");
    assert!(out.contains("  dlq-error-class: database"), "{out}");
    assert!(out.contains("refused for the test"), "{out}");
    assert!(out.contains(&format!("\"eventId\": \"{bad}\"")), "decoded: {out}");

    // Replayed before the handler is healed: it fails again and goes back to the same DLQ
    // through the worker's normal path, its origin still the event topic.
    let replay = || run_ok(ltf(&prefix).args(["dlq", "replay", "--group", "audit"]).env("DATABASE_URL", db.url()));
    let out = replay()?;
    assert!(out.contains("replayed 1 dead letter(s); skipped 0"), "{out}");
    let again = read_n(std::slice::from_ref(&dlq), 2, Duration::from_secs(60))?;
    let second = headers(&again[1]);
    let firsth = headers(&again[0]);
    assert_eq!(header(&second, "event-id"), Some(bad.to_string().as_str()));
    assert_eq!(header(&second, "dlq-original-topic"), Some(table.as_str()), "the origin is the event topic, not {retry}");
    assert_eq!(header(&second, "dlq-original-offset"), header(&firsth, "dlq-original-offset"));
    assert_eq!(header(&second, "dlq-attempts"), Some("2"), "fresh attempts");
    assert_eq!(header(&second, "dlq-replayed-at"), None, "the writer replaced every dlq-* header");
    assert_eq!(logged(&db.pool, Some(bad)).await?, 0);

    // Healed, replayed: the second letter only (the first was replayed already).
    sqlx::raw_sql("DROP TRIGGER test_refuse ON ltf_event_log").execute(&db.pool).await?;
    let out = replay()?;
    assert!(out.contains("replayed 1 dead letter(s); skipped 1"), "{out}");
    wait_logged(&db.pool, 5, &mut worker).await?;
    assert_eq!(logged(&db.pool, Some(bad)).await?, 1, "handled once");
    let topic: String =
        sqlx::query_scalar("SELECT topic FROM ltf_event_log WHERE event_id = $1").bind(bad).fetch_one(&db.pool).await?;
    assert_eq!(topic, retry, "handled from the group's retry topic");

    // A second replay publishes nothing; even `--again` changes nothing (same eventId:
    // the dedup store drops it).
    let out = replay()?;
    assert!(out.contains("replayed 0 dead letter(s); skipped 2"), "{out}");
    let out = run_ok(ltf(&prefix).args(["dlq", "replay", "--group", "audit", "--again"]).env("DATABASE_URL", db.url()))?;
    assert!(out.contains("replayed 2 dead letter(s)"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&retry)? < 4 {
        ensure!(Instant::now() < deadline, "the replays did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Handled: the running group (seen by `ltf status`) committed its retry topic to the end.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = run_ok(ltf(&prefix).args(["status", "--json"]))?;
        let s: Value = serde_json::from_str(&out)?;
        let g = s["groups"].as_array().and_then(|gs| gs.iter().find(|g| g["group"] == group.as_str())).cloned();
        let g = g.context("the worker's group in ltf status")?;
        let t = g["topics"].as_array().and_then(|ts| ts.iter().find(|t| t["topic"] == retry.as_str())).cloned();
        let committed: i64 = t
            .as_ref()
            .and_then(|t| t["partitions"].as_array())
            .map_or(0, |ps| ps.iter().filter_map(|p| p["committed"].as_i64()).sum());
        if committed == 4 {
            assert_eq!(t.as_ref().map(|t| t["lag"].clone()), Some(Value::from(0)), "{out}");
            assert_eq!(g["state"], "Stable", "{out}");
            assert_eq!(g["members"].as_array().map(Vec::len), Some(1), "{out}");
            assert_eq!(g["dead_letters_total"], 2, "{out}");
            break;
        }
        ensure!(Instant::now() < deadline, "the worker did not commit the replays: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(logged(&db.pool, None).await?, 5);
    assert_eq!(logged(&db.pool, Some(bad)).await?, 1, "still once");
    assert_eq!(count(&dlq)?, 2, "nothing dead-lettered again");
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ltf_processed_events WHERE consumer_group = $1 AND event_id = $2")
            .bind(&group)
            .bind(bad)
            .fetch_one(&db.pool)
            .await?;
    assert_eq!(processed, 1);

    let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status()?;
    ensure!(status.success(), "sending SIGTERM");
    ensure!(worker.wait()?.success(), "the worker stops cleanly");
    eprintln!("done in {:?}", started.elapsed());
    db.drop_database().await
}
