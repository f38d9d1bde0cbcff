//! The cache worker against the real Redis, Kafka, registry and PostgreSQL (own topics,
//! group, database and Redis key prefix per test): record events through the runner
//! leave the right cache state, the version guard refuses older writes, a replay of the
//! table topic leaves the cache equal to the database, read-through loads a miss from
//! PostgreSQL under the same guard, and Redis down is an outage the worker waits out, not
//! a poison message.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use async_trait::async_trait;
use ltf_consumers::middleware::{BreakerConfig, Breakers, CircuitState, RetryPolicy};
use ltf_consumers::WorkerBuilder;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError, Router, RunReport, Runner, WorkerConfig};
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::{CreateRecordInput, DeleteRecordInput, RecordPatch, RecordRef, UpdateRecordInput};
use ltf_domain::{ChangeContext, CreateRecord, DeleteRecord, UpdateRecord, UseCase};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::ConsumerConfig;
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_producers::relay::{Relay, RelayConfig};
use ltf_schemas::{
    AggregateType, DomainEvent, EventCodec, EventPayload, EventType, Fields, RecordCreated, RecordDeleted, RecordUpdated,
    TopicNames,
};
use ltf_tests::{bootstrap, fresh_database, read_n, redis_url, registry_url, unique_prefix, TestDb};
use ltf_workers::cache::{CacheConfig, CacheEntry, CacheHandler, CachedRecord, Change, RecordCache, REDIS};
use ltf_workers::{WorkerDeps, WorkerKind};
use redis::AsyncCommands;
use serde_json::json;
use sqlx::types::Json;
use tokio::sync::watch;
use uuid::Uuid;

fn obj(v: serde_json::Value) -> Fields {
    v.as_object().cloned().unwrap_or_default()
}

struct Fixture {
    db: TestDb,
    topics: TopicNames,
    topic: String,
    codec: Arc<EventCodec>,
    publisher: EventPublisher,
    /// The Redis key prefix of this test.
    prefix: String,
}

async fn fixture(test: &str) -> Result<Fixture> {
    let db = fresh_database().await?;
    let prefix = unique_prefix(test);
    let topics = TopicNames::new(&prefix);
    let specs: Vec<TopicSpec> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 3, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec.clone())?;
    let topic = topics.events(AggregateType::Table);
    Ok(Fixture { db, topics, topic, codec, publisher, prefix })
}

impl Fixture {
    fn cache_config(&self, url: &str) -> CacheConfig {
        CacheConfig { key_prefix: self.prefix.clone(), response_timeout: Duration::from_millis(500), ..CacheConfig::new(url) }
    }

    fn cache(&self) -> Result<RecordCache> {
        Ok(RecordCache::new(&self.cache_config(&redis_url()))?)
    }

    /// Deletes this test's Redis keys.
    async fn clear_cache(&self) -> Result<()> {
        let mut conn = self.cache()?.connection();
        let keys: Vec<String> = scan(&mut conn, &format!("{}:*", self.prefix)).await?;
        for chunk in keys.chunks(100) {
            let _: () = conn.del(chunk).await?;
        }
        Ok(())
    }

    async fn finish(self) -> Result<()> {
        self.clear_cache().await?;
        self.db.drop_database().await
    }
}

async fn scan(conn: &mut redis::aio::ConnectionManager, pattern: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500).query_async(conn).await?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Counts the events its inner handler finished, so a test knows when a topic was read
/// to its end.
struct Counted {
    inner: CacheHandler,
    done: Arc<AtomicUsize>,
}

#[async_trait]
impl Handler for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn can_handle(&self, event_type: EventType) -> bool {
        self.inner.can_handle(event_type)
    }

    async fn handle(&self, ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        self.inner.handle(ctx, event).await?;
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<RunReport, ltf_consumers::ConsumeError>>,
    done: Arc<AtomicUsize>,
    breakers: Arc<Breakers>,
    group: String,
}

impl Running {
    async fn stop(self) -> Result<RunReport> {
        self.stop.send(true)?;
        Ok(self.task.await??)
    }

