//! The worker runtime against the real Kafka, registry and PostgreSQL (own topics, group
//! and database per test): poison values dead-lettered while good events around them are
//! handled in order, retries, the circuit breaker pausing instead of dead-lettering, and
//! a graceful stop that a restart does not repeat.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use async_trait::async_trait;
use ltf_consumers::middleware::{BreakerConfig, RetryPolicy};
use ltf_consumers::pipeline::Pipeline;
use ltf_consumers::DedupStore;
use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError, Router, Runner, WorkerBuilder, WorkerConfig};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::ConsumerConfig;
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::{AggregateType, DomainEvent, EventCodec, EventPayload, EventType, Fields, RecordCreated, TopicNames};
use ltf_tests::{bootstrap, fresh_database, headers, produce_raw, read_n, registry_url, unique_prefix, TestDb};
use rdkafka::Message;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// Batch mode.
#[path = "worker_runtime/batch.rs"]
mod batch;

const GROUP_SIDE_EFFECTS: &str = "CREATE TABLE test_side_effects (
    n bigserial PRIMARY KEY, event_id uuid NOT NULL, label text NOT NULL, attempt int NOT NULL)";

/// A handler of record-created events whose side effect is a row in `test_side_effects`
/// holding the event's `label` field, written in the dedup transaction. `fail` decides
/// per (label, attempt) whether the attempt fails, and how.
type FailFn = Box<dyn Fn(&str, u32) -> Option<HandlerError> + Send + Sync>;

struct Sink {
    calls: Arc<AtomicU32>,
    fail: FailFn,
}

#[async_trait]
impl Handler for Sink {
    fn name(&self) -> &str {
        "sink"
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        event_type == EventType::RecordCreated
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let EventPayload::RecordCreated(p) = &event.event.payload else { return Ok(()) };
        let label = p.fields.get("label").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        if let Some(err) = (self.fail)(&label, ctx.attempt) {
            return Err(err);
        }
        let Some(dedup) = &ctx.dedup else { return Err(HandlerError::permanent(ErrorClass::Config, "no dedup store")) };
        let Some(mut tx) = dedup.begin(ctx, event).await? else { return Ok(()) };
        sqlx::query("INSERT INTO test_side_effects (event_id, label, attempt) VALUES ($1, $2, $3)")
            .bind(event.event_id())
            .bind(&label)
            .bind(ctx.attempt as i32)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

struct Fixture {
    db: TestDb,
    topic: String,
    group: String,
    codec: Arc<EventCodec>,
    publisher: EventPublisher,
}

async fn fixture(test: &str) -> Result<Fixture> {
    let db = fresh_database().await?;
    sqlx::raw_sql(GROUP_SIDE_EFFECTS).execute(&db.pool).await?;
    let topics = TopicNames::new(unique_prefix(test));
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 6, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec.clone())?;
    let topic = topics.events(AggregateType::Table);
    let group = format!("test-{}", Uuid::new_v4().simple());
    Ok(Fixture { db, topic, group, codec, publisher })
}

/// A record-created of `record` (its ordering key) in `table`, labelled `label`.
fn created(table: &str, record: &str, label: &str) -> DomainEvent {
    let mut fields = Fields::new();
    fields.insert("label".into(), label.into());
    DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: 1,
        fields: fields.into(),
        created_by: None,
    }))
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<ltf_consumers::RunReport, ltf_consumers::ConsumeError>>,
}

impl Running {
    async fn stop(self) -> Result<ltf_consumers::RunReport> {
        self.stop.send(true)?;
        Ok(self.task.await??)
    }
}

fn start(f: &Fixture, sink: Sink, breaker: BreakerConfig) -> Result<Running> {
    let pipeline = pipeline(f, Router::new().register(sink), breaker);
    run(f, Arc::new(pipeline))
}

/// The pipeline of the fixture's group: dedup on, fast retries.
fn pipeline(f: &Fixture, router: Router, breaker: BreakerConfig) -> Pipeline {
    let retry = RetryPolicy { initial_backoff: Duration::from_millis(20), ..Default::default() };
    let dedup = Arc::new(DedupStore::new(f.db.pool.clone(), Duration::from_secs(3600)));
    WorkerBuilder::new(&f.group, f.codec.clone(), router, f.publisher.clone())
        .dedup(dedup)
        .retry(retry)
        .breaker_config(breaker)
        .build()
}

