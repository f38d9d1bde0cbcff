//! The outbox relay against the real PostgreSQL, registry and Kafka (a fresh database and
//! topic prefix per test): rows published in order with their bytes and headers and
//! marked sent, nothing of a rolled-back transaction, two relays publishing every row
//! once in per-key order, backlog, pruning and the wait-for-publish mode.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ltf_domain::outbox::wait_published;
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::{CreateMultipleRecordsInput, CreateRecordInput, RecordPatch, UpdateMultipleRecordsInput};
use ltf_domain::{ChangeContext, CreateMultipleRecords, CreateRecord, RecordLimits, UpdateMultipleRecords, UseCase};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_producers::relay::{Relay, RelayConfig};
use ltf_schemas::{AggregateType, EventCodec, Fields, TopicNames};
use ltf_tests::delivery::{check_delivery, outbox_sequences, read_until_seen};
use ltf_tests::{bootstrap, count_rows, fresh_database, headers, outbox_rows, read_n, registry_url, unique_prefix, TestDb};
use rdkafka::Message;
use serde_json::json;
use sqlx::{Connection, PgPool};

struct Setup {
    db: TestDb,
    codec: Arc<EventCodec>,
    topic: String,
}

/// A fresh database with `tables` tables `tbl_0..`, the prefix's topics created.
async fn setup(test: &str, tables: usize) -> Result<Setup> {
    let db = fresh_database().await?;
    for i in 0..tables {
        let table = TableDef {
            id: format!("tbl_{i}"),
            name: format!("Table {i}"),
            fields: vec![FieldDef::new("title", FieldType::Text), FieldDef::new("n", FieldType::Integer)],
        };
        tables::insert(&mut *db.pool.acquire().await?, &table).await?;
    }
    let topics = TopicNames::new(unique_prefix(test));
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 3, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let topic = topics.events(AggregateType::Table);
    let codec = Arc::new(EventCodec::new(&registry_url(), topics)?);
    Ok(Setup { db, codec, topic })
}

fn relay(s: &Setup, config: RelayConfig) -> Result<Relay> {
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), s.codec.clone())?;
    Ok(Relay::new(s.db.pool.clone(), publisher, config)?)
}

fn fields(i: usize) -> Fields {
    json!({"title": format!("task {i}"), "n": i}).as_object().cloned().unwrap_or_default()
}

