//! PartitionStates helpers for the integration tests: where the real stack listens, unique names
//! per test, and a plain Kafka consumer that reads what a test wrote.
//!
//! The stack is started by `scripts/test` (`scripts/stack up`); a test whose service is
//! unreachable fails with a message naming the service. Nothing is skipped.

pub mod api;
pub mod counting_proxy;
pub mod platform;
pub mod receiver;
pub mod smtp;

use std::time::{Duration, Instant};

pub mod delivery;

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Kafka bootstrap servers of the test stack.
pub fn bootstrap() -> String {
    std::env::var("LTF_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Confluent-compatible registry API of the test stack.
pub fn registry_url() -> String {
    std::env::var("LTF_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// Redis of the test stack: `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// How many Redis keys of the test stack match `pattern` (a glob, as `KEYS`).
pub async fn redis_key_count(pattern: &str) -> Result<usize> {
    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await?;
    Ok(keys.len())
}

/// A topic prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A consumer (no group membership, no commits) assigned every partition of `topics`
/// from the beginning.
pub fn reader_from_beginning(topics: &[String]) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        // What the pipeline's readers see: messages of committed (relay) transactions only.
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the test consumer")?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("metadata")?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// Reads every partition of `topics` from the beginning until `n` messages arrived.
pub fn read_n(topics: &[String], n: usize, timeout: Duration) -> Result<Vec<OwnedMessage>> {
    let consumer = reader_from_beginning(topics)?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        if Instant::now() > deadline {
            bail!("read {} of {n} messages from {topics:?} before the timeout", out.len());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m?.detach());
        }
    }
    Ok(out)
}

/// A message's headers as (name, UTF-8 value) pairs.
pub fn headers(m: &OwnedMessage) -> Vec<(String, String)> {
    m.headers()
        .map(|h| {
            h.iter().map(|x| (x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())).collect()
        })
        .unwrap_or_default()
}

/// Writes raw values (poison, hand-framed) to a topic and waits for acknowledgement.
pub fn produce_raw(topic: &str, key: &str, values: &[Vec<u8>]) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    for v in values {
        producer.send(BaseRecord::to(topic).key(key).payload(v)).map_err(|(e, _)| e).context("enqueue raw value")?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// PostgreSQL of the test stack: `DATABASE_URL`, or the local default. The role must be
/// allowed to create databases.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://latechforce:latechforce@127.0.0.1:5432/latechforce".into())
}

/// A database of one test's own, created on the server of [`database_url`] and migrated.
/// Drop it with [`TestDb::drop_database`] at the end of the test; a failing test leaves it
/// for inspection.
#[derive(Debug)]
pub struct TestDb {
    /// A pool on the new database.
    pub pool: sqlx::PgPool,
    /// Its name (`t_<uuid>`).
    pub name: String,
}

/// Creates a fresh database and applies the repository's migrations to it.
pub async fn fresh_database() -> Result<TestDb> {
    use sqlx::Connection;
    let server: sqlx::postgres::PgConnectOptions = database_url().parse().context("DATABASE_URL is not a PostgreSQL URL")?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        sqlx::PgConnection::connect_with(&server).await.context("connecting to PostgreSQL (DATABASE_URL); is the stack up?")?;
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.context("CREATE DATABASE")?;
    admin.close().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server.database(&name))
        .await
        .with_context(|| format!("connecting to the test database {name}"))?;
    ltf_domain::store::migrate(&pool).await.context("migrating the test database")?;
    Ok(TestDb { pool, name })
}

impl TestDb {
    /// A PostgreSQL URL of this database (for a child process such as `ltf relay`).
    pub fn url(&self) -> String {
        let server = database_url();
        let base = server.split('?').next().unwrap_or(&server);
        let head = base.rsplit_once('/').map_or(base, |(head, _)| head);
        format!("{head}/{}", self.name)
    }

    /// Closes the pool and drops the database. Closing waits for every connection of the
    /// pool to come back: one still held by the test (a `PoolConnection` or a transaction
    /// alive across this call) fails the test after [`POOL_CLOSE_TIMEOUT`], naming the
    /// cause, instead of hanging it. The database is dropped either way.
    pub async fn drop_database(self) -> Result<()> {
        use sqlx::Connection;
        let closed = tokio::time::timeout(POOL_CLOSE_TIMEOUT, self.pool.close()).await.is_ok();
        let server: sqlx::postgres::PgConnectOptions = database_url().parse()?;
        let mut admin = sqlx::PgConnection::connect_with(&server).await?;
        ltf_pg::drop_database(&mut admin, &self.name).await?;
        admin.close().await?;
        anyhow::ensure!(
            closed,
            "drop_database: the pool did not close within {POOL_CLOSE_TIMEOUT:?}: a connection or transaction of the \
             test's pool is still held; drop it before the teardown"
        );
        Ok(())
    }
}

/// How long [`TestDb::drop_database`] waits for the pool's connections to come back.
pub const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One row of `ltf_outbox`, as the tests read it.
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_sequence: i64,
    pub event_type: String,
    pub topic: String,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl OutboxRow {
    /// A stored header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(serde_json::Value::as_str)
    }
}

/// Every outbox row, in insertion (id) order.
pub async fn outbox_rows(pool: &sqlx::PgPool) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as(
        "SELECT id, event_id, aggregate_type, aggregate_id, aggregate_sequence, event_type, topic, key, value,
                headers, sent_at
         FROM ltf_outbox ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// How many rows `table` holds.
pub async fn count_rows(pool: &sqlx::PgPool, table: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await?)
}

/// How many messages of `topics` the consumer group `group` has not committed yet (all
/// of them when it has committed nothing). Blocking: call it from `spawn_blocking` in
/// async code.
pub fn group_behind(group: &str, topics: &[String]) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap()).set("group.id", group).create()?;
    let mut behind = 0;
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, p.id());
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
            let at = match committed.elements().first().map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => low,
            };
            behind += (high - at).max(0);
        }
    }
    Ok(behind)
}

/// Waits until `group` committed every partition of `topics` up to its end.
pub fn wait_caught_up(group: &str, topics: &[String], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let behind = group_behind(group, topics)?;
        if behind == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "group {group} still {behind} messages behind");
        std::thread::sleep(Duration::from_millis(500));
    }
}
