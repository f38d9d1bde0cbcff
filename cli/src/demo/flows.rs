//! `ltf demo-flows`: drives the running pipeline (api, relay and the four workers) through
//! the spec's flows over HTTP, waits until every worker caught up, and prints per worker:
//! events handled, duplicates skipped, retried, dead-lettered and end-to-end latency
//! p50/p99, read from the workers' own `/metrics`; plus what the automations did, as a
//! webhook receiver it runs saw it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use clap::Args;
use futures::stream::{self, StreamExt, TryStreamExt};
use ltf_consumers::metrics::{
    outcome, CIRCUIT_TRANSITIONS_TOTAL, DEAD_LETTERS_TOTAL, END_TO_END_SECONDS, EVENTS_TOTAL, LAG_MESSAGES, PARKS_TOTAL,
};
use ltf_producers::metrics::OUTBOX_BACKLOG;
use prometheus_parse::{Scrape, Value as Metric};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct DemoFlowsArgs {
    /// The API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Its API key.
    #[arg(long, env = "LTF_DEMO_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The relay's /metrics.
    #[arg(long, default_value = "http://127.0.0.1:9100/metrics")]
    relay_metrics: String,
    /// The workers' /metrics: `name=url`, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "audit=http://127.0.0.1:9101/metrics,cache=http://127.0.0.1:9102/metrics,analytics=http://127.0.0.1:9103/metrics,automation=http://127.0.0.1:9104/metrics"
    )]
    workers: Vec<String>,
    /// Where the webhook receiver listens (the automation worker must be allowed to call
    /// it, and use `<it>/notify` as its notification webhook).
    #[arg(long, default_value = "127.0.0.1:9199")]
    receiver: SocketAddr,
    /// Deals created (each with a contact from a form submission, then updated).
    #[arg(long, default_value_t = 300)]
    deals: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Give up waiting for the workers after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
    /// Make the receiver flaky on every path: every 10th call answers 503, and every
    /// 20th (another one) takes effect but answers only after `--late-ms`, past the
    /// worker's webhook timeout.
    #[arg(long)]
    flaky_receiver: bool,
    /// How late the flaky receiver's late answers are, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    late_ms: u64,
}

/// What a receiver saw: calls per path, and the Idempotency-Keys that took effect per
/// path (a repeated key takes effect once).
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) calls: BTreeMap<String, u64>,
    pub(crate) keys: BTreeMap<String, BTreeSet<String>>,
}

/// How the receiver answers: like a real CRM, `/crm` is sometimes briefly unavailable
/// (every 10th call gets a 503, retried with the same Idempotency-Key); flaky, every path
/// also answers some calls late.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    pub(crate) flaky: bool,
    pub(crate) late: Duration,
}

/// What the `n`th call (from 1) of `path` gets: a 503, or an answer after a delay.
fn answer(b: Behaviour, path: &str, n: u64) -> Result<Duration, StatusCode> {
    if (b.flaky || path == "/crm") && n.is_multiple_of(10) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(if b.flaky && n % 20 == 5 { b.late } else { Duration::ZERO })
}

/// Serves a webhook receiver on `addr` (every POST path) until the process ends.
pub(crate) async fn serve_receiver(addr: SocketAddr, behaviour: Behaviour) -> Result<Arc<Mutex<Received>>> {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new().route("/{*path}", post(receive)).with_state((received.clone(), behaviour));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the receiver to {addr}"))?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(received)
}

async fn receive(State((r, b)): State<(Arc<Mutex<Received>>, Behaviour)>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let delay = {
        let mut g = r.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let calls = g.calls.entry(uri.path().to_owned()).or_default();
        *calls += 1;
        match answer(b, uri.path(), *calls) {
            Err(status) => return status,
            Ok(delay) => {
                // The call takes effect now, whenever the answer comes.
                g.keys.entry(uri.path().to_owned()).or_default().insert(key);
                delay
            }
        }
    };
    tokio::time::sleep(delay).await;
    StatusCode::OK
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value, expect: StatusCode) -> Result<Value> {
        let r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key).json(&body).send().await?;
        let status = r.status();
        let text = r.text().await?;
        ensure!(status == expect, "{path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(reqwest::Method::POST, path, body, StatusCode::CREATED).await
    }
}