/// Writes `batches` batches of `per_batch` records to table `tbl_<table>`, then updates
/// each batch once: 2 × batches × per_batch events.
async fn write_load(pool: PgPool, codec: Arc<EventCodec>, table: usize, batches: usize, per_batch: usize) -> Result<()> {
    let ctx = ChangeContext::user("loader");
    let create = CreateMultipleRecords::new(RecordLimits::default());
    for b in 0..batches {
        let input = CreateMultipleRecordsInput {
            table_id: format!("tbl_{table}"),
            records: (0..per_batch).map(|i| fields(b * per_batch + i)).collect(),
        };
        let created = create.run(&pool, &codec, &ctx, input).await?.value;
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

#[tokio::test]
async fn publishes_rows_in_sequence_order_with_their_bytes_and_headers_and_marks_them_sent() -> Result<()> {
    let s = setup("relay-order", 1).await?;
    write_load(s.db.pool.clone(), s.codec.clone(), 0, 2, 5).await?;
    let rows = outbox_rows(&s.db.pool).await?;
    assert_eq!(rows.len(), 20);

    let published = relay(&s, RelayConfig { batch_size: 7, ..Default::default() })?.drain().await?;
    assert_eq!(published, 20, "every row, in batches of 7");
    let after = outbox_rows(&s.db.pool).await?;
    assert!(after.iter().all(|r| r.sent_at.is_some()), "every published row is marked sent");

    let msgs = read_n(std::slice::from_ref(&s.topic), 20, Duration::from_secs(30))?;
    for (m, row) in msgs.iter().zip(&rows) {
        assert_eq!(m.key(), Some(row.key.as_bytes()));
        assert_eq!(m.payload(), Some(row.value.as_slice()), "the stored bytes, unchanged");
        let mut got = headers(m);
        got.sort();
        let mut want: Vec<(String, String)> =
            row.headers.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
        want.sort();
        assert_eq!(got, want);
    }
    let seqs = outbox_sequences(&s.db.pool).await?;
    let report = check_delivery(&msgs, &seqs)?;
    assert_eq!(report.duplicates, 0);
    assert_eq!(relay(&s, RelayConfig::default())?.drain().await?, 0, "nothing left to publish");
    s.db.drop_database().await
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() -> Result<()> {
    let s = setup("relay-rollback", 1).await?;
    let ctx = ChangeContext::user("u");
    let mut conn = s.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let input = CreateRecordInput { table_id: "tbl_0".into(), fields: fields(1) };
    CreateRecord.execute(&mut tx, &s.codec, &ctx, input).await?;
    tx.rollback().await?;
    // Back to the pool: the teardown closes the pool, which waits for every connection.
    drop(conn);
    let input = CreateRecordInput { table_id: "tbl_0".into(), fields: fields(2) };
    let kept = CreateRecord.run(&s.db.pool, &s.codec, &ctx, input).await?;

    assert_eq!(relay(&s, RelayConfig::default())?.drain().await?, 1);
    let expected: HashSet<_> = kept.events.iter().map(|e| e.event_id()).collect();
    let msgs = read_until_seen(std::slice::from_ref(&s.topic), &expected, Duration::from_secs(30), Duration::from_secs(2))?;
    assert_eq!(msgs.len(), 1, "only the committed record's event reached Kafka");
    s.db.drop_database().await
}

#[tokio::test]
async fn two_relays_publish_every_row_once_in_per_key_order() -> Result<()> {
    let s = setup("relay-two", 4).await?;
    let config = RelayConfig { batch_size: 50, poll_interval: Duration::from_millis(50), ..Default::default() };
    let (a, b) = (relay(&s, config.clone())?, relay(&s, config)?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let ra = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        async move { a.run(stop).await }
    });
    let rb = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        async move { b.run(stop).await }
    });
    // Four writers, one per table (aggregate), while both relays run: 4 × 2 × 10 × 25.
    let writers: Vec<_> = (0..4).map(|t| tokio::spawn(write_load(s.db.pool.clone(), s.codec.clone(), t, 10, 25))).collect();
    for w in writers {
        w.await??;
    }
    let pending = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ltf_outbox WHERE sent_at IS NULL").fetch_one(&pool).await
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pending(s.db.pool.clone()).await? > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the relays did not drain the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true)?;
    ra.await??;
    rb.await??;

    let seqs = outbox_sequences(&s.db.pool).await?;
    assert_eq!(seqs.len(), 2000);
    let expected: HashSet<_> = seqs.keys().copied().collect();
    let msgs = read_until_seen(std::slice::from_ref(&s.topic), &expected, Duration::from_secs(60), Duration::from_secs(2))?;
    let report = check_delivery(&msgs, &seqs)?;
    assert_eq!(report.duplicates, 0, "no row was published twice");
    assert_eq!(msgs.len(), 2000);
    s.db.drop_database().await
}

#[tokio::test]
async fn backlog_counts_unsent_rows_and_pruning_deletes_only_sent_rows_past_the_retention() -> Result<()> {
    let s = setup("relay-backlog", 1).await?;
    write_load(s.db.pool.clone(), s.codec.clone(), 0, 1, 3).await?;
    let r = relay(&s, RelayConfig { retention: Duration::ZERO, ..Default::default() })?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let backlog = r.backlog().await?;
    assert_eq!(backlog.rows, 6);
    assert!(backlog.oldest_age >= Duration::from_millis(50), "{backlog:?}");
    assert_eq!(r.prune().await?, 0, "unsent rows are never pruned");

    r.drain().await?;
    write_load(s.db.pool.clone(), s.codec.clone(), 0, 1, 1).await?;
    let backlog = r.backlog().await?;
    assert_eq!(backlog.rows, 2);
    assert_eq!(r.prune().await?, 6, "the six sent rows are past a zero retention");
    assert_eq!(count_rows(&s.db.pool, "ltf_outbox").await?, 2, "the two unsent rows stay");

    let keep = relay(&s, RelayConfig::default())?;
    keep.drain().await?;
    assert_eq!(keep.prune().await?, 0, "rows sent within the 24 h retention stay");
    assert_eq!(keep.backlog().await?.rows, 0);
    assert_eq!(keep.backlog().await?.oldest_age, Duration::ZERO);
    s.db.drop_database().await
}

