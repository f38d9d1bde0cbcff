//! `ltf bench consume`: the worker runtime's throughput over a pre-filled topic.
//!
//! A [`Runner`] with a fresh consumer group reads the bench topic from the start; its
//! [`Pipeline`] routes every event to one no-op handler that counts it. Modes:
//! * `noop`: decode → handler (no dedup store): what the runtime itself costs;
//! * `dedup`: the same with the PostgreSQL [`DedupStore`] (the pipeline checks and writes
//!   one dedup record per event);
//! * `runner`: the runner alone, handing every message to a process that does nothing (no
//!   decode, no pipeline): the fetch-and-schedule share of the cost;
//! * `raw`: no runner: a `StreamConsumer` with the worker's consumer settings, its message
//!   stream read in a loop; `decode`: the same, decoding every value.
//!
//! The clock runs from the first message handed to the pipeline (in `noop` mode: to the
//! handler) to the end of the N-th (so the group join is not measured, as Kafka's
//! `ConsumerPerformance` reports `fetch.nMsg.sec` without its rebalance time). `--fill`
//! first publishes realistic RecordUpdated events (as `ltf bench produce` does) until the
//! topic holds `--events`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use async_trait::async_trait;
use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use ltf_consumers::{
    DedupStore, Event, Handler, HandlerContext, HandlerError, Incoming, PartitionPause, Process, Router, Runner, WorkerBuilder,
    WorkerConfig,
};
use ltf_kafka::topics::{ensure_topics, TopicSpec, CLUSTER_DEFAULT_REPLICATION};
use ltf_kafka::ConsumerConfig;
use ltf_kafka::EventPublisher;
use ltf_schemas::{AggregateType, EventCodec, EventType, TopicNames};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::Message;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::database::Secret;
use crate::demo::sample::Sampler;
use crate::settings::Common;

/// What each event goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Decode and a counting no-op handler; no dedup store.
    Noop,
    /// As `noop`, with the PostgreSQL dedup store (a dedup check and record per event).
    Dedup,
    /// The runner alone: no decode, no pipeline.
    Runner,
    /// No runner: one rust-rdkafka `StreamConsumer` with the worker's consumer settings,
    /// its message stream read in a loop (librdkafka's and rust-rdkafka's share).
    Raw,
    /// As `raw`, decoding every value with the codec (no runner, no pipeline).
    Decode,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Noop => "noop",
            Mode::Dedup => "dedup",
            Mode::Runner => "runner",
            Mode::Raw => "raw",
            Mode::Decode => "decode",
        }
    }
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Events to consume (and, with `--fill`, the least the topic must hold).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Topic prefix of the bench: the topic is `<prefix>.table.events`.
    #[arg(long, default_value = "ltfbench-consume")]
    pub prefix: String,
    /// Partitions of the bench topic (when `--fill` creates it).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// First publish realistic events until the topic holds `--events` (nothing when it
    /// already does).
    #[arg(long)]
    pub fill: bool,
    /// What each event goes through.
    #[arg(long, value_enum, default_value_t = Mode::Noop)]
    pub mode: Mode,
    /// PostgreSQL URL of the dedup store (`dedup` mode; migrated if needed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Connections of the dedup store's pool.
    #[arg(long, env = "LTF_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Most events in flight in the runner (the worker's default).
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: u32,
    /// Extra librdkafka consumer property (`key=value`, repeatable), applied last.
    #[arg(long = "consumer-prop", value_name = "KEY=VALUE", value_parser = parse_prop)]
    pub consumer_props: Vec<(String, String)>,
    /// Give up when the N-th event is not handled within this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// The no-op handler: counts the events it is given and, in `noop` mode, times them
/// (so the bench adds no wrapper of its own around the pipeline).
struct Count(Arc<AtomicU64>, Option<Arc<Progress>>);

#[async_trait]
impl Handler for Count {
    fn name(&self) -> &str {
        "bench-count"
    }

    fn can_handle(&self, _event_type: EventType) -> bool {
        true
    }

    async fn handle(&self, _ctx: &HandlerContext, _event: &Event) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        if let Some(progress) = &self.1 {
            progress.tick();
        }
        Ok(())
    }
}

/// A process that does nothing (`runner` mode).
#[derive(Debug)]
struct Nothing;

#[async_trait]
impl Process for Nothing {
    async fn process(&self, _msg: Incoming, _blocker: &PartitionPause) {}
}

/// When the first message started and the N-th finished.
#[derive(Debug)]
struct Progress {
    target: u64,
    finished: AtomicU64,
    first: OnceLock<Instant>,
    last: OnceLock<Instant>,
    reached: Notify,
}

impl Progress {
    /// Marks the start of the first event (when it is) and the end of one more.
    fn tick(&self) {
        self.first.get_or_init(Instant::now);
        if self.finished.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            let _ = self.last.set(Instant::now());
            self.reached.notify_one();
        }
    }
}

