//! `ltf bench api`: CreateRecord over HTTP against a running `ltf api`, in steps of
//! increasing concurrency, while watching the relay's outbox backlog.
//!
//! Each step runs N client tasks on one keep-alive connection pool; each task POSTs a
//! realistic record (the demo's contact/deal fields: text, number, integer, boolean, date,
//! JSON) to `/v1/tables/{table}/records` (one table, or round `--tables` of them), waits
//! for the answer, and sends the next. The
//! latency of every 201 goes into an HDR histogram (body serialisation is outside the
//! timer, reading the answer inside); anything else is an error, and the first error's
//! body is printed. Meanwhile the relay's `/metrics` is read every 500 ms for
//! `latechforce_outbox_backlog` (max during the step) and
//! `latechforce_relay_published_total` (events the relay published during the step);
//! after the step, a short drain wait, then the backlog again: zero means the relay kept
//! up. The relay refreshes that gauge every `--backlog-interval-ms` (`scripts/bench api`
//! runs it with 500).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode};
use serde_json::json;
use tokio::sync::watch;

use crate::database::Secret;
use crate::demo::sample::Sampler;

#[derive(Debug, Clone, Args)]
pub struct ApiBenchArgs {
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (sent as `X-Api-Key`). Prefer the environment variable: a flag is visible
    /// in the process list.
    #[arg(long, env = "LTF_BENCH_API_KEY", hide_env_values = true)]
    pub api_key: Secret,
    /// Table the records go to; its fields must accept the bench's records (see
    /// `--create-table`).
    #[arg(long, default_value = "tbl_bench")]
    pub table: String,
    /// Spread the records over this many tables, `<table>_0` … `<table>_<n-1>` (with 1,
    /// `--table` itself). A record event's aggregate is its table, and writers of one
    /// aggregate take its outbox sequence in turn, so one table is the contended case.
    #[arg(long, default_value_t = 1)]
    pub tables: usize,
    /// Create the table(s) first (`POST /v1/tables`, with the bench's field definitions);
    /// an existing table of that id is used as it is.
    #[arg(long)]
    pub create_table: bool,
    /// Concurrency steps: client tasks, each with one request in flight.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub concurrency: Vec<usize>,
    /// Length of each step in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Requests per step instead of a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Unmeasured warm-up before the first step, in seconds, at the highest concurrency.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Wait after each step before reading the backlog again, in seconds.
    #[arg(long, default_value_t = 2)]
    pub drain_secs: u64,
    /// The relay's Prometheus endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9100/metrics")]
    pub relay_metrics: String,
}

/// The bench table's field definitions, matching `Sampler::fields`.
const FIELDS: [(&str, &str); 10] = [
    ("name", "text"),
    ("email", "text"),
    ("status", "text"),
    ("amount", "number"),
    ("quantity", "integer"),
    ("active", "boolean"),
    ("dueDate", "date"),
    ("tags", "json"),
    ("address", "json"),
    ("notes", "text"),
];

/// How a step ends.
#[derive(Debug, Clone)]
enum Stop {
    At(Instant),
    /// Requests left to send, shared by the step's tasks.
    Budget(Arc<AtomicU64>),
}

impl Stop {
    fn next(&self) -> bool {
        match self {
            Stop::At(t) => Instant::now() < *t,
            Stop::Budget(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }
}

#[derive(Debug, Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Errors {
    fn record(&self, what: impl FnOnce() -> String) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            if let Ok(mut first) = self.first.lock() {
                first.get_or_insert_with(what);
            }
        }
    }
}

/// What one step measured.
#[derive(Debug)]
struct StepReport {
    concurrency: usize,
    ok: u64,
    errors: u64,
    secs: f64,
    latency_us: Histogram<u64>,
    max_backlog: Option<f64>,
    backlog_after_drain: Option<f64>,
    relay_published: Option<f64>,
}

/// The relay's figures read from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct RelayGauges {
    backlog: Option<f64>,
    published: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Reads the backlog gauge and the sum of the published counter from Prometheus text.
fn parse_metrics(text: &str) -> RelayGauges {
    let mut g = RelayGauges::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        match (name, value) {
            ("latechforce_outbox_backlog", Some(v)) => g.backlog = Some(v),
            ("latechforce_relay_published_total", Some(v)) => g.published += v,
            _ => {}
        }
    }
    g
}

async fn scrape(client: &Client, url: &str) -> Result<RelayGauges> {
    let res = client.get(url).send().await?.error_for_status()?;
    Ok(parse_metrics(&res.text().await?))
}