#[tokio::test]
async fn wait_published_returns_once_the_relay_published_and_false_on_timeout() -> Result<()> {
    let s = setup("relay-wait", 1).await?;
    let ctx = ChangeContext::user("u");
    let input = CreateRecordInput { table_id: "tbl_0".into(), fields: fields(1) };
    let out = CreateRecord.run(&s.db.pool, &s.codec, &ctx, input).await?;
    let ids: Vec<_> = out.events.iter().map(|e| e.event_id()).collect();
    assert!(!wait_published(&s.db.pool, &ids, Duration::from_millis(200)).await?, "no relay runs yet");

    let r = relay(&s, RelayConfig { poll_interval: Duration::from_secs(30), ..Default::default() })?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        r.run(async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        })
        .await
    });
    // The first drain publishes the row; a row written later is picked up on the
    // outbox notification, long before the 30 s poll.
    assert!(wait_published(&s.db.pool, &ids, Duration::from_secs(10)).await?);
    let input = CreateRecordInput { table_id: "tbl_0".into(), fields: fields(2) };
    let out = CreateRecord.run(&s.db.pool, &s.codec, &ctx, input).await?;
    let ids: Vec<_> = out.events.iter().map(|e| e.event_id()).collect();
    assert!(wait_published(&s.db.pool, &ids, Duration::from_secs(5)).await?, "woken by the notification");
    stop_tx.send(true)?;
    task.await??;
    s.db.drop_database().await
}

/// Sets `max.message.bytes` of `topic`.
async fn limit_topic(topic: &str, bytes: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    let config = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", bytes);
    for r in admin.alter_configs([&config], &AdminOptions::new()).await? {
        r.map_err(|(_, e)| anyhow::anyhow!("altering {topic}: {e}"))?;
    }
    Ok(())
}

/// A row Kafka refuses for good (the topic takes smaller messages than the API let
/// through) wedged the relay for every aggregate. It is parked: the other aggregates
/// flow, and the later rows of its aggregate wait behind it.
#[tokio::test]
async fn a_row_kafka_refuses_for_good_is_parked_and_other_aggregates_keep_flowing() -> Result<()> {
    let s = setup("relay-park", 2).await?;
    write_a_row_too_large_for_the_topic(&s).await?;
    let relay = relay(&s, RelayConfig::default())?;
    let published = relay.drain().await?;
    assert_eq!(published, 1, "the other aggregate's row");
    let rows: Vec<(String, i64, bool, bool)> = sqlx::query_as(
        "SELECT aggregate_id, aggregate_sequence, sent_at IS NOT NULL, parked_at IS NOT NULL FROM ltf_outbox ORDER BY id",
    )
    .fetch_all(&s.db.pool)
    .await?;
    assert_eq!(
        rows,
        vec![("tbl_0".into(), 1, false, true), ("tbl_0".into(), 2, false, false), ("tbl_1".into(), 1, true, false)],
        "parked, waiting behind it, published"
    );
    let reason: String =
        sqlx::query_scalar("SELECT park_reason FROM ltf_outbox WHERE parked_at IS NOT NULL").fetch_one(&s.db.pool).await?;
    assert!(reason.to_lowercase().contains("too large"), "{reason}");
    assert_eq!(relay.backlog().await?.parked, 1, "the parked gauge's source");
    s.db.drop_database().await
}