/// Wraps the pipeline to time it, in the modes where the handler's call is not the end
/// of an event: the end of `process` is (in `dedup` mode the event is recorded after
/// the handler's call; in `runner` mode there is no handler). In `noop` mode the handler
/// times the events itself: this wrapper's own future per event would cost what the
/// worker does not.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn Process>,
    progress: Arc<Progress>,
}

#[async_trait]
impl Process for Timed {
    async fn process(&self, msg: Incoming, blocker: &PartitionPause) {
        self.progress.first.get_or_init(Instant::now);
        self.inner.process(msg, blocker).await;
        self.progress.tick();
    }
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).ok_or_else(|| format!("`{s}` is not key=value"))
}

/// The worker's consumer settings plus `--consumer-prop`.
fn reader_config(common: &Common, a: &ConsumeArgs, group: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(&common.bootstrap, group);
    c.extra.extend(a.consumer_props.iter().cloned());
    c
}

pub async fn run(common: &Common, a: ConsumeArgs) -> Result<()> {
    ensure!(a.events > 0, "--events must be positive");
    let topics = TopicNames::new(&a.prefix);
    let topic = topics.events(AggregateType::Table);
    let codec = Arc::new(EventCodec::new(&common.registry, topics)?);
    let publisher = EventPublisher::new(&common.publisher_config(), codec.clone())?;
    if a.fill {
        fill(common, &a, &topic, &publisher).await?;
    }
    let held = held(&common.bootstrap, &topic).await?;
    ensure!(held >= a.events, "{topic} holds {held} events, fewer than --events {} (run with --fill)", a.events);

    // The worker's recorder, so the pipeline's metrics cost what they cost in `ltf worker`.
    let _metrics = crate::ops::install_metrics()?;
    ltf_consumers::metrics::describe();

    let group = format!("ltfbench-consume-{}", Uuid::new_v4().simple());
    if matches!(a.mode, Mode::Raw | Mode::Decode) {
        let codec = (a.mode == Mode::Decode).then_some(codec.as_ref());
        let secs = raw(&reader_config(common, &a, &group), &topic, a.events, a.timeout_secs, codec).await?;
        print_result(&a, secs, 0, &topic, &group);
        return Ok(());
    }
    let handled = Arc::new(AtomicU64::new(0));
    let pool = match a.mode {
        Mode::Dedup => {
            let url = a.database_url.as_ref().context("--mode dedup needs --database-url (or DATABASE_URL)")?;
            let options: sqlx::postgres::PgConnectOptions = url.0.parse().context("DATABASE_URL is not a PostgreSQL URL")?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(a.db_max_connections)
                .connect_with(options)
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?;
            crate::database::migrate(&pool).await?;
            Some(pool)
        }
        Mode::Noop | Mode::Runner | Mode::Raw | Mode::Decode => None,
    };
    let progress = Arc::new(Progress {
        target: a.events,
        finished: AtomicU64::new(0),
        first: OnceLock::new(),
        last: OnceLock::new(),
        reached: Notify::new(),
    });
    let timed_by_handler = (a.mode == Mode::Noop).then(|| progress.clone());
    let inner: Arc<dyn Process> = match a.mode {
        Mode::Runner | Mode::Raw | Mode::Decode => Arc::new(Nothing),
        Mode::Noop | Mode::Dedup => Arc::new(
            WorkerBuilder::new(&group, codec, Router::new().register(Count(handled.clone(), timed_by_handler)), publisher)
                .dedup_opt(pool.map(|p| Arc::new(DedupStore::new(p, Duration::from_secs(86_400)))))
                .build(),
        ),
    };
    let process: Arc<dyn Process> =
        if a.mode == Mode::Noop { inner } else { Arc::new(Timed { inner, progress: progress.clone() }) };
    let config = WorkerConfig {
        consumer: reader_config(common, &a, &group),
        max_in_flight: a.max_in_flight,
        shutdown_deadline: Duration::from_secs(10),
        // Only the event topic is measured; the group's retry and dead-letter topics are
        // still created at start (one partition each) and deleted at the end.
        consume_retry_topics: false,
        side_topic_partitions: 1,
        ..WorkerConfig::default()
    };
    let runner = Runner::new(config, vec![topic.clone()], process)?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut task = tokio::spawn(runner.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    let outcome = tokio::select! {
        () = progress.reached.notified() => Ok(()),
        r = &mut task => Err(match r {
            Ok(Ok(_)) => anyhow::anyhow!("the runner stopped before the {}-th event", a.events),
            Ok(Err(e)) => anyhow::Error::from(e).context("the runner failed"),
            Err(e) => anyhow::Error::from(e).context("the runner task"),
        }),
        () = tokio::time::sleep(Duration::from_secs(a.timeout_secs)) => Err(anyhow::anyhow!(
            "{} of {} events finished within {} s", progress.finished.load(Ordering::Relaxed), a.events, a.timeout_secs)),
    };
    let _ = stop_tx.send(true);
    if outcome.is_ok() {
        task.await.context("the runner task")??;
    } else {
        task.abort();
    }
    delete_side_topics(&common.bootstrap, &topic, &group).await;
    outcome?;

    let (Some(first), Some(last)) = (progress.first.get(), progress.last.get()) else {
        bail!("no timing recorded");
    };
    let secs = last.duration_since(*first).as_secs_f64();
    let handled = handled.load(Ordering::Relaxed);
    if a.mode != Mode::Runner && handled < a.events {
        bail!("only {handled} of {} events reached the handler: the others were dead-lettered (undecodable?)", a.events);
    }
    print_result(&a, secs, handled, &topic, &group);
    Ok(())
}

fn print_result(a: &ConsumeArgs, secs: f64, handled: u64, topic: &str, group: &str) {
    println!(
        "RESULT side=ltf mode={} events={} seconds={secs:.3} events_per_sec={:.0} handled={handled} max_in_flight={} topic={topic} group={group}",
        a.mode.as_str(),
        a.events,
        a.events as f64 / secs,
        a.max_in_flight,
    );
}

/// `raw` and `decode` modes: one message stream read in a loop (as the runner reads it) on
/// a consumer with the worker's settings,
/// decoding each value when given a codec; seconds from the first message to the N-th.
async fn raw(config: &ConsumerConfig, topic: &str, events: u64, timeout_secs: u64, codec: Option<&EventCodec>) -> Result<f64> {
    let consumer: StreamConsumer = config.client_config()?.create()?;
    consumer.subscribe(&[topic])?;
    let count = async {
        let mut first = None;
        let mut messages = consumer.stream();
        for _ in 0..events {
            let msg = messages.next().await.context("the message stream ended")??;
            first.get_or_insert_with(Instant::now);
            match codec {
                Some(codec) => {
                    std::hint::black_box(codec.decode(msg.payload().unwrap_or_default()).await?);
                }
                None => {
                    std::hint::black_box(msg.payload().map(<[u8]>::len));
                }
            }
        }
        anyhow::Ok(first.map_or(0.0, |f| f.elapsed().as_secs_f64()))
    };
    tokio::time::timeout(Duration::from_secs(timeout_secs), count)
        .await
        .with_context(|| format!("{events} messages not received within {timeout_secs} s"))?
}

/// Messages the topic holds (sum over partitions of high − low watermark); 0 when it does
/// not exist.
async fn held(bootstrap: &str, topic: &str) -> Result<u64> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> Result<u64> {
        let consumer: BaseConsumer = ltf_kafka::security::client_config(&bootstrap)
            .set("group.id", "ltfbench-consume-watermarks")
            .create()
            .context("creating a Kafka client")?;
        let timeout = Duration::from_secs(10);
        let md = consumer.fetch_metadata(Some(&topic), timeout).context("fetching the topic's metadata")?;
        let mut total = 0u64;
        for t in md.topics() {
            if t.error().is_some() {
                return Ok(0);
            }
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout).context("fetching watermarks")?;
                total += u64::try_from(high - low).unwrap_or(0);
            }
        }
        Ok(total)
    })
    .await?
}