pub async fn run(args: DemoFlowsArgs) -> Result<()> {
    let workers: Vec<(String, String)> = args
        .workers
        .iter()
        .map(|w| w.split_once('=').map(|(n, u)| (n.to_owned(), u.to_owned())).context("--workers entries are name=url"))
        .collect::<Result<_>>()?;
    let behaviour = Behaviour { flaky: args.flaky_receiver, late: Duration::from_millis(args.late_ms) };
    let received = serve_receiver(args.receiver, behaviour).await?;
    let hook = |path: &str| format!("http://{}{path}", args.receiver);
    let api = Api { http: reqwest::Client::new(), base: args.api.trim_end_matches('/').to_owned(), key: args.api_key.clone() };

    // The model: contacts fed by a sign-up form; deals linking a contact.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (contacts, deals, form) = (format!("contacts_{run}"), format!("deals_{run}"), format!("signup_{run}"));
    api.post("/v1/tables", json!({"id": contacts, "name": "Contacts", "fields": [{"name": "name", "type": "text"}, {"name": "email", "type": "text"}]})).await?;
    api.post(
        "/v1/tables",
        json!({"id": deals, "name": "Deals", "fields": [
        {"name": "title", "type": "text"}, {"name": "email", "type": "text"}, {"name": "status", "type": "text"},
        {"name": "notes", "type": "text"}, {"name": "contact", "type": "link"}]}),
    )
    .await?;
    api.post(
        "/v1/forms",
        json!({"id": form, "name": "Sign up", "tableId": contacts,
        "fields": [{"name": "name", "type": "text"}, {"name": "email", "type": "text"}]}),
    )
    .await?;
    let automations = [
        // simple: record created -> webhook
        json!({"id": format!("new_deal_{run}"), "name": "New deal to the CRM", "trigger": {"event": "record-created", "tableId": deals},
               "actions": [{"id": "crm", "type": "webhook", "url": hook("/crm"), "body": {"deal": "{{recordId}}", "title": "{{fields.title}}"}}]}),
        // chain: form -> record -> automation -> notification
        json!({"id": format!("welcome_{run}"), "name": "Announce new contacts", "trigger": {"event": "record-created", "tableId": contacts},
               "actions": [{"id": "tell", "type": "notify", "message": "New contact {{fields.name}}"}]}),
        // conditional: email changed -> update the contact; status Done -> workflow
        json!({"id": format!("sync_{run}"), "name": "Sync the contact's email", "trigger": {"event": "record-updated", "tableId": deals,
               "conditions": [{"field": "email", "op": "changed"}]},
               "actions": [{"id": "update", "type": "update_record", "tableId": contacts, "recordId": "{{fields.contact}}", "fields": {"email": "{{fields.email}}"}}]}),
        json!({"id": format!("won_{run}"), "name": "Won deals start the workflow", "trigger": {"event": "record-updated", "tableId": deals,
               "conditions": [{"field": "status", "op": "changedTo", "value": "Done"}]},
               "actions": [{"id": "start", "type": "webhook", "url": hook("/workflow"), "body": {"deal": "{{recordId}}"}}]}),
    ];
    for a in &automations {
        api.post("/v1/automations", a.clone()).await?;
    }

    println!(
        "driving {} deals through the API ({} in flight): form submissions, records, updates, deletes",
        args.deals, args.concurrency
    );
    let started = Instant::now();
    let api = &api;
    let (contacts, deals, form) = (&contacts, &deals, &form);
    stream::iter(0..args.deals)
        .map(|i| async move {
            let email = format!("person{i}@example.com");
            api.post(&format!("/v1/forms/{form}/submissions"), json!({"data": {"name": format!("Person {i}"), "email": email}})).await?;
            let contact = api.post(&format!("/v1/tables/{contacts}/records"), json!({"fields": {"name": format!("Person {i}")}})).await?;
            let contact = contact["record"]["id"].as_str().unwrap_or_default().to_owned();
            let deal = api
                .post(&format!("/v1/tables/{deals}/records"), json!({"fields": {"title": format!("Deal {i}"), "email": email, "status": "Open", "notes": "", "contact": contact}}))
                .await?;
            let deal = deal["record"]["id"].as_str().unwrap_or_default().to_owned();
            let path = format!("/v1/tables/{deals}/records/{deal}");
            let change = match i % 3 {
                0 => json!({"fields": {"email": format!("new{i}@example.com")}}),
                1 => json!({"fields": {"status": "Done"}}),
                _ => json!({"fields": {"notes": "called back"}}),
            };
            api.send(reqwest::Method::PATCH, &path, change, StatusCode::OK).await?;
            if i % 10 == 9 {
                api.send(reqwest::Method::DELETE, &format!("/v1/tables/{contacts}/records/{contact}"), json!({}), StatusCode::OK).await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let requests = args.deals * 4 + args.deals / 10;
    let load_ended = started.elapsed();
    let secs = load_ended.as_secs_f64();
    println!("{requests} requests in {secs:.1} s ({:.0}/s)", requests as f64 / secs);

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    // Caught up: nothing in the outbox, no lag, and no worker handled anything since the
    // last look, three looks in a row.
    let (mut quiet, mut last_total) = (0, -1.0);
    let mut caught_up = started.elapsed();
    let scrapes = loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let relay = scrape(&http, &args.relay_metrics).await?;
        let backlog = sum(&relay, OUTBOX_BACKLOG, |_| true);
        let mut scrapes = Vec::new();
        let (mut lag, mut total) = (0.0, 0.0);
        for (name, url) in &workers {
            let s = scrape(&http, url).await?;
            lag += sum(&s, LAG_MESSAGES, |_| true);
            total += sum(&s, EVENTS_TOTAL, |_| true);
            scrapes.push((name.clone(), s));
        }
        quiet = if backlog == 0.0 && lag == 0.0 && total == last_total && total > 0.0 { quiet + 1 } else { 0 };
        if quiet == 1 {
            caught_up = started.elapsed();
        }
        last_total = total;
        if quiet >= 3 {
            break scrapes;
        }
        if Instant::now() > deadline {
            bail!("the workers did not catch up within {} s (outbox backlog {backlog}, lag {lag})", args.timeout_secs);
        }
    };

    println!(
        "\n{:<11} {:>9} {:>11} {:>8} {:>14} {:>9} {:>9}",
        "worker", "handled", "duplicates", "retried", "dead-lettered", "e2e p50", "e2e p99"
    );
    for (name, s) in &scrapes {
        let events = |o: &str| sum(s, EVENTS_TOTAL, |l| l.get("outcome") == Some(o));
        let handled = (events(outcome::SUCCESS) + events(outcome::RETRIED)) as u64;
        let (p50, p99) = (quantile(s, END_TO_END_SECONDS, 0.5), quantile(s, END_TO_END_SECONDS, 0.99));
        println!(
            "{name:<11} {handled:>9} {:>11} {:>8} {:>14} {:>9} {:>9}",
            events(outcome::DUPLICATE) as u64,
            events(outcome::RETRIED) as u64,
            sum(s, DEAD_LETTERS_TOTAL, |_| true) as u64,
            ms(p50),
            ms(p99)
        );
    }
    println!(
        "\ndrained: every worker caught up {:.1} s after the load started ({:.1} s after it ended){}",
        caught_up.as_secs_f64(),
        caught_up.saturating_sub(load_ended).as_secs_f64(),
        if args.flaky_receiver { ", with the flaky receiver" } else { "" }
    );
    for (name, s) in &scrapes {
        let transitions: Vec<String> = ["open", "half_open", "closed"]
            .iter()
            .map(|state| format!("{state} {}", sum(s, CIRCUIT_TRANSITIONS_TOTAL, |l| l.get("state") == Some(state)) as u64))
            .collect();
        let parks = sum(s, PARKS_TOTAL, |_| true) as u64;
        if parks > 0 || transitions.iter().any(|t| !t.ends_with(" 0")) {
            println!("  {name}: {parks} calls parked on a failing dependency; breaker transitions: {}", transitions.join(", "));
        }
    }
    let r = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    println!("\nwhat the automations did (as the webhook receiver saw it):");
    for (path, what) in [
        ("/crm", "new deals sent to the CRM (simple)"),
        ("/notify", "new contacts announced (chain)"),
        ("/workflow", "won deals started the workflow (conditional)"),
    ] {
        let calls = r.calls.get(path).copied().unwrap_or_default();
        let keys = r.keys.get(path).map_or(0, BTreeSet::len);
        println!("  {calls:>6} calls, {keys:>6} accepted distinct Idempotency-Keys  {what}");
    }
    println!("  (handled counts handler runs: the automation worker runs up to 5 handlers per event;");
    println!("   end-to-end latency is occurredOn to handled, from the workers' histograms.)");
    Ok(())
}

async fn scrape(http: &reqwest::Client, url: &str) -> Result<Scrape> {
    let text = http.get(url).send().await.with_context(|| format!("scraping {url}"))?.text().await?;
    Ok(Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?)
}

fn sum(s: &Scrape, metric: &str, keep: impl Fn(&prometheus_parse::Labels) -> bool) -> f64 {
    // + 0.0: an empty float sum is -0.0.
    0.0 + s
        .samples
        .iter()
        .filter(|x| x.metric == metric && keep(&x.labels))
        .map(|x| match &x.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum::<f64>()
}

/// The `q` quantile of histogram `metric` over every label set, interpolated within its
/// bucket as Prometheus' histogram_quantile does.
fn quantile(s: &Scrape, metric: &str, q: f64) -> Option<f64> {
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for x in s.samples.iter().filter(|x| x.metric == metric) {
        if let Metric::Histogram(hs) = &x.value {
            for h in hs {
                buckets.entry(h.less_than.to_bits()).or_insert((h.less_than, 0.0)).1 += h.count;
            }
        }
    }
    let mut sorted: Vec<(f64, f64)> = buckets.into_values().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in sorted {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below).max(f64::EPSILON));
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_histogram_quantile() {
        let text = "# TYPE h histogram\nh_bucket{g=\"a\",le=\"0.1\"} 50\nh_bucket{g=\"a\",le=\"1\"} 90\nh_bucket{g=\"a\",le=\"+Inf\"} 100\nh_sum{g=\"a\"} 30\nh_count{g=\"a\"} 100\n\
                    h_bucket{g=\"b\",le=\"0.1\"} 50\nh_bucket{g=\"b\",le=\"1\"} 90\nh_bucket{g=\"b\",le=\"+Inf\"} 100\nh_sum{g=\"b\"} 30\nh_count{g=\"b\"} 100\n";
        let s = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        // 200 observations over both label sets: the median is the 100th, the top of 0.1.
        assert!((quantile(&s, "h", 0.5).unwrap() - 0.1).abs() < 1e-9);
        // The 0.7 quantile (140th) is half way into (0.1, 1].
        assert!((quantile(&s, "h", 0.7).unwrap() - 0.55).abs() < 1e-9);
        // Beyond the last finite bucket: its bound.
        assert_eq!(quantile(&s, "h", 0.99), Some(1.0));
        assert_eq!(quantile(&s, "missing", 0.5), None);
        assert_eq!(ms(Some(0.0125)), "12 ms");
    }

    #[test]
    fn the_flaky_receiver_fails_one_call_in_ten_and_answers_one_in_twenty_late() {
        let late = Duration::from_secs(2);
        let flaky = Behaviour { flaky: true, late };
        let answers: Vec<_> = (1..=100).map(|n| answer(flaky, "/x", n)).collect();
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 10);
        assert_eq!(answers.iter().filter(|a| **a == Ok(late)).count(), 5);
        let steady = Behaviour { flaky: false, late };
        assert!((1..=100).all(|n| answer(steady, "/x", n) == Ok(Duration::ZERO)));
        assert_eq!((1..=100).filter(|n| answer(steady, "/crm", *n).is_err()).count(), 10, "the CRM's own blips");
    }
}
