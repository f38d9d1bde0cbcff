//! The worker side of `ltf bench latency` (`--role worker`): the worker runtime (a
//! [`Runner`] and the [`Pipeline`](ltf_consumers::Pipeline) of [`WorkerBuilder`], as
//! `ltf bench consume --mode noop` builds them) with one no-op handler that reads the
//! send time the driver stamped in a header and records `now − sent` in an HDR histogram.
//!
//! It runs as its own process so that its VmRSS is the worker's alone. The driver talks to
//! it over stdin/stdout, one line each way, answers starting with [`REPLY`] (anything else
//! on stdout is to be ignored):
//! * `count` → `LTFLAT handled=<n> unstamped=<n>`: events the handler saw so far;
//! * `reset` → `LTFLAT reset`: the latencies recorded so far are dropped;
//! * `report <path>` → `LTFLAT report count=… mean_us=… p50_us=… p90_us=… p99_us=…
//!   p999_us=… max_us=…`: the latencies since the last `reset`, their CDF written to
//!   `<path>` (TSV: `latency_ms`, `fraction`) and their timeline beside it, `latency-<pct>`
//!   named `timeline-<pct>` (TSV per 100 ms of handling time: `unix_ms`, `events`,
//!   `over_10ms`, `max_ms`: when the slow events came, to set beside the broker's pauses),
//!   then dropped;
//! * end of input: the runner stops, the group's side topics are deleted, the process ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use hdrhistogram::Histogram;
use ltf_consumers::{Event, Handler, HandlerContext, HandlerError, Router, Runner, WorkerBuilder, WorkerConfig};
use ltf_kafka::{ConsumerConfig, EventPublisher};
use ltf_schemas::{AggregateType, EventCodec, EventType, TopicNames};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::{now_us, LatencyArgs, SENT_HEADER};
use crate::settings::Common;

/// The prefix of every answer line.
pub const REPLY: &str = "LTFLAT ";

/// What the handler records.
#[derive(Debug)]
struct Recorded {
    handled: AtomicU64,
    /// Events without a readable send time (none expected).
    unstamped: AtomicU64,
    latencies: Mutex<Latencies>,
}

/// The latencies since the last `reset`: their distribution and when they came.
#[derive(Debug)]
struct Latencies {
    histogram: Histogram<u64>,
    /// Per [`WINDOW_US`] of handling time (its start in µs since the epoch).
    timeline: BTreeMap<u64, Window>,
}

impl Latencies {
    fn new() -> Latencies {
        Latencies { histogram: histogram(), timeline: BTreeMap::new() }
    }

    fn record(&mut self, handled_us: u64, latency_us: u64) {
        self.histogram.saturating_record(latency_us);
        let w = self.timeline.entry(handled_us - handled_us % WINDOW_US).or_default();
        w.events += 1;
        w.over += u64::from(latency_us > SLOW_US);
        w.max_us = w.max_us.max(latency_us);
    }
}

/// The timeline's resolution.
const WINDOW_US: u64 = 100_000;
/// A latency the timeline counts as slow: the target's p99 bound.
const SLOW_US: u64 = 10_000;

/// The events handled in one window of the timeline.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    events: u64,
    /// Events slower than [`SLOW_US`].
    over: u64,
    max_us: u64,
}

/// Microseconds from 1 µs to 10 minutes, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The no-op handler: latency = now − the send time of the header.
#[derive(Debug)]
struct Stamp(Arc<Recorded>);

#[async_trait]
impl Handler for Stamp {
    fn name(&self) -> &str {
        "bench-latency"
    }

    fn can_handle(&self, _event_type: EventType) -> bool {
        true
    }