#[tokio::test]
async fn a_parked_row_retried_after_the_fix_is_published_before_the_rows_behind_it() -> Result<()> {
    use ltf_domain::outbox;
    let s = setup("relay-park-retry", 2).await?;
    write_a_row_too_large_for_the_topic(&s).await?;
    let relay = relay(&s, RelayConfig::default())?;
    relay.drain().await?;
    let parked = outbox::parked(&s.db.pool).await?;
    assert_eq!(parked.len(), 1);
    // Retried before the cause is fixed: parked again.
    assert!(outbox::retry(&s.db.pool, parked[0].id).await?);
    assert_eq!(relay.drain().await?, 0);
    assert_eq!(outbox::parked(&s.db.pool).await?.len(), 1, "parked again");
    // The topic takes it now.
    limit_topic(&s.topic, "2000000").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(outbox::retry(&s.db.pool, parked[0].id).await?);
    assert_eq!(relay.drain().await?, 2, "the parked row and the one behind it");
    let messages = read_n(std::slice::from_ref(&s.topic), 3, Duration::from_secs(30))?;
    let published: Vec<String> = messages
        .iter()
        .filter(|m| m.key() == Some(b"tbl_0".as_slice()))
        .filter_map(|m| headers(m).into_iter().find(|(k, _)| k == "event-id").map(|(_, v)| v))
        .collect();
    let by_sequence: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM ltf_outbox WHERE aggregate_id = 'tbl_0' ORDER BY aggregate_sequence")
            .fetch_all(&s.db.pool)
            .await?;
    let by_sequence: Vec<String> = by_sequence.iter().map(ToString::to_string).collect();
    assert_eq!(published, by_sequence, "tbl_0's rows in sequence order");
    s.db.drop_database().await
}

#[tokio::test]
async fn a_skipped_row_is_a_recorded_gap_and_the_rows_behind_it_flow() -> Result<()> {
    use ltf_domain::outbox;
    let s = setup("relay-park-skip", 2).await?;
    write_a_row_too_large_for_the_topic(&s).await?;
    let relay = relay(&s, RelayConfig::default())?;
    relay.drain().await?;
    let parked = outbox::parked(&s.db.pool).await?;
    assert!(outbox::skip(&s.db.pool, parked[0].id, "ops@example.com", "larger than any topic may hold").await?);
    assert!(!outbox::skip(&s.db.pool, parked[0].id, "ops@example.com", "again").await?, "skipped once");
    assert_eq!(relay.drain().await?, 1, "the row behind the skipped one");
    let gaps = outbox::skipped(&s.db.pool, "tbl_0").await?;
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].aggregate_sequence, gaps[0].skipped_by.as_deref()), (1, Some("ops@example.com")));
    assert_eq!(gaps[0].skip_reason.as_deref(), Some("larger than any topic may hold"));
    assert!(gaps[0].skipped_at.is_some());
    assert_eq!(relay.backlog().await?, ltf_domain::outbox::Backlog { rows: 0, ..relay.backlog().await? }, "nothing left to send");
    s.db.drop_database().await
}

/// Limits the table topic to 50 kB messages and writes, in order: a record of `tbl_0` too
/// large for it, a small one of `tbl_0`, a small one of `tbl_1`.
async fn write_a_row_too_large_for_the_topic(s: &Setup) -> Result<()> {
    limit_topic(&s.topic, "50000").await?;
    let ctx = ChangeContext::default();
    let write = |table: &str, title: String| {
        let input = CreateRecordInput {
            table_id: table.into(),
            fields: json!({"title": title}).as_object().cloned().unwrap_or_default(),
        };
        let (pool, codec, ctx) = (s.db.pool.clone(), s.codec.clone(), ctx.clone());
        async move { anyhow::Ok(CreateRecord.run(&pool, &codec, &ctx, input).await?) }
    };
    // Random hex: the producer compresses (zstd), so the text must not compress below the limit.
    let incompressible: String = (0..10_000).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    write("tbl_0", incompressible).await?;
    write("tbl_0", "after the big one".into()).await?;
    write("tbl_1", "other table".into()).await?;
    Ok(())
}

