//! One trace end to end, as operators see it: a chain-flow request (form submitted →
//! record created → automation triggered → notification sent) with a `traceparent` shows
//! the same trace id in the JSON logs of `ltf api`, `ltf relay` and each of the four
//! `ltf worker`s; every event the workers emit, and the notification webhook itself,
//! carry a `traceparent` of that trace; and with `OTEL_EXPORTER_OTLP_ENDPOINT` set the
//! API exports its spans over OTLP/HTTP to a collector.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_schemas::TopicNames;
use ltf_tests::api::{json_with, Server};
use ltf_tests::receiver::Receiver;
use ltf_tests::{bootstrap, fresh_database, outbox_rows, registry_url, unique_prefix};
use reqwest::StatusCode;
use serde_json::json;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const KEY: &str = "trace-test-key-0123456789abcdef";

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(dir: &Path, name: &str, prefix: &str, db_url: &str, args: &[&str], env: &[(&str, String)]) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_ltf"));
    c.args(["--bootstrap", &bootstrap(), "--registry", &registry_url(), "--topic-prefix", prefix, "--log-format", "json"])
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("LTF_LOG", "warn,ltf_producers=debug,ltf_consumers=debug,tower_http=debug")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    for (k, v) in env {
        c.env(k, v);
    }
    Ok(Proc { name: name.to_owned(), child: c.spawn().with_context(|| format!("starting {name}"))?, log })
}

async fn wait_ready(p: &mut Proc, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        ensure!(p.child.try_wait()?.is_none(), "{} exited: {}", p.name, std::fs::read_to_string(&p.log)?);
        ensure!(Instant::now() < deadline, "{} not ready at {url}", p.name);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stop(p: &mut Proc) -> Result<()> {
    Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status()?;
    let status = p.child.wait()?;
    ensure!(status.success(), "{} exited with {status}", p.name);
    Ok(())
}

/// Log lines of `p` whose spans carry the trace id.
fn traced_lines(p: &Proc) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(&p.log)?;
    let needle = format!("\"trace_id\":\"{TRACE}\"");
    Ok(text.lines().filter(|l| l.contains(&needle)).map(str::to_owned).collect())
}

#[derive(Default)]
struct Collected {
    bodies: Vec<(String, Vec<u8>)>,
}