    async fn handle(&self, _ctx: &HandlerContext, event: &Event) -> Result<(), HandlerError> {
        let now = now_us();
        match event.meta.header(SENT_HEADER).and_then(|v| v.parse::<u64>().ok()) {
            Some(sent) => {
                let mut l = self.0.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                l.record(now, now.saturating_sub(sent).max(1));
            }
            None => {
                self.0.unstamped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.0.handled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub async fn run(common: &Common, a: &LatencyArgs) -> Result<()> {
    let group = a.group.clone().context("--role worker needs --group (the driver passes it)")?;
    let topics = TopicNames::new(&a.prefix);
    let topic = topics.events(AggregateType::Table);
    let codec = Arc::new(EventCodec::new(&common.registry, topics).context("schema registry settings")?);
    let publisher = EventPublisher::new(&common.publisher_config(), codec.clone())?;
    // The worker's recorder, so the pipeline's metrics cost (CPU and memory) what they
    // cost in `ltf worker`.
    let _metrics = crate::ops::install_metrics()?;
    ltf_consumers::metrics::describe();

    let recorded =
        Arc::new(Recorded { handled: AtomicU64::new(0), unstamped: AtomicU64::new(0), latencies: Mutex::new(Latencies::new()) });
    let pipeline = WorkerBuilder::new(&group, codec, Router::new().register(Stamp(recorded.clone())), publisher).build();
    let config = WorkerConfig {
        consumer: ConsumerConfig::new(&common.bootstrap, &group),
        max_in_flight: a.max_in_flight,
        shutdown_deadline: Duration::from_secs(10),
        // As `ltf bench consume`: only the event topic is read; the group's retry and
        // dead-letter topics are created at start (one partition each), deleted at the end.
        consume_retry_topics: false,
        side_topic_partitions: 1,
        ..WorkerConfig::default()
    };
    let runner = Runner::new(config, vec![topic.clone()], Arc::new(pipeline))?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut task = tokio::spawn(runner.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let outcome = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(cmd)) => match answer(&recorded, cmd.trim()) {
                    Ok(reply) => {
                        out.write_all(format!("{REPLY}{reply}\n").as_bytes()).await.context("writing to the driver")?;
                        out.flush().await.context("writing to the driver")?;
                    }
                    Err(e) => break Err(e),
                },
                Ok(None) => break Ok(()),
                Err(e) => break Err(anyhow::Error::from(e).context("reading the driver's commands")),
            },
            r = &mut task => break Err(match r {
                Ok(Ok(_)) => anyhow!("the runner stopped on its own"),
                Ok(Err(e)) => anyhow::Error::from(e).context("the runner failed"),
                Err(e) => anyhow::Error::from(e).context("the runner task"),
            }),
        }
    };
    let _ = stop_tx.send(true);
    if outcome.is_ok() {
        task.await.context("the runner task")??;
    } else {
        task.abort();
    }
    super::super::consume::delete_side_topics(&common.bootstrap, &topic, &group).await;
    outcome
}

/// The answer to one command of the driver.
fn answer(recorded: &Recorded, cmd: &str) -> Result<String> {
    let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
    match verb {
        "count" => Ok(format!(
            "handled={} unstamped={}",
            recorded.handled.load(Ordering::Relaxed),
            recorded.unstamped.load(Ordering::Relaxed)
        )),
        "reset" => {
            *recorded.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Latencies::new();
            Ok("reset".into())
        }
        "report" if !arg.is_empty() => {
            let Latencies { histogram: h, timeline } = std::mem::replace(
                &mut *recorded.latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                Latencies::new(),
            );
            write_cdf(&h, Path::new(arg))?;
            write_timeline(&timeline, &timeline_path(Path::new(arg)))?;
            Ok(format!(
                "report count={} mean_us={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
                h.len(),
                h.mean(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            ))
        }
        _ => bail!("unknown command from the driver: `{cmd}` (count, reset, report <path>)"),
    }
}

/// The histogram's CDF as `latency_ms<TAB>fraction` lines, one per recorded bucket (a
/// header line first).
fn write_cdf(h: &Histogram<u64>, path: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let mut text = String::from("latency_ms\tfraction\n");
    if !h.is_empty() {
        for v in h.iter_recorded() {
            let _ = writeln!(text, "{:.3}\t{:.6}", v.value_iterated_to() as f64 / 1000.0, v.quantile_iterated_to());
        }
    }
    std::fs::write(path, text).with_context(|| format!("writing the latency CDF to {}", path.display()))
}

/// Where the timeline of the CDF at `cdf` goes: `latency-50.tsv` → `timeline-50.tsv` (any
/// other name gets `timeline-` before it).
fn timeline_path(cdf: &Path) -> PathBuf {
    let name = cdf.file_name().map_or_else(|| "latency.tsv".into(), |n| n.to_string_lossy());
    cdf.with_file_name(format!("timeline-{}", name.strip_prefix("latency-").unwrap_or(&name)))
}

/// The timeline as `unix_ms<TAB>events<TAB>over_10ms<TAB>max_ms` lines, one per window with
/// events, in time order (a header line first).
fn write_timeline(timeline: &BTreeMap<u64, Window>, path: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let mut text = String::from("unix_ms\tevents\tover_10ms\tmax_ms\n");
    for (start, w) in timeline {
        let _ = writeln!(text, "{}\t{}\t{}\t{:.3}", start / 1000, w.events, w.over, w.max_us as f64 / 1000.0);
    }
    std::fs::write(path, text).with_context(|| format!("writing the latency timeline to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_counts_each_window_s_events_slow_ones_and_maximum() {
        let mut l = Latencies::new();
        l.record(1_000_050_000, 2_000);
        l.record(1_000_099_999, 12_000);
        l.record(1_000_100_000, 10_000);
        l.record(1_000_000_001, 30_000);
        let dir = std::env::temp_dir().join(format!("ltf-timeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cdf = dir.join("latency-50.tsv");
        let path = timeline_path(&cdf);
        assert_eq!(path, dir.join("timeline-50.tsv"));
        assert_eq!(timeline_path(&dir.join("cdf.tsv")), dir.join("timeline-cdf.tsv"));
        write_timeline(&l.timeline, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "unix_ms\tevents\tover_10ms\tmax_ms\n1000000\t3\t2\t30.000\n1000100\t1\t0\t10.000\n");
        assert_eq!(l.histogram.len(), 4);
    }
}