/// The order of one aggregate's rows holds across a row the topic refuses: the first row
/// of a batch is too large for the topic while the later rows of the same aggregate would
/// be in flight in produce requests of their own (one message per request). Kafka accepts
/// any first sequence of a producer it has no state for, so once sent, a later row could
/// be written before it: the relay parks it before sending. No later row reaches the
/// topic before it, also once it is retried after the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_too_large_for_its_topic_never_lets_a_later_row_of_its_aggregate_overtake() -> Result<()> {
    use ltf_domain::outbox;

    let s = setup("relay-gapless", 1).await?;
    limit_topic(&s.topic, "50000").await?;
    let ctx = ChangeContext::default();
    let n = 20;
    let incompressible: String = (0..10_000).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    for i in 0..n {
        let title = if i == 0 { incompressible.clone() } else { format!("task {i}") };
        let input = CreateRecordInput {
            table_id: "tbl_0".into(),
            fields: json!({"title": title}).as_object().cloned().unwrap_or_default(),
        };
        CreateRecord.run(&s.db.pool, &s.codec, &ctx, input).await?;
    }
    let mut config = PublisherConfig::with_bootstrap(bootstrap());
    // One message per produce request, several requests in flight.
    config.extra.insert("batch.num.messages".into(), "1".into());
    let relay = Relay::new(s.db.pool.clone(), EventPublisher::new(&config, s.codec.clone())?, RelayConfig::default())?;
    settle(&relay).await?;
    let parked = outbox::parked(&s.db.pool).await?;
    assert_eq!(parked.iter().map(|p| p.aggregate_sequence).collect::<Vec<_>>(), vec![1], "the big row is parked");
    assert_eq!(count_rows(&s.db.pool, "ltf_outbox WHERE sent_at IS NOT NULL").await?, 0, "the rows behind it wait");
    fix_retry_and_check_order(&s, &relay, parked[0].id, n).await?;
    s.db.drop_database().await
}

/// The order of one aggregate's rows holds across a refusal the relay cannot foresee: the
/// relay read the topic's `max.message.bytes` before an operator lowered it, so the big
/// row passes the relay's own size check and Kafka refuses it while the later rows of its
/// aggregate are in flight in produce requests of their own. None of them may reach a
/// reader before the big row does, also once the big row is retried after the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_kafka_refuses_unforeseen_never_lets_a_later_row_of_its_aggregate_overtake() -> Result<()> {
    unforeseen_refusal("relay-unforeseen", 0).await
}

/// As above, with rows of the aggregate before the refused one in the same batch: they
/// are published without it, then it is parked, and the rows behind it wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_before_a_row_kafka_refuses_unforeseen_are_published_and_the_later_ones_wait() -> Result<()> {
    unforeseen_refusal("relay-unforeseen-mid", 3).await
}