    async fn wait_done(&self, n: usize, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while self.done.load(Ordering::SeqCst) < n {
            ensure!(Instant::now() < deadline, "{} of {n} events handled in time", self.done.load(Ordering::SeqCst));
            ensure!(!self.task.is_finished(), "the runner stopped");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// Runs the cache worker as a new consumer group (so from the beginning of the table
/// topic) with the cache config `cache`, no dedup store, fast retries.
fn start(f: &Fixture, cache: &CacheConfig, breaker: BreakerConfig) -> Result<Running> {
    let group = format!("test-cache-{}", Uuid::new_v4().simple());
    let done = Arc::new(AtomicUsize::new(0));
    let handler = Counted { inner: CacheHandler::new(RecordCache::new(cache)?), done: done.clone() };
    let breakers = Arc::new(Breakers::new(&group, breaker));
    let pipeline = WorkerBuilder::new(&group, f.codec.clone(), Router::new().register(handler), f.publisher.clone())
        .retry(RetryPolicy { initial_backoff: Duration::from_millis(20), ..Default::default() })
        .breakers(breakers.clone())
        .build();
    let mut consumer = ConsumerConfig::new(bootstrap(), &group);
    consumer.session_timeout_ms = 6000;
    let config = WorkerConfig { consumer, side_topic_partitions: 1, ..Default::default() };
    let runner = Runner::new(config, vec![f.topic.clone()], Arc::new(pipeline))?;
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(async move {
        let _ = rx.wait_for(|v| *v).await;
    }));
    Ok(Running { stop: tx, task, done, breakers, group })
}

fn created(table: &str, record: &str, version: i64, fields: Fields) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: version,
        fields: fields.into(),
        created_by: None,
    }))
}

fn updated(table: &str, record: &str, version: i64, fields: Fields) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
        table_id: table.into(),
        record_id: record.into(),
        record_version: version,
        previous_fields: Fields::new().into(),
        changed_fields: fields.keys().cloned().collect(),
        current_fields: fields.into(),
    }))
}

fn deleted(table: &str, record: &str, version: i64) -> DomainEvent {
    DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
        table_id: table.into(),
        record_id: record.into(),
        record_version: version,
        deleted_fields: Fields::new().into(),
    }))
}

