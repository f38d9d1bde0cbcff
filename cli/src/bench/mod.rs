//! `ltf bench produce`: Avro-encode realistic RecordUpdated events and publish them with
//! acks=all and idempotence; prints throughput and the average record size so
//! `scripts/bench` can run Kafka's own producer perf tool at the same size.

pub mod api;
pub mod consume;
pub mod latency;
pub mod produce_threaded;

use std::time::Instant;

use anyhow::Result;

use clap::{Args, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use ltf_kafka::topics::{ensure_topics, TopicSpec, CLUSTER_DEFAULT_REPLICATION};
use ltf_kafka::EventPublisher;
use ltf_schemas::{AggregateType, EventCodec, TopicNames};
use std::sync::Arc;

use crate::demo::sample::Sampler;
use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Encode and publish RecordUpdated events as fast as the producer allows.
    Produce(ProduceArgs),
    /// CreateRecord over HTTP against a running `ltf api`, watching the relay's backlog.
    Api(api::ApiBenchArgs),
    /// Consume a pre-filled topic with the worker runtime (runner + pipeline).
    Consume(consume::ConsumeArgs),
    /// Produced event → no-op worker latency at steps of the maximum sustained rate, and the
    /// worker's RSS (a separate worker process).
    Latency(latency::LatencyArgs),
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Number of events.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Partitions of the bench topic (created if missing).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Topic prefix of the bench run (its own topics and subjects).
    #[arg(long, default_value = "ltfbench")]
    pub prefix: String,
    /// `compression.type` of the producer.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// `linger.ms` of the producer.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// Events per `publish_batch` call.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Only encode (no Kafka): the codec's share of the cost.
    #[arg(long)]
    pub encode_only: bool,
    /// The producer: `future` is `EventPublisher::publish_batch` (a FutureProducer, one
    /// future per event); `threaded` a ThreadedProducer whose delivery callback counts
    /// (`produce_threaded`), same settings and codec.
    #[arg(long, value_enum, default_value_t = ProducerKind::Future)]
    pub producer: ProducerKind,
    /// `threaded` only: encode through `EventCodec::encode` (owned Strings and a new value
    /// Vec per event, as the publisher) instead of into reused buffers.
    #[arg(long)]
    pub no_reuse: bool,
    /// `threaded` only: events enqueued and not yet acknowledged at most (0: only
    /// librdkafka's queue bounds them). Default: batch × concurrency, the future side's bound.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
}

/// The producer `ltf bench produce` publishes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProducerKind {
    /// `EventPublisher::publish_batch` (FutureProducer).
    Future,
    /// A ThreadedProducer with a counting delivery callback.
    Threaded,
}

pub async fn run(common: &Common, cmd: BenchCmd) -> Result<()> {
    let a = match cmd {
        BenchCmd::Produce(a) => a,
        BenchCmd::Api(a) => return api::run(a).await,
        BenchCmd::Consume(a) => return consume::run(common, a).await,
        BenchCmd::Latency(a) => return latency::run(common, a).await,
    };
    let topics = TopicNames::new(&a.prefix);
    let topic = topics.events(AggregateType::Table);
    ensure_topics(
        &common.bootstrap,
        &[TopicSpec { name: topic.clone(), partitions: a.partitions, replication_factor: CLUSTER_DEFAULT_REPLICATION }],
    )
    .await?;
    let codec = Arc::new(EventCodec::new(&common.registry, topics)?);
    let mut config = common.publisher_config();
    config.compression = a.compression.clone();
    config.linger_ms = a.linger_ms;
    let publisher = EventPublisher::new(&config, codec.clone())?;

    let mut sampler = Sampler::new(7, 50);
    let events: Vec<_> = (0..a.events).map(|_| sampler.record_updated()).collect();
    // Warm the schema-id cache and measure the record size on a sample.
    let mut bytes = 0usize;
    let mut value_bytes = 0usize;
    for e in events.iter().take(1000) {
        let m = publisher.encode(e).await?;
        value_bytes += m.value.len();
        bytes += m.value.len() + m.key.len() + m.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    }
    let sampled = events.len().clamp(1, 1000);

    if a.encode_only {
        let started = Instant::now();
        let mut total = 0usize;
        for e in &events {
            total += publisher.encode(e).await?.value.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "RESULT side=encode events={} seconds={secs:.3} events_per_sec={:.0} bytes={total}",
            events.len(),
            events.len() as f64 / secs
        );
        return Ok(());
    }
    let chunks: Vec<Vec<_>> = events.chunks(a.batch.max(1)).map(<[_]>::to_vec).collect();
    drop(events);
    if a.producer == ProducerKind::Threaded {
        drop(publisher);
        let max_in_flight = a.max_in_flight.unwrap_or(a.batch.max(1) * a.concurrency.max(1));
        let o = produce_threaded::run(&config, codec, chunks, !a.no_reuse, a.concurrency, max_in_flight).await?;
        println!(
            "RESULT side=ltf events={} seconds={:.3} events_per_sec={:.0} avg_value_bytes={} avg_record_bytes={} topic={topic} partitions={} compression={} linger_ms={} producer=threaded reuse={} max_in_flight={max_in_flight} cpu_seconds={:.2}",
            o.delivered,
            o.seconds,
            o.delivered as f64 / o.seconds,
            value_bytes / sampled,
            bytes / sampled,
            a.partitions,
            a.compression,
            a.linger_ms,
            !a.no_reuse,
            o.cpu_seconds
        );
        return Ok(());
    }
    let started = Instant::now();
    let cpu_started = produce_threaded::process_cpu_seconds();
    // Each batch is its own task, so encoding runs on every core.
    let published: usize = futures::stream::iter(chunks)
        .map(|chunk| {
            let p = publisher.clone();
            async move { anyhow::Ok(tokio::spawn(async move { p.publish_batch(&chunk).await.map(|d| d.len()) }).await??) }
        })
        .buffer_unordered(a.concurrency.max(1))
        .try_fold(0usize, |acc, n| async move { Ok(acc + n) })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = produce_threaded::process_cpu_seconds().zip(cpu_started).map_or(f64::NAN, |(end, start)| end - start);
    let rate = published as f64 / secs;
    println!(
        "RESULT side=ltf events={published} seconds={secs:.3} events_per_sec={rate:.0} avg_value_bytes={} avg_record_bytes={} topic={topic} partitions={} compression={} linger_ms={} producer=future cpu_seconds={cpu:.2}",
        value_bytes / sampled,
        bytes / sampled,
        a.partitions,
        a.compression,
        a.linger_ms
    );
    Ok(())
}
