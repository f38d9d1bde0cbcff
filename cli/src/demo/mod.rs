//! The main job: register the contract, ensure topics, publish a realistic stream of every
//! event type, and show it consumed back through the registry.

pub mod flows;
mod reader;
pub mod sample;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ltf_kafka::topics::{ensure_topics, TopicSpec, CLUSTER_DEFAULT_REPLICATION};
use ltf_kafka::ConsumerConfig;

use ltf_schemas::registry;
use ltf_schemas::EventType;
use reader::EventReader;
use uuid::Uuid;

use crate::demo::sample::Sampler;
use crate::settings::Common;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of user stories (each is 4 to 8 events).
    #[arg(long, default_value_t = 2000)]
    pub stories: usize,
    /// Partitions of the event topics when they are created.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Give up waiting for the consumer after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// What the demo saw of one event type.
#[derive(Default)]
struct Row {
    published: u64,
    consumed: u64,
    versions: BTreeMap<i32, u64>,
    latency_ms: Option<Histogram<u64>>,
}

impl Row {
    fn record_consumed(&mut self, version: i32, latency_ms: u64) {
        self.consumed += 1;
        *self.versions.entry(version).or_default() += 1;
        let h = self.latency_ms.get_or_insert_with(|| Histogram::new(3).expect("3 significant figures is valid"));
        h.record(latency_ms).ok();
    }
}

fn bar(mp: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let pb = mp.add(ProgressBar::new(len));
    pb.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>6}/{len} {per_sec:>12} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_owned());
    pb
}

pub async fn run(common: &Common, args: DemoArgs) -> Result<()> {
    let topics = common.topics();
    println!("registering schemas at {}", common.registry);
    let registered = registry::register_all(&common.registry, &topics).await?;
    println!("  {} schemas under {} subjects, BACKWARD_TRANSITIVE", registered.len(), EventType::ALL.len());
    let specs: Vec<TopicSpec> = topics
        .all_events()
        .into_iter()
        .map(|name| TopicSpec { name, partitions: args.partitions, replication_factor: CLUSTER_DEFAULT_REPLICATION })
        .collect();
    ensure_topics(&common.bootstrap, &specs).await?;
    println!("  topics: {}", topics.all_events().join(", "));

    let codec = common.codec()?;
    let reader_cfg = ConsumerConfig::new(&common.bootstrap, format!("{}.demo-reader.{}", topics.prefix(), Uuid::new_v4()));
    let reader = EventReader::from_end_of(&reader_cfg, codec.clone(), &topics.all_events())?;
    let publisher = common.publisher(&common.publisher_config())?;

    let mut sampler = Sampler::new(42, 5);
    let events: Vec<_> = (0..args.stories).flat_map(|_| sampler.story()).collect();
    let total = events.len() as u64;
    let mut rows: BTreeMap<EventType, Row> = BTreeMap::new();
    for e in &events {
        rows.entry(e.event_type()).or_default().published += 1;
    }
    let expected: HashSet<Uuid> = events.iter().map(|e| e.event_id()).collect();

    let mp = MultiProgress::new();
    let pub_bar = bar(&mp, total, "published");
    let con_bar = bar(&mp, total, "consumed");

    let started = Instant::now();
    let consume = async {
        let mut seen: HashSet<Uuid> = HashSet::with_capacity(expected.len());
        let mut stats: BTreeMap<EventType, Row> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let mut bad = 0u64;
        while seen.len() < expected.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(msg) = tokio::time::timeout(left, reader.next()).await else { break };
            let msg = msg?;
            match msg.event {
                Ok(ev) if expected.contains(&ev.event_id()) && seen.insert(ev.event_id()) => {
                    let lat = (chrono::Utc::now() - ev.envelope.occurred_on).num_milliseconds().max(0) as u64;
                    stats.entry(ev.event_type()).or_default().record_consumed(ev.envelope.version, lat);
                    con_bar.inc(1);
                }
                Ok(_) => {}
                Err(e) => {
                    bad += 1;
                    tracing::warn!(topic = %msg.meta.topic, offset = msg.meta.offset, error = %e, "undecodable value");
                }
            }
        }
        anyhow::Ok((stats, bad))
    };
    let produce = async {
        for chunk in events.chunks(500) {
            // Stamp occurredOn as the change happens, so end-to-end latency is the
            // pipeline's, not the time the demo spent generating.
            let now = ltf_schemas::event::now_millis();
            let chunk: Vec<_> = chunk
                .iter()
                .cloned()
                .map(|mut e| {
                    e.envelope.occurred_on = now;
                    e
                })
                .collect();
            publisher.publish_batch(&chunk).await?;
            pub_bar.inc(chunk.len() as u64);
        }
        anyhow::Ok(started.elapsed())
    };
    let (produced, consumed) = tokio::join!(produce, consume);
    let publish_time = produced.context("publishing")?;
    let (stats, bad) = consumed.context("consuming")?;
    pub_bar.finish();
    con_bar.finish();
    let elapsed = started.elapsed();

    for (ty, seen) in stats {
        let r = rows.entry(ty).or_default();
        r.consumed = seen.consumed;
        r.versions = seen.versions;
        r.latency_ms = seen.latency_ms;
    }
    println!();
    println!(
        "{:<24}{:>10}{:>10}{:>12}{:>12}   by schema version",
        "event type", "published", "consumed", "e2e p50 ms", "e2e p99 ms"
    );
    let (mut p, mut c) = (0, 0);
    for (ty, r) in &rows {
        let (p50, p99) = r.latency_ms.as_ref().map_or((0, 0), |h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)));
        let versions: Vec<String> = r.versions.iter().map(|(v, n)| format!("v{v}: {n}")).collect();
        println!("{:<24}{:>10}{:>10}{:>12}{:>12}   {}", ty.as_str(), r.published, r.consumed, p50, p99, versions.join(", "));
        p += r.published;
        c += r.consumed;
    }
    println!("{:<24}{:>10}{:>10}", "total", p, c);
    println!(
        "published in {:.2}s ({:.0} events/s); all consumed and decoded in {:.2}s; undecodable: {bad}",
        publish_time.as_secs_f64(),
        total as f64 / publish_time.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    if c != p || bad > 0 {
        bail!("demo incomplete: {c} of {p} events consumed, {bad} undecodable");
    }
    Ok(())
}