/// Writes 20 rows of one aggregate, the one at `big_at` too large for the topic's new
/// limit that the relay does not know yet; the relay publishes the rows before it, parks
/// it, keeps the later ones back; after the fix and a retry, the topic holds them in order.
async fn unforeseen_refusal(test: &str, big_at: usize) -> Result<()> {
    use ltf_domain::outbox;

    let s = setup(test, 1).await?;
    let mut config = PublisherConfig::with_bootstrap(bootstrap());
    // One message per produce request, several requests in flight.
    config.extra.insert("batch.num.messages".into(), "1".into());
    let publisher = EventPublisher::new(&config, s.codec.clone())?;
    // The relay's publisher knows the topic's limit from before the change.
    let before = publisher.message_limit(&s.topic).await;
    assert!(before > 500_000, "the topic's default limit: {before}");
    limit_topic(&s.topic, "50000").await?;
    let ctx = ChangeContext::default();
    let n = 20;
    let incompressible: String = (0..10_000).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    for i in 0..n {
        let title = if i == big_at { incompressible.clone() } else { format!("task {i}") };
        let input = CreateRecordInput {
            table_id: "tbl_0".into(),
            fields: json!({"title": title}).as_object().cloned().unwrap_or_default(),
        };
        CreateRecord.run(&s.db.pool, &s.codec, &ctx, input).await?;
    }
    let relay = Relay::new(s.db.pool.clone(), publisher, RelayConfig::default())?;
    settle(&relay).await?;
    let parked = outbox::parked(&s.db.pool).await?;
    let big = big_at as i64 + 1;
    assert_eq!(parked.iter().map(|p| p.aggregate_sequence).collect::<Vec<_>>(), vec![big], "the big row is parked");
    let reason: String =
        sqlx::query_scalar("SELECT park_reason FROM ltf_outbox WHERE parked_at IS NOT NULL").fetch_one(&s.db.pool).await?;
    assert!(reason.contains("Broker"), "Kafka refused it (the relay's own check did not see it coming): {reason}");
    let sent: Vec<i64> = sqlx::query_scalar("SELECT aggregate_sequence FROM ltf_outbox WHERE sent_at IS NOT NULL ORDER BY 1")
        .fetch_all(&s.db.pool)
        .await?;
    assert_eq!(sent, (1..big).collect::<Vec<_>>(), "the rows before it are sent, the rows behind it wait");
    fix_retry_and_check_order(&s, &relay, parked[0].id, n).await?;
    s.db.drop_database().await
}

/// Runs relay batches until one publishes and parks nothing (at most 60 s); failed
/// batches are printed and retried.
async fn settle(relay: &Relay) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match relay.relay_once().await {
            Ok(r) if r.published == 0 && r.parked == 0 => return Ok(()),
            Ok(_) => {}
            Err(e) => eprintln!("batch failed: {e}"),
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the relay did not settle");
    }
}

/// The fix: the topic takes the big row; the parked row `parked` is retried, then every
/// row is published, the `n` rows of `tbl_0` in sequence order.
async fn fix_retry_and_check_order(s: &Setup, relay: &Relay, parked: i64, n: usize) -> Result<()> {
    limit_topic(&s.topic, "2000000").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ltf_domain::outbox::retry(&s.db.pool, parked).await?;
    settle(relay).await?;
    assert_eq!(count_rows(&s.db.pool, "ltf_outbox WHERE sent_at IS NULL").await?, 0, "all published");
    assert_sequence_order_on_the_topic(s, n).await
}

/// Reads the table topic (as a reader of committed messages) until every outbox row was
/// seen and checks that no row of `tbl_0` appeared before the rows ahead of it in its
/// sequence; duplicates of rows already seen are fine (consumers drop them).
async fn assert_sequence_order_on_the_topic(s: &Setup, n: usize) -> Result<()> {
    let sequence_of: std::collections::HashMap<String, i64> =
        sqlx::query_as::<_, (uuid::Uuid, i64)>("SELECT event_id, aggregate_sequence FROM ltf_outbox")
            .fetch_all(&s.db.pool)
            .await?
            .into_iter()
            .map(|(id, seq)| (id.to_string(), seq))
            .collect();
    let expected: HashSet<uuid::Uuid> = sequence_of.keys().filter_map(|k| k.parse().ok()).collect();
    let messages =
        read_until_seen(std::slice::from_ref(&s.topic), &expected, Duration::from_secs(30), Duration::from_millis(500))?;
    let log: Vec<i64> = messages
        .iter()
        .filter_map(|m| headers(m).into_iter().find(|(k, _)| k == "event-id").and_then(|(_, v)| sequence_of.get(&v).copied()))
        .collect();
    let mut highest = 0;
    for seq in &log {
        assert!(*seq <= highest + 1, "sequence {seq} reached the topic before {}: {log:?}", highest + 1);
        highest = highest.max(*seq);
    }
    assert_eq!(highest, n as i64, "every row reached the topic: {log:?}");
    Ok(())
}