/// Samples the relay every 500 ms until `stop`; returns the highest backlog seen.
async fn watch_backlog(client: Client, url: String, mut stop: watch::Receiver<bool>) -> Option<f64> {
    let mut max: Option<f64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Ok(RelayGauges { backlog: Some(b), .. }) = scrape(&client, &url).await {
                    max = Some(max.map_or(b, |m: f64| m.max(b)));
                }
            }
            // One send (true) ends the watch; a dropped sender ends it too.
            _ = stop.changed() => return max,
        }
    }
}

/// One client task: sends records until `stop` says so; the latencies of its 201s.
async fn client_task(
    client: Client,
    urls: Arc<[String]>,
    key: Arc<str>,
    seed: u64,
    stop: Stop,
    errors: Arc<Errors>,
) -> Histogram<u64> {
    let mut sampler = Sampler::new(seed, 1);
    let mut latency = histogram();
    // Tasks start on different tables and go round them.
    let mut next_url = seed as usize;
    while stop.next() {
        let url = &urls[next_url % urls.len()];
        next_url = next_url.wrapping_add(1);
        let body = match serde_json::to_vec(&json!({ "fields": sampler.fields() })) {
            Ok(b) => b,
            Err(e) => {
                errors.record(|| format!("encoding the body: {e}"));
                continue;
            }
        };
        let started = Instant::now();
        let sent = client.post(url).header("x-api-key", &*key).header(CONTENT_TYPE, "application/json").body(body).send().await;
        match sent {
            Ok(res) => {
                let status = res.status();
                // Read the whole answer, so the connection goes back to the pool.
                let text = res.text().await;
                let micros = started.elapsed().as_micros() as u64;
                match (status, text) {
                    (StatusCode::CREATED, Ok(_)) => latency.saturating_record(micros.max(1)),
                    (s, Ok(t)) => errors.record(|| format!("HTTP {s}: {}", truncate(&t, 500))),
                    (s, Err(e)) => errors.record(|| format!("HTTP {s}, reading the body: {e}")),
                }
            }
            Err(e) => errors.record(|| format!("request failed: {e}")),
        }
    }
    latency
}

async fn run_step(
    client: &Client,
    args: &ApiBenchArgs,
    urls: &Arc<[String]>,
    key: &Arc<str>,
    concurrency: usize,
    seed: u64,
) -> Result<StepReport> {
    let before = scrape(client, &args.relay_metrics).await.ok();
    let (stop_watch, watching) = watch::channel(false);
    let watcher = tokio::spawn(watch_backlog(client.clone(), args.relay_metrics.clone(), watching));
    let errors = Arc::new(Errors::default());
    let started = Instant::now();
    let stop = match args.requests {
        Some(n) => Stop::Budget(Arc::new(AtomicU64::new(n))),
        None => Stop::At(started + Duration::from_secs(args.duration_secs)),
    };
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            tokio::spawn(client_task(client.clone(), urls.clone(), key.clone(), seed + i as u64, stop.clone(), errors.clone()))
        })
        .collect();
    let mut latency_us = histogram();
    for t in tasks {
        latency_us.add(t.await.context("client task")?).context("merging histograms")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let at_end = scrape(client, &args.relay_metrics).await.ok();
    let _ = stop_watch.send(true);
    let mut max_backlog = watcher.await.context("backlog watcher")?;
    if let Some(b) = at_end.and_then(|g| g.backlog) {
        max_backlog = Some(max_backlog.map_or(b, |m| m.max(b)));
    }
    tokio::time::sleep(Duration::from_secs(args.drain_secs)).await;
    let after = scrape(client, &args.relay_metrics).await.ok();
    if let Some(first) = errors.first.lock().ok().and_then(|f| f.clone()) {
        eprintln!("concurrency {concurrency}: first error: {first}");
    }
    Ok(StepReport {
        concurrency,
        ok: latency_us.len(),
        errors: errors.count.load(Ordering::Relaxed),
        secs,
        latency_us,
        max_backlog,
        backlog_after_drain: after.and_then(|g| g.backlog),
        relay_published: before.zip(at_end).map(|(b, e)| e.published - b.published),
    })
}

/// The bench's table ids.
fn table_ids(args: &ApiBenchArgs) -> Vec<String> {
    match args.tables {
        0 | 1 => vec![args.table.clone()],
        n => (0..n).map(|i| format!("{}_{i}", args.table)).collect(),
    }
}

