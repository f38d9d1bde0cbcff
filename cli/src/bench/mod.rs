//! `ltf bench produce`: Avro-encode realistic RecordUpdated events and publish them with
//! acks=all and idempotence; prints throughput and the average record size so
//! `scripts/bench` can run Kafka's own producer perf tool at the same size.

pub mod api;
pub mod consume;

use std::time::Instant;

use anyhow::Result;

use clap::{Args, Subcommand};
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
}

pub async fn run(common: &Common, cmd: BenchCmd) -> Result<()> {
    let a = match cmd {
        BenchCmd::Produce(a) => a,
        BenchCmd::Api(a) => return api::run(a).await,
        BenchCmd::Consume(a) => return consume::run(common, a).await,
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
    let publisher = EventPublisher::new(&config, codec)?;

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
    let started = Instant::now();
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
    let rate = published as f64 / secs;
    println!(
        "RESULT side=ltf events={published} seconds={secs:.3} events_per_sec={rate:.0} avg_value_bytes={} avg_record_bytes={} topic={topic} partitions={} compression={} linger_ms={}",
        value_bytes / sampled,
        bytes / sampled,
        a.partitions,
        a.compression,
        a.linger_ms
    );
    Ok(())
}