/// Runs `process` as the fixture's group until stopped.
fn run(f: &Fixture, process: Arc<dyn ltf_consumers::Process>) -> Result<Running> {
    run_with(f, process, WorkerConfig::default().max_in_flight)
}

/// [`run`] with at most `max_in_flight` events in flight.
fn run_with(f: &Fixture, process: Arc<dyn ltf_consumers::Process>, max_in_flight: u32) -> Result<Running> {
    let mut consumer = ConsumerConfig::new(bootstrap(), &f.group);
    consumer.session_timeout_ms = 6000;
    let config = WorkerConfig { consumer, side_topic_partitions: 1, max_in_flight, ..Default::default() };
    let runner = Runner::new(config, vec![f.topic.clone()], process)?;
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(async move {
        let _ = rx.wait_for(|v| *v).await;
    }));
    Ok(Running { stop: tx, task })
}

fn sink(calls: &Arc<AtomicU32>, fail: impl Fn(&str, u32) -> Option<HandlerError> + Send + Sync + 'static) -> Sink {
    Sink { calls: calls.clone(), fail: Box::new(fail) }
}

/// Labels of the side effects, in the order they were applied.
async fn applied(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT label FROM test_side_effects ORDER BY n").fetch_all(pool).await?)
}

async fn wait_applied(pool: &PgPool, n: usize, within: Duration) -> Result<Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let got = applied(pool).await?;
        if got.len() >= n {
            return Ok(got);
        }
        ensure!(Instant::now() < deadline, "{} of {n} side effects applied in time: {got:?}", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_values_are_dead_lettered_with_their_headers_while_good_events_around_them_are_handled_in_order() -> Result<()> {
    let f = fixture("rt-poison").await?;
    let key = "tbl_poison";
    // One record: one ordering key, so its events must be handled in offset order.
    let first = [created(key, "rec", "r1"), created(key, "rec", "r2")];
    f.publisher.publish_batch(&first).await?;
    // Kinds of poison on the same key (so the same partition and ordering key as
    // the good events): not Confluent-framed, an unknown schema id, a truncated body.
    let known_id = f.codec.encode(&created(key, "x", "x")).await?.value[1..5].to_vec();
    let mut truncated = vec![0u8];
    truncated.extend_from_slice(&known_id);
    truncated.extend_from_slice(&[0x02, 0x48]);
    // And the value that aborted workers: a valid RecordCreated v1 envelope whose fields
    // map claims 2^29 entries (apache-avro reserved ~87 GB for them).
    let v1 = ltf_schemas::catalog::schema_def(EventType::RecordCreated, 1)?;
    let v1_id = f.codec.schema_id(&f.topic, v1).await?;
    let mut sample = ltf_schemas::examples::samples().swap_remove(0);
    let EventPayload::RecordCreated(p) = &mut sample.payload else { anyhow::bail!("sample 0 is a RecordCreated") };
    p.fields.clear();
    let mut body = ltf_schemas::codec::encode_body(&sample)?;
    assert_eq!(body.pop(), Some(0), "the empty fields map ends the body");
    body.extend([0x80, 0x80, 0x80, 0x80, 0x04]); // zig-zag varint of 2^29
    let hostile = ltf_schemas::codec::frame(v1_id, &body);
    let poison = vec![b"not avro at all".to_vec(), vec![0, 0x7f, 0xff, 0xff, 0x01, 0x02], truncated, hostile];
    produce_raw(&f.topic, key, &poison)?;
    let last = [created(key, "rec", "r3"), created(key, "rec", "r4")];
    f.publisher.publish_batch(&last).await?;

    let calls = Arc::new(AtomicU32::new(0));
    let running = start(&f, sink(&calls, |_, _| None), BreakerConfig::default())?;
    let got = wait_applied(&f.db.pool, 4, Duration::from_secs(60)).await?;
    assert_eq!(got, ["r1", "r2", "r3", "r4"], "good events handled once each, in order");

    let dlq = TopicNames::dlq(&f.topic, &f.group);
    let dead = read_n(&[dlq], 4, Duration::from_secs(30))?;
    let classes: Vec<String> =
        dead.iter().map(|m| header(&headers(m), "dlq-error-class").unwrap_or_default().to_owned()).collect();
    assert_eq!(classes, ["not_confluent_framed", "unknown_schema_id", "bad_avro", "bad_avro"]);
    for (m, value) in dead.iter().zip(&poison) {
        let h = headers(m);
        assert_eq!(m.payload(), Some(value.as_slice()), "the original bytes");
        assert_eq!(m.key(), Some(key.as_bytes()));
        assert_eq!(header(&h, "dlq-original-topic"), Some(f.topic.as_str()));
        assert_eq!(header(&h, "dlq-consumer-group"), Some(f.group.as_str()));
        for name in [
            "dlq-error-message",
            "dlq-attempts",
            "dlq-original-partition",
            "dlq-original-offset",
            "dlq-original-timestamp",
            "dlq-handler",
            "dlq-first-failure",
            "dlq-last-failure",
        ] {
            assert!(header(&h, name).is_some(), "{name} missing: {h:?}");
        }
    }
    running.stop().await?;
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_heals_on_attempt_two_is_handled_once_and_one_that_never_heals_is_dead_lettered() -> Result<()> {
    let f = fixture("rt-retry").await?;
    let same = |label: &str| created("tbl_a", "rec", label);
    f.publisher.publish_batch(&[same("heals"), same("never"), same("after")]).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let fail = |record: &str, attempt: u32| match (record, attempt) {
        ("heals", 1) => Some(HandlerError::retryable(ErrorClass::Timeout, "first attempt times out")),
        ("never", _) => Some(HandlerError::retryable(ErrorClass::Timeout, "always times out")),
        _ => None,
    };
    let running = start(&f, sink(&calls, fail), BreakerConfig::default())?;
    let got = wait_applied(&f.db.pool, 2, Duration::from_secs(60)).await?;
    assert_eq!(got, ["heals", "after"], "`after` waits behind `never` on the same key, then runs");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempt FROM test_side_effects WHERE label = 'heals'").fetch_one(&f.db.pool).await?;
    assert_eq!(attempts, 2);
    let dead = read_n(&[TopicNames::dlq(&f.topic, &f.group)], 1, Duration::from_secs(30))?;
    let h = headers(&dead[0]);
    assert_eq!(header(&h, "dlq-attempts"), Some("3"), "the default policy: 3 attempts");
    assert_eq!(header(&h, "dlq-error-class"), Some("timeout"));
    assert_eq!(header(&h, "dlq-handler"), Some("sink"));
    assert_eq!(calls.load(Ordering::SeqCst), 2 + 3 + 1);
    running.stop().await?;
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_pauses_without_dead_lettering_and_resumes_when_the_dependency_returns() -> Result<()> {
    let f = fixture("rt-breaker").await?;
    // The dependency: a TCP service on a port that is closed at first.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let events: Vec<_> = (0..5).map(|i| created("tbl_b", "rec", &format!("b{i}"))).collect();
    f.publisher.publish_batch(&events).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let fail = move |_: &str, _: u32| match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => None,
        Err(e) => Some(HandlerError::retryable(ErrorClass::Connect, e).from_dependency("downstream")),
    };
    let breaker =
        BreakerConfig { min_calls: 3, failure_rate: 1.0, cooldown: Duration::from_millis(500), ..BreakerConfig::default() };
    let running = start(&f, sink(&calls, fail), breaker)?;

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(applied(&f.db.pool).await?.is_empty(), "nothing handled while the dependency is down");
    let probes = calls.load(Ordering::SeqCst);
    assert!(probes >= 3, "the breaker saw the failures ({probes})");
    assert!(probes < 20, "an open circuit probes after its cool-down instead of burning retries ({probes})");
    let dlq = TopicNames::dlq(&f.topic, &f.group);
    assert!(read_n(std::slice::from_ref(&dlq), 1, Duration::from_secs(2)).is_err(), "the DLQ stays empty");

    let _service = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let got = wait_applied(&f.db.pool, 5, Duration::from_secs(30)).await?;
    assert_eq!(got, ["b0", "b1", "b2", "b3", "b4"], "resumed at the first unfinished event, in order");
    assert!(read_n(&[dlq], 1, Duration::from_secs(1)).is_err(), "still no dead letter");
    running.stop().await?;
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_work_holding_every_slot_pauses_fetching_and_on_resume_nothing_is_lost_doubled_or_reordered() -> Result<()> {
    let metrics = ltf_tests::api::prometheus();
    let f = fixture("rt-backpressure").await?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    // 60 events of 12 records of one table: one partition, 12 ordering keys.
    let events: Vec<_> = (0..60).map(|i| created("tbl_bp", &format!("rec{}", i % 12), &format!("{i}"))).collect();
    f.publisher.publish_batch(&events).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let fail = move |_: &str, _: u32| match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => None,
        Err(e) => Some(HandlerError::retryable(ErrorClass::Connect, e).from_dependency("downstream")),
    };
    let breaker =
        BreakerConfig { min_calls: 3, failure_rate: 1.0, cooldown: Duration::from_millis(500), ..BreakerConfig::default() };
    // Four slots: the dependency's outage parks four keys and fills them.
    let running = run_with(&f, Arc::new(pipeline(&f, Router::new().register(sink(&calls, fail)), breaker)), 4)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(applied(&f.db.pool).await?.is_empty(), "nothing handled while the dependency is down");
    let probes = calls.load(Ordering::SeqCst);
    assert!(probes < 60, "only the parked events call, not every event fetched ({probes} calls)");
    let paused = format!("latechforce_consumer_paused_partitions{{group=\"{}\"}} 1", f.group);
    assert!(metrics.render().contains(&paused), "the partition was paused: {paused} missing");

    let _service = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let got = wait_applied(&f.db.pool, 60, Duration::from_secs(60)).await?;
    let resumed = format!("latechforce_consumer_paused_partitions{{group=\"{}\"}} 0", f.group);
    assert!(metrics.render().contains(&resumed), "the partition was resumed: {resumed} missing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = applied(&f.db.pool).await?;
    assert_eq!(got_after.len(), 60, "nothing applied twice: {got_after:?}");
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 60, "every event applied once");
    for r in 0..12 {
        let order: Vec<usize> = got.iter().filter_map(|l| l.parse::<usize>().ok()).filter(|i| i % 12 == r).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "record rec{r} in order");
    }
    let dlq = TopicNames::dlq(&f.topic, &f.group);
    assert!(read_n(&[dlq], 1, Duration::from_secs(1)).is_err(), "no dead letter");
    running.stop().await?;
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_during_load_commits_what_finished_and_a_restart_repeats_none_of_it() -> Result<()> {
    let f = fixture("rt-stop").await?;
    let events: Vec<_> =
        (0..2000).map(|i| created(&format!("tbl_{}", i % 50 % 8), &format!("rec{}", i % 50), &format!("s{i}"))).collect();
    f.publisher.publish_batch(&events).await?;
    let calls = Arc::new(AtomicU32::new(0));
    let running = start(&f, sink(&calls, |_, _| None), BreakerConfig::default())?;
    wait_applied(&f.db.pool, 300, Duration::from_secs(60)).await?;
    let started = Instant::now();
    let report = running.stop().await?;
    assert!(started.elapsed() < Duration::from_secs(20), "stopped within the shutdown deadline");
    assert_eq!(report.abandoned, 0, "in-flight work finished");
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(applied(&f.db.pool).await?.len() as u32, before, "every call so far applied its side effect");

    let calls_after = Arc::new(AtomicU32::new(0));
    let running = start(&f, sink(&calls_after, |_, _| None), BreakerConfig::default())?;
    let got = wait_applied(&f.db.pool, 2000, Duration::from_secs(60)).await?;
    running.stop().await?;
    assert_eq!(got.len(), 2000);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 2000, "no side effect applied twice");
    assert_eq!(calls_after.load(Ordering::SeqCst) + before, 2000, "the restart re-handled nothing that had finished");
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moving_between_two_then_three_instances_lose_nothing_and_apply_nothing_twice_in_key_order() -> Result<()> {
    let f = fixture("rt-rebalance").await?;
    const N: usize = 10_000;
    let events: Vec<_> =
        (0..N).map(|i| created(&format!("tbl_{}", i % 200 % 16), &format!("rec{}", i % 200), &format!("{i}"))).collect();
    let calls = Arc::new(AtomicU32::new(0));
    let a = start(&f, sink(&calls, |_, _| None), BreakerConfig::default())?;
    let publisher = f.publisher.clone();
    let producing = tokio::spawn(async move {
        for chunk in events.chunks(500) {
            publisher.publish_batch(chunk).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    });
    wait_applied(&f.db.pool, 1500, Duration::from_secs(60)).await?;
    let b = start(&f, sink(&calls, |_, _| None), BreakerConfig::default())?;
    wait_applied(&f.db.pool, 4000, Duration::from_secs(60)).await?;
    let c = start(&f, sink(&calls, |_, _| None), BreakerConfig::default())?;
    wait_applied(&f.db.pool, 6000, Duration::from_secs(60)).await?;
    a.stop().await?;
    producing.await??;
    let got = wait_applied(&f.db.pool, N, Duration::from_secs(120)).await?;
    b.stop().await?;
    c.stop().await?;

    assert_eq!(got.len(), N, "every event applied");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), N, "no side effect applied twice");
    let mut last: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for label in &got {
        let i: usize = label.parse()?;
        if let Some(prev) = last.insert(i % 200, i) {
            ensure!(prev < i, "record rec{}: {i} applied after {prev}", i % 200);
        }
    }
    eprintln!("{} handler calls for {N} events", calls.load(Ordering::SeqCst));
    f.db.drop_database().await
}

/// A process for runners whose messages do not matter to the test.
#[derive(Debug)]
struct Ignore;

#[async_trait]
impl ltf_consumers::Process for Ignore {
    async fn process(&self, _: ltf_consumers::Incoming, _: &ltf_consumers::PartitionPause) {}
}

/// A process that blocks its thread (a handler doing blocking work) for `block` on the
/// first message.
#[derive(Debug)]
struct BlockOnce {
    block: Duration,
    blocking: Arc<std::sync::atomic::AtomicBool>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl ltf_consumers::Process for BlockOnce {
    async fn process(&self, _: ltf_consumers::Incoming, _: &ltf_consumers::PartitionPause) {
        if !self.blocking.swap(true, Ordering::SeqCst) {
            std::thread::sleep(self.block);
            self.done.store(true, Ordering::SeqCst);
        }
    }
}

/// The poll loop has a thread of its own: a handler that blocks every thread of the
/// worker's runtime (here its only one) for seconds does not stop the polls, so the
/// worker stays alive for its liveness probe and in its group. When the poll loop was a
/// task of that runtime, its heartbeat stopped for as long as the handler blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_handler_blocking_every_runtime_thread_does_not_stop_the_poll_loop() -> Result<()> {
    let f = fixture("rt-blocking").await?;
    let events: Vec<_> = (0..4).map(|i| created("tbl_block", &format!("rec{i}"), &format!("{i}"))).collect();
    f.publisher.publish_batch(&events).await?;
    let blocking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let process = BlockOnce { block: Duration::from_secs(4), blocking: blocking.clone(), done: done.clone() };
    let mut consumer = ConsumerConfig::new(bootstrap(), &f.group);
    consumer.session_timeout_ms = 6000;
    let config = WorkerConfig { consumer, side_topic_partitions: 1, ..Default::default() };
    let runner = Runner::new(config, vec![f.topic.clone()], Arc::new(process))?;
    let health = runner.health();
    // Sampled from a thread of its own: the runtime's only thread is the one blocked.
    let sampler = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !blocking.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut samples = Vec::new();
        while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
            samples.push(health.is_alive(Duration::from_millis(1500)));
            std::thread::sleep(Duration::from_millis(100));
        }
        samples
    });
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(async move {
        let _ = rx.wait_for(|v| *v).await;
    }));
    let samples = tokio::task::spawn_blocking(move || sampler.join()).await?.map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    tx.send(true)?;
    task.await??;
    ensure!(samples.len() >= 30, "the handler blocked for 4 s ({} samples)", samples.len());
    let stalled = samples.iter().filter(|alive| !**alive).count();
    assert_eq!(
        stalled,
        0,
        "the poll loop went round every second while the handler blocked ({stalled} of {} samples stale)",
        samples.len()
    );
    f.db.drop_database().await
}

#[tokio::test]
async fn retry_and_dead_letter_topics_are_as_durable_as_their_event_topic() -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let topic = format!("{}.table.events", unique_prefix("side-durability"));
    let group = format!("{topic}.group");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    // One broker: the replication factor can only be 1, but min.insync.replicas shows
    // whether the side topics copy their event topic's settings.
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("min.insync.replicas", "2");
    for r in admin.create_topics([&new], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    let config =
        WorkerConfig { consumer: ConsumerConfig::new(bootstrap(), &group), side_topic_partitions: 1, ..Default::default() };
    Runner::new(config, vec![topic.clone()], Arc::new(Ignore))?.ensure_side_topics().await?;
    for side in [TopicNames::retry(&topic, &group), TopicNames::dlq(&topic, &group)] {
        let configs = admin.describe_configs([&ResourceSpecifier::Topic(&side)], &AdminOptions::new()).await?;
        let resource = configs.into_iter().next().ok_or_else(|| anyhow::anyhow!("no answer for {side}"))??;
        let min = resource.get("min.insync.replicas").and_then(|e| e.value.clone());
        assert_eq!(min.as_deref(), Some("2"), "{side} takes min.insync.replicas of {topic}");
    }
    Ok(())
}