/// Publishes realistic RecordUpdated events until `topic` holds `a.events`.
async fn fill(common: &Common, a: &ConsumeArgs, topic: &str, publisher: &EventPublisher) -> Result<()> {
    ensure_topics(
        &common.bootstrap,
        &[TopicSpec { name: topic.to_owned(), partitions: a.partitions, replication_factor: CLUSTER_DEFAULT_REPLICATION }],
    )
    .await?;
    let held = held(&common.bootstrap, topic).await?;
    if held >= a.events {
        eprintln!("{topic} already holds {held} events; not filling");
        return Ok(());
    }
    let missing = a.events - held;
    let started = Instant::now();
    const BATCH: u64 = 2000;
    let mut sampler = Sampler::new(7, 50);
    // Batches are generated as they are sent (not all held in memory), four in flight,
    // each its own task, as `ltf bench produce` sends them.
    let batches = (0..missing.div_ceil(BATCH)).map(move |i| {
        let n = BATCH.min(missing - i * BATCH);
        (0..n).map(|_| sampler.record_updated()).collect::<Vec<_>>()
    });
    let published: usize = futures::stream::iter(batches)
        .map(|batch| {
            let p = publisher.clone();
            async move { anyhow::Ok(tokio::spawn(async move { p.publish_batch(&batch).await.map(|d| d.len()) }).await??) }
        })
        .buffer_unordered(4)
        .try_fold(0usize, |acc, n| async move { Ok(acc + n) })
        .await?;
    eprintln!("filled {topic}: {published} events published in {:.1} s (it held {held})", started.elapsed().as_secs_f64());
    Ok(())
}

/// Deletes the group's retry and dead-letter topics the runner created (best effort).
pub(crate) async fn delete_side_topics(bootstrap: &str, topic: &str, group: &str) {
    let admin: AdminClient<DefaultClientContext> = match ltf_kafka::security::client_config(bootstrap).create() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("could not delete the bench group's side topics: {e}");
            return;
        }
    };
    let names = [TopicNames::retry(topic, group), TopicNames::dlq(topic, group)];
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = admin.delete_topics(&refs, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await {
        eprintln!("could not delete the bench group's side topics: {e}");
    }
}
