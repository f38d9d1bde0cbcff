//! The driver of `ltf bench latency`: spawns the worker process, paces the producer,
//! finds the maximum sustained rate, runs the latency steps, samples the worker's VmRSS.
//!
//! Each latency step gets a worker process of its own (same group: it resumes at the
//! offsets the previous one committed, so it starts without a backlog): memory a worker
//! took while the search overloaded it (librdkafka's prefetch, the allocator's pages) is
//! not returned to the system, and would be counted as steady RSS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ltf_kafka::topics::{ensure_topics, Ensured, TopicSpec, CLUSTER_DEFAULT_REPLICATION};
use ltf_kafka::EventPublisher;
use ltf_schemas::{AggregateType, EventCodec, TopicNames};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use uuid::Uuid;

use super::child::{field, spawn_worker, Link, Rss};
use super::pace::Pacer;
use super::{LatencyArgs, SENT_HEADER};
use crate::demo::sample::Sampler;
use crate::settings::Common;

/// What a search or hold step showed.
#[derive(Debug)]
struct Step {
    achieved: f64,
    lag_start: u64,
    lag_end: u64,
    bound: u64,
    sustained: bool,
}

#[derive(Debug)]
struct Driver<'a> {
    a: &'a LatencyArgs,
    common: &'a Common,
    group: String,
    link: Link,
    /// Events sent (not failed) before this worker process started: earlier ones handled.
    base: u64,
    pacer: Pacer,
    rss: Rss,
    /// Events the ended worker processes saw without a send time.
    unstamped: u64,
}