async fn collect(State(c): State<Arc<Mutex<Collected>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    c.lock().expect("collector lock").bodies.push((ct, body.to_vec()));
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_request_is_one_trace_through_the_api_relay_and_every_worker() -> Result<()> {
    let db = fresh_database().await?;
    let prefix = unique_prefix("trace");
    let specs: Vec<TopicSpec> = TopicNames::new(&prefix)
        .all_events()
        .into_iter()
        .map(|name| TopicSpec { name, partitions: 2, replication_factor: 1 })
        .collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let dir = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let collected = Arc::new(Mutex::new(Collected::default()));
    let collector = Server::start(axum::Router::new().route("/v1/traces", post(collect)).with_state(collected.clone())).await?;

    let api_port = free_port()?;
    let otlp = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ("LTF_API_KEYS", format!("tester:{KEY}")),
        ("LTF_API_LISTEN", format!("127.0.0.1:{api_port}")),
    ];
    let mut api = spawn(dir.path(), "api", &prefix, &db.url(), &["api"], &otlp)?;
    let relay_port = free_port()?;
    let mut relay = spawn(
        dir.path(),
        "relay",
        &prefix,
        &db.url(),
        &["relay", "--listen", &format!("127.0.0.1:{relay_port}"), "--poll-interval-ms", "200"],
        &[],
    )?;
    wait_ready(&mut api, &format!("http://127.0.0.1:{api_port}/readyz")).await?;
    wait_ready(&mut relay, &format!("http://127.0.0.1:{relay_port}/readyz")).await?;
    let mut workers = Vec::new();
    for name in ["audit", "cache", "analytics", "automation"] {
        let port = free_port()?;
        let env = [
            ("LTF_WEBHOOK_ALLOW_HOSTS", "127.0.0.1".to_owned()),
            ("LTF_NOTIFY_WEBHOOK_URL", receiver.url("/notify")),
            ("LTF_CACHE_KEY_PREFIX", prefix.clone()),
        ];
        let p = spawn(
            dir.path(),
            name,
            &prefix,
            &db.url(),
            &["worker", name, "--listen", &format!("127.0.0.1:{port}"), "--session-timeout-ms", "6000"],
            &env,
        )?;
        workers.push((p, port));
    }
    for (p, port) in &mut workers {
        wait_ready(p, &format!("http://127.0.0.1:{port}/readyz")).await?;
    }

    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(method, format!("http://127.0.0.1:{api_port}{path}")).bearer_auth(KEY).json(&body).send()
    };
    json_with(
        call(
            reqwest::Method::POST,
            "/v1/tables",
            json!({"id": "leads", "name": "Leads", "fields": [{"name": "name", "type": "text"}]}),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    json_with(
        call(
            reqwest::Method::POST,
            "/v1/forms",
            json!({"id": "signup", "name": "Sign up", "tableId": "leads", "fields": [{"name": "name", "type": "text"}]}),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    json_with(
        call(
            reqwest::Method::POST,
            "/v1/automations",
            json!({"id": "welcome", "name": "Welcome",
        "trigger": {"event": "record-created", "tableId": "leads"},
        "actions": [{"id": "tell", "type": "notify", "message": "New lead {{fields.name}}"}]}),
        )
        .await?,
        StatusCode::CREATED,
    )
    .await?;
    let r = http
        .post(format!("http://127.0.0.1:{api_port}/v1/forms/signup/submissions"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({"data": {"name": "Ada"}}))
        .send()
        .await?;
    json_with(r, StatusCode::CREATED).await?;

    // The chain's end: the notification webhook, itself in the trace.
    let deadline = Instant::now() + Duration::from_secs(60);
    let notify = loop {
        if let Some(c) = receiver.calls("/notify").into_iter().next() {
            break c;
        }
        ensure!(Instant::now() < deadline, "no notification within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tp = notify.traceparent.clone().unwrap_or_default();
    ensure!(tp.starts_with(&format!("00-{TRACE}-")), "the webhook's traceparent {tp:?}");
    // Every event of the chain carries the trace, each with its own parent span.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = outbox_rows(&db.pool).await?;
        if rows.len() >= 4 && rows.iter().all(|r| r.sent_at.is_some()) {
            break rows;
        }
        ensure!(Instant::now() < deadline, "the chain's events were not all published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(types, vec!["form-submitted", "record-created", "automation-triggered", "action-executed"]);
    let carried: Vec<(&str, &str)> =
        rows.iter().map(|r| (r.event_type.as_str(), r.header("traceparent").unwrap_or_default())).collect();
    for (event_type, tp) in &carried {
        ensure!(tp.starts_with(&format!("00-{TRACE}-")), "{event_type} carries {tp:?}; all: {carried:?}");
        ensure!(
            !tp.contains("00f067aa0ba902b7"),
            "{event_type}: a span of ours is the parent, not the caller's; all: {carried:?}; api log:\n{}",
            std::fs::read_to_string(&api.log)?
        );
    }
    // Let the last events reach every worker, then stop everything (flushing the exporter).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (p, _) in &mut workers {
        stop(p)?;
    }
    stop(&mut relay)?;
    stop(&mut api)?;

    for p in std::iter::once(&api).chain(std::iter::once(&relay)).chain(workers.iter().map(|(p, _)| p)) {
        let lines = traced_lines(p)?;
        ensure!(!lines.is_empty(), "no log line of {} carries trace {TRACE}; log:\n{}", p.name, std::fs::read_to_string(&p.log)?);
    }
    // The API exported its spans to the collector: OTLP protobuf holding the trace id.
    let trace_bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&TRACE[2 * i..2 * i + 2], 16).unwrap_or_default()).collect();
    let bodies = std::mem::take(&mut collected.lock().expect("collector lock").bodies);
    ensure!(!bodies.is_empty(), "the collector received nothing");
    ensure!(
        bodies.iter().all(|(ct, _)| ct == "application/x-protobuf"),
        "content types {:?}",
        bodies.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    ensure!(bodies.iter().any(|(_, b)| b.windows(16).any(|w| w == trace_bytes.as_slice())), "no exported span has the trace id");
    collector.stop().await?;
    receiver.stop().await?;
    db.drop_database().await
}