fn live(version: i64, fields: serde_json::Value) -> Option<CacheEntry> {
    Some(CacheEntry::Live(CachedRecord { version, fields: obj(fields) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_updated_and_deleted_records_through_the_runner_leave_the_right_cache_state() -> Result<()> {
    let f = fixture("cache-flow").await?;
    let cache = f.cache()?;
    let t = "tbl_flow";
    // A list cached before any change, under generation 0.
    cache.put_list(t, 0, "all", &["stale".into()], Duration::from_secs(60)).await?;
    assert_eq!(cache.get_list(t, "all").await?, Some(vec!["stale".to_owned()]));

    let events = [
        created(t, "rec_a", 1, obj(json!({"title": "a", "n": 1}))),
        created(t, "rec_b", 1, obj(json!({"title": "b"}))),
        updated(t, "rec_a", 2, obj(json!({"title": "a2", "n": 1}))),
        deleted(t, "rec_b", 2),
        updated(t, "rec_a", 3, obj(json!({"title": "a3", "n": 3}))),
        created(t, "rec_c", 1, obj(json!({"title": "c"}))),
    ];
    f.publisher.publish_batch(&events).await?;
    let running = start(&f, &f.cache_config(&redis_url()), BreakerConfig::default())?;
    running.wait_done(events.len(), Duration::from_secs(60)).await?;
    running.stop().await?;

    assert_eq!(cache.entry(t, "rec_a").await?, live(3, json!({"title": "a3", "n": 3})), "the last update's fields");
    assert_eq!(cache.entry(t, "rec_b").await?, Some(CacheEntry::Tombstone { version: 2 }), "deleted: a tombstone");
    assert_eq!(cache.get_record(t, "rec_b").await?, None, "a tombstone reads as no record");
    assert_eq!(cache.get_record(t, "rec_c").await?, Some(CachedRecord { version: 1, fields: obj(json!({"title": "c"})) }));
    assert_eq!(cache.entry(t, "rec_nope").await?, None);

    let mut conn = cache.connection();
    let ttl: i64 = conn.pttl(cache.keys().record(t, "rec_b")).await?;
    assert!(ttl > 0 && ttl <= 7 * 86_400_000, "the tombstone expires ({ttl} ms)");
    let ttl: i64 = conn.pttl(cache.keys().record(t, "rec_a")).await?;
    assert_eq!(ttl, -1, "a live record does not expire");

    // Three creations and one deletion: four invalidations; the old list is not served.
    assert_eq!(cache.list_generation(t).await?, 4);
    assert_eq!(cache.get_list(t, "all").await?, None, "the list cached before the changes is invalidated");
    cache.put_list(t, 4, "all", &["rec_a".into(), "rec_c".into()], Duration::from_secs(60)).await?;
    assert_eq!(cache.get_list(t, "all").await?, Some(vec!["rec_a".to_owned(), "rec_c".to_owned()]));
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_guard_refuses_replayed_and_reordered_older_writes() -> Result<()> {
    let f = fixture("cache-guard").await?;
    let cache = f.cache()?;
    let (t, r) = ("tbl_guard", "rec_g");
    let put = |version: i64, title: &str| Change::Put {
        table_id: t.into(),
        record_id: r.into(),
        version,
        fields: obj(json!({ "title": title })),
        invalidate_lists: false,
    };

    let first = cache.apply(&put(3, "v3")).await?;
    assert!(first.applied);
    let replayed = cache.apply(&put(2, "v2")).await?;
    assert!(!replayed.applied, "v2 after v3 is stale");
    assert_eq!(replayed.stored_version, 3);
    assert!(!cache.apply(&put(3, "v3 again")).await?.applied, "the same version again is a no-op");
    assert_eq!(cache.entry(t, r).await?, live(3, json!({"title": "v3"})), "v3 stays");

    let delete = Change::Delete { table_id: t.into(), record_id: r.into(), version: 4 };
    assert!(cache.apply(&delete).await?.applied);
    assert!(!cache.apply(&put(3, "v3 replayed")).await?.applied, "an update older than the deletion");
    assert!(!cache.apply(&Change::Delete { table_id: t.into(), record_id: r.into(), version: 4 }).await?.applied);
    assert_eq!(cache.entry(t, r).await?, Some(CacheEntry::Tombstone { version: 4 }), "the tombstone stays");
    assert_eq!(cache.list_generation(t).await?, 1, "refused writes invalidate nothing");

    // The same through the runner: the topic holds v3, a replayed v2, the delete at v4 and
    // a replayed v3 of another record, in that order.
    let (t2, r2) = ("tbl_guard_rt", "rec_rt");
    let events = [
        updated(t2, r2, 3, obj(json!({"title": "v3"}))),
        updated(t2, r2, 2, obj(json!({"title": "v2"}))),
        updated(t2, "rec_del", 3, obj(json!({"title": "v3"}))),
        deleted(t2, "rec_del", 4),
        updated(t2, "rec_del", 3, obj(json!({"title": "v3 replayed"}))),
    ];
    f.publisher.publish_batch(&events).await?;
    let running = start(&f, &f.cache_config(&redis_url()), BreakerConfig::default())?;
    running.wait_done(events.len(), Duration::from_secs(60)).await?;
    running.stop().await?;
    assert_eq!(cache.entry(t2, r2).await?, live(3, json!({"title": "v3"})));
    assert_eq!(cache.entry(t2, "rec_del").await?, Some(CacheEntry::Tombstone { version: 4 }));
    f.finish().await
}

/// Every record row: (table, id) → (version, fields).
async fn database_records(f: &Fixture) -> Result<BTreeMap<(String, String), (i64, Fields)>> {
    let rows: Vec<(String, String, i64, Json<Fields>)> =
        sqlx::query_as("SELECT table_id, id, version, fields FROM ltf_records").fetch_all(&f.db.pool).await?;
    Ok(rows.into_iter().map(|(t, id, v, Json(fields))| ((t, id), (v, fields))).collect())
}

/// The cache's live entries and tombstones under this test's prefix.
async fn cache_records(f: &Fixture, cache: &RecordCache) -> Result<BTreeMap<(String, String), CacheEntry>> {
    let mut conn = cache.connection();
    let record_prefix = format!("{}:record:", f.prefix);
    let mut out = BTreeMap::new();
    for key in scan(&mut conn, &format!("{record_prefix}*")).await? {
        let rest = key.strip_prefix(&record_prefix).context("a record key")?;
        let (table, id) = rest.split_once(':').context("<table>:<record>")?;
        if let Some(entry) = cache.entry(table, id).await? {
            out.insert((table.to_owned(), id.to_owned()), entry);
        }
    }
    Ok(out)
}

/// The cache equals the database: every row live at its version with its fields, every
/// deleted record a tombstone (or absent), nothing else live.
async fn assert_cache_equals_database(f: &Fixture, cache: &RecordCache, deleted: &[(String, String)]) -> Result<()> {
    let db = database_records(f).await?;
    let cached = cache_records(f, cache).await?;
    for ((table, id), (version, fields)) in &db {
        let want = CacheEntry::Live(CachedRecord { version: *version, fields: fields.clone() });
        ensure!(
            cached.get(&(table.clone(), id.clone())) == Some(&want),
            "{table}/{id}: cache {:?}, database {want:?}",
            cached.get(&(table.clone(), id.clone()))
        );
    }
    for key in deleted {
        ensure!(!db.contains_key(key), "{key:?} was deleted");
        match cached.get(key) {
            None | Some(CacheEntry::Tombstone { .. }) => {}
            Some(other) => bail!("{key:?} deleted in the database, live in the cache: {other:?}"),
        }
    }
    for (key, entry) in &cached {
        if let CacheEntry::Live(_) = entry {
            ensure!(db.contains_key(key), "{key:?} live in the cache, not in the database");
        }
    }
    Ok(())
}

/// Waits until the cache equals the database.
async fn wait_equal(f: &Fixture, cache: &RecordCache, deleted: &[(String, String)], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match assert_cache_equals_database(f, cache, deleted).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.context("the cache did not catch up in time")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_replay_of_the_table_topic_the_cache_equals_the_database() -> Result<()> {
    let f = fixture("cache-replay").await?;
    let tables = ["tbl_0", "tbl_1"];
    for t in tables {
        let def = TableDef {
            id: t.into(),
            name: t.into(),
            fields: vec![FieldDef::new("title", FieldType::Text), FieldDef::new("n", FieldType::Integer)],
        };
        tables::insert(&mut *f.db.pool.acquire().await?, &def).await?;
    }
    let ctx = ChangeContext::user("tester");
    let pool = &f.db.pool;
    let mut ids: Vec<(String, String)> = Vec::new();
    for i in 0..24 {
        let table = tables[i % 2];
        let input = CreateRecordInput { table_id: table.into(), fields: obj(json!({"title": format!("task {i}"), "n": i})) };
        let rec = CreateRecord.run(pool, &f.codec, &ctx, input).await?.value;
        ids.push((table.to_owned(), rec.id));
    }
    // Updates: every record once, every third twice more.
    for (round, every) in [(1, 1), (2, 3), (3, 3)] {
        for (table, id) in ids.iter().step_by(every) {
            let patch = RecordPatch { record_id: id.clone(), fields: obj(json!({"n": 1000 * round})), expected_version: None };
            UpdateRecord.run(pool, &f.codec, &ctx, UpdateRecordInput { table_id: table.clone(), patch }).await?;
        }
    }
    // Deletes: every third record (four per table), after their extra updates.
    let deleted: Vec<(String, String)> = ids.iter().step_by(3).cloned().collect();
    for (table, id) in &deleted {
        DeleteRecord
            .run(pool, &f.codec, &ctx, DeleteRecordInput { table_id: table.clone(), record: RecordRef::any_version(id) })
            .await?;
    }
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), f.codec.clone())?;
    let total = Relay::new(f.db.pool.clone(), publisher.clone(), RelayConfig::default())?.drain().await? as usize;
    assert_eq!(total, 24 + 24 + 8 + 8 + 8, "creates, updates, deletes");

    let cache = f.cache()?;
    let config = f.cache_config(&redis_url());
    let first = start(&f, &config, BreakerConfig::default())?;
    first.wait_done(total, Duration::from_secs(60)).await?;
    first.stop().await?;
    assert_cache_equals_database(&f, &cache, &deleted).await.context("after the first read of the topic")?;
    let before = cache_records(&f, &cache).await?;
    let generations: Vec<i64> = futures::future::try_join_all(tables.map(|t| cache.list_generation(t))).await?;
    assert_eq!(generations, [12 + 4, 12 + 4], "12 creations and 4 deletions per table");

    // A replay: a new group reads the whole topic again over the warm cache.
    let replay = start(&f, &config, BreakerConfig::default())?;
    replay.wait_done(total, Duration::from_secs(60)).await?;
    replay.stop().await?;
    assert_cache_equals_database(&f, &cache, &deleted).await.context("after the replay")?;
    assert_eq!(cache_records(&f, &cache).await?, before, "the replay changed no entry");
    let after: Vec<i64> = futures::future::try_join_all(tables.map(|t| cache.list_generation(t))).await?;
    assert_eq!(after, generations, "every replayed write was refused as stale: no list invalidated");

    // More changes, then a replay over a cache that lost everything (a flushed Redis):
    // the stale events rebuild older states on the way, the newest wins in the end.
    for (table, id) in ids.iter().skip(1).step_by(5) {
        if deleted.contains(&(table.clone(), id.clone())) {
            continue;
        }
        let patch = RecordPatch { record_id: id.clone(), fields: obj(json!({"title": "late"})), expected_version: None };
        UpdateRecord.run(pool, &f.codec, &ctx, UpdateRecordInput { table_id: table.clone(), patch }).await?;
    }
    let more = Relay::new(f.db.pool.clone(), publisher, RelayConfig::default())?.drain().await? as usize;
    assert!(more > 0);
    f.clear_cache().await?;
    let rebuild = start(&f, &config, BreakerConfig::default())?;
    rebuild.wait_done(total + more, Duration::from_secs(60)).await?;
    rebuild.stop().await?;
    wait_equal(&f, &cache, &deleted, Duration::from_secs(5)).await.context("after a replay into an empty cache")?;
    f.finish().await
}

/// A Redis server of the test's own on `port`, stopped on drop.
struct OwnRedis(Child);

impl OwnRedis {
    fn start(port: u16) -> Result<OwnRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        Ok(OwnRedis(child))
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_an_outage_the_worker_waits_out_not_a_poison_message() -> Result<()> {
    let f = fixture("cache-outage").await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("redis://127.0.0.1:{port}");
    let t = "tbl_down";
    let events: Vec<_> = (0..5).map(|i| created(t, &format!("rec_{i}"), 1, obj(json!({"i": i})))).collect();
    f.publisher.publish_batch(&events).await?;

    // The worker as `ltf worker cache` assembles it, against a Redis that is not there.
    let deps = WorkerDeps { redis_url: Some(url.clone()), cache_key_prefix: Some(f.prefix.clone()), ..Default::default() };
    assert_eq!(WorkerKind::Cache.topics(&f.topics), vec![f.topic.clone()], "the table topic only");
    assert!(!WorkerKind::Cache.uses_dedup_store());
    assert_eq!(WorkerKind::Cache.router(&deps)?.handlers_for(EventType::RecordCreated).len(), 1);
    assert!(WorkerKind::Cache.router(&WorkerDeps::default()).is_err(), "no Redis URL, no cache worker");

    let breaker =
        BreakerConfig { min_calls: 3, failure_rate: 1.0, cooldown: Duration::from_millis(500), ..BreakerConfig::default() };
    let running = start(&f, &f.cache_config(&url), breaker)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(running.done.load(Ordering::SeqCst), 0, "nothing handled while Redis is down");
    assert_ne!(running.breakers.state(REDIS), CircuitState::Closed, "the redis circuit opened");
    let dlq = TopicNames::dlq(&f.topic, &running.group);
    assert!(read_n(std::slice::from_ref(&dlq), 1, Duration::from_secs(2)).is_err(), "nothing dead-lettered");

    let _redis = OwnRedis::start(port)?;
    running.wait_done(events.len(), Duration::from_secs(30)).await?;
    assert_eq!(running.breakers.state(REDIS), CircuitState::Closed, "closed again once Redis answers");
    assert!(read_n(&[dlq], 1, Duration::from_secs(1)).is_err(), "still no dead letter");
    running.stop().await?;
    let cache = RecordCache::new(&f.cache_config(&url))?;
    let got: HashMap<String, Option<CachedRecord>> = futures::future::try_join_all((0..5).map(|i| {
        let cache = cache.clone();
        async move { Ok::<_, anyhow::Error>((format!("rec_{i}"), cache.get_record(t, &format!("rec_{i}")).await?)) }
    }))
    .await?
    .into_iter()
    .collect();
    for i in 0..5 {
        assert_eq!(got[&format!("rec_{i}")], Some(CachedRecord { version: 1, fields: obj(json!({"i": i})) }));
    }
    f.db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_loads_a_miss_from_the_database_under_the_version_guard() -> Result<()> {
    let f = fixture("cache-read-through").await?;
    let def = TableDef { id: "tbl_rt".into(), name: "rt".into(), fields: vec![FieldDef::new("title", FieldType::Text)] };
    tables::insert(&mut *f.db.pool.acquire().await?, &def).await?;
    let ctx = ChangeContext::user("tester");
    let mut ids = Vec::new();
    for i in 0..3 {
        let input = CreateRecordInput { table_id: "tbl_rt".into(), fields: obj(json!({"title": format!("r{i}")})) };
        ids.push(CreateRecord.run(&f.db.pool, &f.codec, &ctx, input).await?.value.id);
    }
    let cache = f.cache()?;

    // A miss: loaded from ltf_records, then served from Redis.
    let got = cache.read_through(&f.db.pool, "tbl_rt", &ids[0]).await?;
    assert_eq!(got, Some(CachedRecord { version: 1, fields: obj(json!({"title": "r0"})) }));
    assert_eq!(cache.entry("tbl_rt", &ids[0]).await?, live(1, json!({"title": "r0"})), "written to the cache");
    // A newer version already cached (an event got there first) is served, not the row.
    let newer = Change::Put {
        table_id: "tbl_rt".into(),
        record_id: ids[1].clone(),
        version: 2,
        fields: obj(json!({"title": "newer"})),
        invalidate_lists: false,
    };
    cache.apply(&newer).await?;
    let got = cache.read_through(&f.db.pool, "tbl_rt", &ids[1]).await?;
    assert_eq!(got, Some(CachedRecord { version: 2, fields: obj(json!({"title": "newer"})) }));
    // A tombstone is a hit: deleted, whatever the database still says.
    cache.apply(&Change::Delete { table_id: "tbl_rt".into(), record_id: ids[2].clone(), version: 2 }).await?;
    assert_eq!(cache.read_through(&f.db.pool, "tbl_rt", &ids[2]).await?, None);
    // Unknown record, or a record of another table: nothing, and nothing cached.
    assert_eq!(cache.read_through(&f.db.pool, "tbl_rt", "rec_nope").await?, None);
    assert_eq!(cache.read_through(&f.db.pool, "tbl_other", &ids[0]).await?, None);
    assert_eq!(cache.entry("tbl_other", &ids[0]).await?, None);
    f.finish().await
}