impl Driver<'_> {
    /// Events sent (not failed) and not handled yet.
    async fn lag(&mut self) -> Result<u64> {
        let sent = self.pacer.sent_ok();
        Ok(sent.saturating_sub(self.base + self.link.handled().await?))
    }

    /// Until the worker has joined its group and handles events (a trickle is sent to
    /// see it), then drained.
    async fn wait_ready(&mut self) -> Result<()> {
        let _ = self.pacer.rate.send(self.a.start_rate.min(200));
        let started = Instant::now();
        while self.link.handled().await? == 0 {
            if started.elapsed() > Duration::from_secs(self.a.ready_timeout_secs) {
                bail!("the worker handled no event within {} s (its log is above)", self.a.ready_timeout_secs);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.drain().await?;
        println!("worker pid {} handles events ({:.1} s after it started)", self.link.pid, started.elapsed().as_secs_f64());
        Ok(())
    }

    /// A new worker process in place of the current one, once everything sent is handled.
    async fn restart(&mut self) -> Result<()> {
        self.drain().await?;
        // The old one leaves the group, committing its offsets and deleting the group's
        // side topics, before the new one starts (and creates them again).
        self.unstamped += self.link.stop().await?;
        self.link = spawn_worker(self.common, self.a, &self.group)?;
        self.base = self.pacer.sent_ok();
        self.rss = Rss::start(self.link.pid);
        self.wait_ready().await
    }

    /// `secs` at `rate`, the lag asked every second.
    async fn step(&mut self, rate: u64, secs: u64) -> Result<Step> {
        let lag_start = self.lag().await?;
        let _ = self.pacer.rate.send(rate);
        let (t0, s0) = (Instant::now(), self.pacer.sent_ok());
        let mut lags = Vec::with_capacity(secs as usize);
        for i in 1..=secs {
            tokio::time::sleep_until((t0 + Duration::from_secs(i)).into()).await;
            lags.push(self.lag().await?);
        }
        let achieved = self.pacer.sent_ok().saturating_sub(s0) as f64 / t0.elapsed().as_secs_f64();
        let lag_end = lags.iter().rev().take(3).copied().min().unwrap_or(0);
        let bound = self.a.lag_floor.max(rate * self.a.lag_bound_ms / 1000);
        let sustained = achieved >= 0.97 * rate as f64 && lag_end <= lag_start + bound;
        Ok(Step { achieved, lag_start, lag_end, bound, sustained })
    }

    /// Pauses the producer until the worker handled everything sent.
    async fn drain(&mut self) -> Result<()> {
        let _ = self.pacer.rate.send(0);
        let started = Instant::now();
        loop {
            let lag = self.lag().await?;
            if lag == 0 {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(self.a.drain_secs) {
                eprintln!("warning: {lag} events still unhandled after {} s of draining; going on", self.a.drain_secs);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn show(&mut self, what: &str, rate: u64, secs: u64) -> Result<Step> {
        let s = self.step(rate, secs).await?;
        self.drain().await?;
        println!(
            "{what} {rate:>8} events/s, {secs} s: achieved {:.0}/s, lag {} → {} (bound +{}): {}",
            s.achieved,
            s.lag_start,
            s.lag_end,
            s.bound,
            if s.sustained {
                "sustained"
            } else if s.achieved < 0.97 * rate as f64 {
                "NOT sustained (the producer fell short)"
            } else {
                "NOT sustained (the lag grew)"
            }
        );
        Ok(s)
    }

    /// The highest rate whose steps were sustained: doubling, then bisection.
    async fn search(&mut self) -> Result<u64> {
        let a = self.a;
        let (mut lo, mut hi) = (0u64, None::<u64>);
        let mut rate = a.max_rate_hint.unwrap_or(a.start_rate).min(a.rate_cap);
        loop {
            if self.show("search", rate, a.step_secs).await?.sustained {
                lo = lo.max(rate);
            } else {
                hi = Some(hi.map_or(rate, |h| h.min(rate)));
            }
            rate = match hi {
                None if rate >= a.rate_cap => {
                    println!("the rate cap {} events/s was sustained (raise --rate-cap to search higher)", a.rate_cap);
                    return Ok(lo);
                }
                None => (rate * 2).min(a.rate_cap),
                Some(h) if lo == 0 => h / 2,
                Some(h) if (h - lo) as f64 / lo as f64 <= a.precision => return Ok(lo),
                Some(h) => (lo + h) / 2,
            };
            if rate < 10 {
                bail!("no rate was sustained down to {} events/s: is the worker handling events? (its log is above)", rate * 2);
            }
        }
    }

    /// One latency step: settle, record, report; writes the CDF file.
    async fn latency_step(&mut self, pct: u32, rate: u64, secs: u64) -> Result<String> {
        self.restart().await?;
        let _ = self.pacer.rate.send(rate);
        tokio::time::sleep(Duration::from_secs(self.a.settle_secs)).await;
        self.link.ask("reset").await?;
        let (t0, s0) = (Instant::now(), self.pacer.sent_ok());
        let mut lag_max = 0;
        for i in 1..=secs {
            tokio::time::sleep_until((t0 + Duration::from_secs(i)).into()).await;
            lag_max = lag_max.max(self.lag().await?);
        }
        let t1 = Instant::now();
        let achieved = self.pacer.sent_ok().saturating_sub(s0) as f64 / t1.duration_since(t0).as_secs_f64();
        let path = self.a.out.join(format!("latency-{pct}.tsv"));
        let r = self.link.ask(&format!("report {}", path.display())).await?;
        let label = format!("# step={pct}% offered={rate}/s achieved={achieved:.0}/s\n");
        let cdf = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        std::fs::write(&path, label + &cdf).with_context(|| format!("writing {}", path.display()))?;
        let ms = |key: &str| -> Result<f64> { Ok(field::<f64>(&r, key)? / 1000.0) };
        let (p50, p90, p99, p999, max) = (ms("p50_us")?, ms("p90_us")?, ms("p99_us")?, ms("p999_us")?, ms("max_us")?);
        let count: u64 = field(&r, "count")?;
        let rss = self.rss.steady_mib(t0, t1);
        println!(
            "step {pct:>3} % = {rate:>8} events/s, {secs} s: achieved {achieved:.0}/s, {count} latencies, ms: p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2}; lag at most {lag_max}; worker RSS {}",
            rss.map_or("not sampled".into(), |(m, n)| format!("{m:.1} MiB (median of {n} samples)"))
        );
        let result = format!(
            "p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} p999_ms={p999:.3} max_ms={max:.3} rss_mib={}",
            rss.map_or("nan".into(), |(m, _)| format!("{m:.1}"))
        );
        println!(
            "RESULT side=ltf step={pct} offered={rate} achieved={achieved:.0} count={count} {result} cdf={}",
            path.display()
        );
        Ok(result)
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating --out {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("resolving --out {}", dir.display()))
}

pub async fn run(common: &Common, mut a: LatencyArgs) -> Result<()> {
    a.out = absolute(&a.out)?;
    let topics = TopicNames::new(&a.prefix);
    let topic = topics.events(AggregateType::Table);
    let ensured = ensure_topics(
        &common.bootstrap,
        &[TopicSpec { name: topic.clone(), partitions: a.partitions, replication_factor: CLUSTER_DEFAULT_REPLICATION }],
    )
    .await?;
    // The worker's fresh group reads from the start: events of an earlier run would be a
    // backlog no lag figure accounts for.
    if ensured.iter().any(|(_, e)| *e == Ensured::AlreadyExisted) {
        bail!("{topic} already exists; the bench needs a new topic: pass a fresh --prefix (or delete the topic)");
    }
    let outcome = bench(common, &a, topics, &topic).await;
    // Also after a failure: a run writes gigabytes.
    if !a.keep_topic {
        delete_topic(&common.bootstrap, &topic).await;
    }
    outcome
}

/// Everything once the topic exists.
async fn bench(common: &Common, a: &LatencyArgs, topics: TopicNames, topic: &str) -> Result<()> {
    let codec = Arc::new(EventCodec::new(&common.registry, topics).context("schema registry settings")?);
    let mut config = common.publisher_config();
    if let Some(l) = a.linger_ms {
        config.linger_ms = l;
    }
    if let Some(c) = &a.compression {
        config.compression = c.clone();
    }
    let publisher = EventPublisher::new(&config, codec)?;

    // The pool, encoded up front (this also registers the schema before the worker starts).
    let mut sampler = Sampler::new(7, 50);
    let (mut pool, mut bytes, mut value_bytes) = (Vec::with_capacity(a.pool), 0usize, 0usize);
    for _ in 0..a.pool {
        let m = publisher.encode(&sampler.record_updated()).await?;
        value_bytes += m.value.len();
        bytes += m.value.len() + m.key.len() + m.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        pool.push(m);
    }
    // The send-time header: its name and 16 digits.
    let (avg_record, avg_value) = (bytes / a.pool + SENT_HEADER.len() + 16, value_bytes / a.pool);

    let group = format!("ltfbench-latency-{}", Uuid::new_v4().simple());
    let link = spawn_worker(common, a, &group)?;
    let rss = Rss::start(link.pid);
    let pacer = Pacer::start(publisher, pool, Duration::from_millis(a.tick_ms));
    println!(
        "topic {topic} ({} partitions), group {group}, producer linger.ms={} compression={}, record {avg_record} bytes (value {avg_value})",
        a.partitions, config.linger_ms, config.compression
    );
    let mut d = Driver { a, common, group, link, base: 0, pacer, rss, unstamped: 0 };
    d.wait_ready().await?;

    let mut max = d.search().await?;
    let mut held = false;
    for _ in 0..3 {
        if d.show("hold  ", max, a.hold_secs).await?.sustained {
            held = true;
            break;
        }
        max = max * 9 / 10;
    }
    if !held {
        eprintln!("warning: no rate was held for {} s; the latency steps use {max} events/s anyway", a.hold_secs);
    }
    println!("maximum sustained rate: {max} events/s{}", if held { "" } else { " (NOT confirmed by the hold)" });

    let mut fractions = a.fractions.clone();
    fractions.sort_unstable();
    fractions.dedup();
    let mut at50 = String::new();
    for pct in fractions {
        let secs = if pct == 50 { a.latency_secs } else { a.side_secs };
        let r = d.latency_step(pct, (max * u64::from(pct) / 100).max(1), secs).await?;
        if pct == 50 {
            at50 = r;
        }
    }

    let Driver { mut link, pacer, unstamped, .. } = d;
    pacer.stop(Duration::from_secs(30)).await;
    let unstamped = unstamped + link.stop().await?;
    if unstamped > 0 {
        eprintln!("warning: {unstamped} events reached the handler without a send time");
    }
    println!(
        "RESULT side=ltf max_rate={max} held={} {at50} avg_record_bytes={avg_record} avg_value_bytes={avg_value} partitions={} linger_ms={} compression={} topic={topic}",
        if held { "yes" } else { "no" },
        a.partitions,
        config.linger_ms,
        config.compression
    );
    Ok(())
}

/// Deletes the bench topic (best effort: a warning when it fails).
async fn delete_topic(bootstrap: &str, topic: &str) {
    let deleted = async {
        let admin: AdminClient<DefaultClientContext> = ltf_kafka::security::client_config(bootstrap).create()?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in admin.delete_topics(&[topic], &options).await? {
            r.map_err(|(_, code)| rdkafka::error::KafkaError::AdminOp(code))?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = deleted.await {
        eprintln!("warning: could not delete {topic} (delete it by hand): {e}");
    }
}