/// Creates a bench table; an existing one (409) is fine.
async fn create_table(client: &Client, args: &ApiBenchArgs, table: &str) -> Result<()> {
    let fields: Vec<_> = FIELDS.iter().map(|(name, ty)| json!({"name": name, "type": ty})).collect();
    let body = json!({"id": table, "name": "Bench contacts", "fields": fields});
    let res = client
        .post(format!("{}/v1/tables", args.url.trim_end_matches('/')))
        .header("x-api-key", &args.api_key.0)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {}/v1/tables", args.url))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    match status {
        StatusCode::CREATED => {}
        StatusCode::CONFLICT => eprintln!("table {table} exists; using it"),
        s => bail!("creating table {table}: HTTP {s}: {}", truncate(&text, 500)),
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"))
}

pub async fn run(args: ApiBenchArgs) -> Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive numbers, e.g. 1,8,32,64");
    }
    let client = Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let tables = table_ids(&args);
    if args.create_table {
        for t in &tables {
            create_table(&client, &args, t).await?;
        }
        eprintln!("table(s) ready: {}", tables.len());
    }
    let base = args.url.trim_end_matches('/');
    let urls: Arc<[String]> = tables.iter().map(|t| format!("{base}/v1/tables/{t}/records")).collect();
    let key: Arc<str> = args.api_key.0.clone().into();
    if let Err(e) = scrape(&client, &args.relay_metrics).await {
        eprintln!("warning: relay metrics at {} unreadable ({e:#}); backlog columns will be n/a", args.relay_metrics);
    }

    let top = args.concurrency.iter().copied().max().unwrap_or(1);
    if args.warmup_secs > 0 {
        let warmup = ApiBenchArgs { requests: None, duration_secs: args.warmup_secs, ..args.clone() };
        let w = run_step(&client, &warmup, &urls, &key, top, 1_000_000).await?;
        eprintln!("warm-up: {} requests at concurrency {top} in {:.1} s, {} errors", w.ok, w.secs, w.errors);
        if w.ok == 0 {
            bail!("no request succeeded during the warm-up");
        }
    }

    let stop = match args.requests {
        Some(n) => format!("{n} requests per step"),
        None => format!("{} s per step", args.duration_secs),
    };
    let target = match &*tables {
        [one] => one.clone(),
        many => format!("{} tables ({}…)", many.len(), many[0]),
    };
    println!(
        "CreateRecord POST {base}/v1/tables/{{tableId}}/records, {target}: {stop}, warm-up {} s, drain wait {} s, one request in flight per client task",
        args.warmup_secs, args.drain_secs
    );
    println!(
        "{:>11} {:>10} {:>8} {:>8} {:>8} {:>7} {:>11} {:>11} {:>10} {:>8}",
        "concurrency",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "max backlog",
        "after drain",
        "relay ev/s",
        "requests"
    );
    let mut failed = 0;
    for (i, &c) in args.concurrency.iter().enumerate() {
        let r = run_step(&client, &args, &urls, &key, c, (i as u64 + 1) * 10_000).await?;
        let ms = |q: f64| r.latency_us.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:>11} {:>10.0} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>11} {:>11} {:>10} {:>8}",
            r.concurrency,
            r.ok as f64 / r.secs,
            ms(0.5),
            ms(0.99),
            r.latency_us.max() as f64 / 1000.0,
            r.errors,
            fmt_opt(r.max_backlog),
            fmt_opt(r.backlog_after_drain),
            fmt_opt(r.relay_published.map(|p| p / r.secs)),
            r.ok + r.errors,
        );
        failed += r.errors;
    }
    if failed > 0 {
        bail!("{failed} request(s) failed (first error of each step above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_and_the_published_sum_are_read_from_prometheus_text() {
        let text = "# HELP latechforce_outbox_backlog Outbox rows not yet published.\n\
                    # TYPE latechforce_outbox_backlog gauge\n\
                    latechforce_outbox_backlog 42\n\
                    latechforce_outbox_backlog_other 7\n\
                    latechforce_relay_published_total{topic=\"a\",event_type=\"record-created\"} 10\n\
                    latechforce_relay_published_total{topic=\"b\",event_type=\"record-updated\"} 5\n";
        let g = parse_metrics(text);
        assert_eq!((g.backlog, g.published), (Some(42.0), 15.0));
        assert_eq!(parse_metrics("").backlog, None);
    }

    #[test]
    fn a_budget_lets_exactly_its_requests_through() {
        let stop = Stop::Budget(Arc::new(AtomicU64::new(3)));
        let passed = (0..10).filter(|_| stop.next()).count();
        assert_eq!(passed, 3);
    }

    #[test]
    fn the_table_accepts_every_field_the_sampler_makes() {
        let fields = Sampler::new(1, 1).fields();
        let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        assert!(fields.keys().all(|k| names.contains(&k.as_str())), "{:?}", fields.keys());
    }
}
