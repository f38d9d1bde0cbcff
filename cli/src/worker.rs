//! `ltf worker <name>`: runs one worker's consumer group with its operations endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use ltf_consumers::middleware::{BreakerConfig, RetryPolicy};
use ltf_consumers::{DedupStore, Health, Runner, WorkerBuilder, WorkerConfig};
use ltf_kafka::ConsumerConfig;
use ltf_workers::automation::AutomationConfig;
use ltf_workers::{WorkerDeps, WorkerKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::database::{DatabaseArgs, Secret};
use crate::ops;
use crate::settings::Common;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The worker: audit, cache, analytics, automation.
    name: String,
    /// PostgreSQL URL of the domain store, dedup store and event log (every worker but
    /// cache).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<Secret>,
    /// Most connections in the PostgreSQL pool.
    #[arg(long, env = "LTF_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// Redis URL of the record cache (the cache worker).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, default_value = "redis://127.0.0.1:6379")]
    redis_url: Secret,
    /// Key prefix of the record cache: keys are `<prefix>:record:<tableId>:<recordId>`.
    #[arg(long, env = "LTF_CACHE_KEY_PREFIX", default_value = "ltf")]
    cache_key_prefix: String,
    /// Address of `/metrics`, `/healthz` and `/readyz` (default 127.0.0.1:9101 + the
    /// worker's index).
    #[arg(long, env = "LTF_WORKER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Consumer group id (default `<topic prefix>.<name>`).
    #[arg(long, env = "LTF_WORKER_GROUP")]
    group: Option<String>,
    /// Most events in flight.
    #[arg(long, env = "LTF_WORKER_MAX_IN_FLIGHT", default_value_t = 256)]
    max_in_flight: u32,
    /// Seconds in-flight events get to finish on SIGTERM.
    #[arg(long, env = "LTF_WORKER_SHUTDOWN_DEADLINE_SECS", default_value_t = 20)]
    shutdown_deadline_secs: u64,
    /// Kafka session timeout in milliseconds (how soon a dead member's partitions move).
    #[arg(long, env = "LTF_WORKER_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    session_timeout_ms: u32,
    /// Handler attempts before an event is dead-lettered.
    #[arg(long, env = "LTF_WORKER_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u32,
    /// Days dedup records are kept.
    #[arg(long, env = "LTF_WORKER_DEDUP_RETENTION_DAYS", default_value_t = 7)]
    dedup_retention_days: u64,
    #[command(flatten)]
    breaker: BreakerArgs,
    #[command(flatten)]
    automation: AutomationArgs,
}

/// The circuit breakers' settings, the same for every dependency of the worker.
#[derive(Debug, Args)]
struct BreakerArgs {
    /// Sliding window over which a dependency's call outcomes are counted, in milliseconds.
    #[arg(long, env = "LTF_BREAKER_WINDOW_MS", default_value_t = 10_000)]
    breaker_window_ms: u64,
    /// Fewest outcomes in the window before the failure rate may open a breaker.
    #[arg(long, env = "LTF_BREAKER_MIN_CALLS", default_value_t = 10)]
    breaker_min_calls: u32,
    /// Share of failed calls in the window that opens a breaker (above 0, at most 1).
    #[arg(long, env = "LTF_BREAKER_FAILURE_RATE", default_value_t = 0.5)]
    breaker_failure_rate: f64,
    /// How long an open breaker waits before it lets probes through, in milliseconds.
    #[arg(long, env = "LTF_BREAKER_COOLDOWN_MS", default_value_t = 10_000)]
    breaker_cooldown_ms: u64,
    /// Probes a half-open breaker lets through at once; as many successes close it.
    #[arg(long, env = "LTF_BREAKER_HALF_OPEN_PROBES", default_value_t = 2)]
    breaker_half_open_probes: u32,
    /// Most calls to one dependency at once (webhook hosts, SMTP); after a recovery the
    /// limit starts at the half-open probes and grows by one per success.
    #[arg(long, env = "LTF_BREAKER_MAX_CONCURRENCY", default_value_t = 16)]
    breaker_max_concurrency: u32,
    /// Most breakers kept (dependency names come from user-defined automations).
    #[arg(long, env = "LTF_BREAKER_MAX_DEPENDENCIES", default_value_t = 1024)]
    breaker_max_dependencies: usize,
}

impl BreakerArgs {
    /// The settings, validated; an error names the flag.
    fn config(&self) -> Result<BreakerConfig> {
        let config = BreakerConfig {
            window: Duration::from_millis(self.breaker_window_ms),
            min_calls: self.breaker_min_calls,
            failure_rate: self.breaker_failure_rate,
            cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            half_open_probes: self.breaker_half_open_probes,
            max_concurrency: self.breaker_max_concurrency,
            max_dependencies: self.breaker_max_dependencies,
        };
        if let Err(ltf_consumers::ConsumeError::Config { key, reason }) = config.validate() {
            bail!("--breaker-{}: {reason}", key.replace('_', "-"));
        }
        Ok(config)
    }
}

/// The automation worker's settings.
#[derive(Debug, Args)]
struct AutomationArgs {
    /// Default timeout of a webhook call, in milliseconds.
    #[arg(long, env = "LTF_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    webhook_timeout_ms: u64,
    /// Hosts webhooks may call although they resolve to loopback, private or link-local
    /// addresses (comma-separated host names or IP literals). By default only public
    /// addresses are called (SSRF guard).
    #[arg(long, env = "LTF_WEBHOOK_ALLOW_HOSTS", value_delimiter = ',')]
    webhook_allow_hosts: Vec<String>,
    /// SMTP server of email actions: smtp://host:port, smtp://host?tls=required or
    /// smtps://user:password@host. Without it email actions fail saying so.
    #[arg(long, env = "LTF_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<Secret>,
    /// Sender of email actions.
    #[arg(long, env = "LTF_EMAIL_FROM", default_value = "LaTeChforce automations <automations@latechforce.invalid>")]
    email_from: String,
    /// Webhook notify actions are delivered to (their default channel when set).
    #[arg(long, env = "LTF_NOTIFY_WEBHOOK_URL", hide_env_values = true)]
    notify_webhook_url: Option<Secret>,
    /// Recipient of notify actions delivered by email.
    #[arg(long, env = "LTF_NOTIFY_EMAIL_TO")]
    notify_email_to: Option<String>,
    /// The most of a webhook's answer read, in bytes; a longer answer is kept as an
    /// excerpt of its start.
    #[arg(long, env = "LTF_WEBHOOK_MAX_RESPONSE_BYTES", default_value_t = 65_536)]
    webhook_max_response_bytes: usize,
    /// The deepest chain of automations triggering automations; a deeper run fails with
    /// `loop_detected`.
    #[arg(long, env = "LTF_AUTOMATION_MAX_DEPTH", default_value_t = 8)]
    automation_max_depth: u32,
    /// Seconds an automation step may wait for a failing dependency (a webhook host, the
    /// SMTP server) before it fails with `dependency_unavailable` and its run ends
    /// `failed`. Dependency failures use no attempts; other workers wait without limit.
    #[arg(long, env = "LTF_AUTOMATION_MAX_PARK_SECS", default_value_t = 900)]
    automation_max_park_secs: u64,
}

impl AutomationArgs {
    fn config(&self) -> Result<AutomationConfig> {
        if self.webhook_timeout_ms == 0 || self.webhook_timeout_ms > 60_000 {
            bail!("--webhook-timeout-ms must be between 1 and 60000");
        }
        if self.webhook_max_response_bytes == 0 {
            bail!("--webhook-max-response-bytes must be at least 1");
        }
        if self.automation_max_depth == 0 {
            bail!("--automation-max-depth must be at least 1");
        }
        if self.automation_max_park_secs == 0 {
            bail!("--automation-max-park-secs must be at least 1");
        }
        Ok(AutomationConfig {
            webhook_timeout: Duration::from_millis(self.webhook_timeout_ms),
            webhook_allow_hosts: self.webhook_allow_hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect(),
            smtp_url: self.smtp_url.as_ref().map(|s| s.0.clone()),
            email_from: self.email_from.clone(),
            notify_webhook_url: self.notify_webhook_url.as_ref().map(|s| s.0.clone()),
            notify_email_to: self.notify_email_to.clone(),
            webhook_max_response_bytes: self.webhook_max_response_bytes,
            max_depth: self.automation_max_depth,
            max_park: Duration::from_secs(self.automation_max_park_secs),
        })
    }
}

impl WorkerArgs {
    /// The worker's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub async fn run(common: &Common, args: WorkerArgs) -> Result<()> {
    let Some(kind) = WorkerKind::parse(&args.name) else {
        let names: Vec<&str> = WorkerKind::ALL.iter().map(|w| w.name()).collect();
        bail!("unknown worker `{}`; one of: {}", args.name, names.join(", "));
    };
    let handle = ops::install_metrics()?;
    ltf_consumers::metrics::describe();
    ltf_workers::metrics::describe();
    let topics = common.topics();
    let group = args.group.clone().unwrap_or_else(|| kind.group_id(&topics));
    let mut consumer = ConsumerConfig::new(&common.bootstrap, &group);
    consumer.session_timeout_ms = args.session_timeout_ms;
    let config = WorkerConfig {
        consumer,
        max_in_flight: args.max_in_flight,
        shutdown_deadline: Duration::from_secs(args.shutdown_deadline_secs),
        ..WorkerConfig::default()
    };
    let retry = RetryPolicy { max_attempts: args.max_attempts, ..RetryPolicy::default() };
    retry.validate()?;
    let breaker = args.breaker.config()?;

    let dedup = if kind.uses_dedup_store() {
        let Some(database_url) = args.database_url.clone() else {
            bail!("the {} worker needs DATABASE_URL (or --database-url)", kind.name());
        };
        let pool = DatabaseArgs { database_url, db_max_connections: args.db_max_connections }.connect().await?;
        ltf_domain::store::migrate(&pool).await.context("applying the database migrations")?;
        Some(Arc::new(DedupStore::new(pool, Duration::from_secs(args.dedup_retention_days * 86_400))))
    } else {
        None
    };
    let codec = common.writer_codec().await?;
    let deps = WorkerDeps {
        redis_url: Some(args.redis_url.0.clone()),
        cache_key_prefix: Some(args.cache_key_prefix.clone()),
        codec: Some(codec.clone()),
        automation: args.automation.config()?,
    };
    let publisher_config = common.publisher_config();
    let publisher = ltf_kafka::EventPublisher::new(&publisher_config, codec.clone())?;
    let max_park = kind.max_park(&deps);
    let pipeline = WorkerBuilder::new(&group, codec, kind.router(&deps)?, publisher)
        .dedup_opt(dedup.clone())
        .retry(retry)
        .breaker_config(breaker)
        .max_park(max_park)
        .build();
    let runner = Runner::new(config, kind.topics(&topics), Arc::new(pipeline))?;
    let health = runner.health();

    let index = WorkerKind::ALL.iter().position(|w| *w == kind).unwrap_or(0) as u16;
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9101 + index)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = ops::metrics_router(handle)
        .route(
            "/healthz",
            get({
                let h = health.clone();
                move || std::future::ready(alive(&h))
            }),
        )
        .route("/readyz", get(move || std::future::ready(ready(&health))));
    // Its own thread: the runtime has one thread on two cores (`runtime_threads` in main).
    let server = ops::serve_on_own_thread(listen, app, wait_for(stop_rx.clone()))?;
    info!(worker = kind.name(), %group, %listen, "worker starting");

    let pruning = tokio::spawn(async move {
        let Some(dedup) = dedup else { return };
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            if let Err(e) = dedup.prune().await {
                warn!(error = %e, "pruning the dedup store failed");
            }
        }
    });
    tokio::spawn(async move {
        ops::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let report = runner.run(wait_for(stop_rx)).await?;
    pruning.abort();
    tokio::task::spawn_blocking(move || server.join())
        .await
        .context("waiting for the operations server")?
        .map_err(|_| anyhow::anyhow!("the operations server panicked"))??;
    info!(abandoned = report.abandoned, "worker stopped");
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Alive while the poll loop goes round (it wakes at least every second).
fn alive(health: &Health) -> (StatusCode, &'static str) {
    if health.is_alive(Duration::from_secs(30)) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "poll loop stuck\n")
    }
}

/// Ready when partitions are assigned and the fuse has not stopped the worker.
fn ready(health: &Health) -> (StatusCode, &'static str) {
    if health.is_stopped() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopped: dead-letter fuse tripped or shutting down\n")
    } else if health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no partitions assigned\n")
    }
}

#[cfg(test)]
mod breaker_tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        breaker: BreakerArgs,
    }

    #[test]
    fn breaker_flags_default_to_the_runtime_defaults_and_a_bad_one_is_named() {
        let defaults = Cli::try_parse_from(["ltf"]).expect("parse");
        assert_eq!(defaults.breaker.config().expect("valid"), BreakerConfig::default());
        let set = Cli::try_parse_from(["ltf", "--breaker-min-calls", "20", "--breaker-window-ms", "30000"]).expect("parse");
        let config = set.breaker.config().expect("valid");
        assert_eq!((config.min_calls, config.window), (20, Duration::from_secs(30)));
        for (flag, value) in [
            ("--breaker-failure-rate", "1.5"),
            ("--breaker-min-calls", "0"),
            ("--breaker-window-ms", "0"),
            ("--breaker-max-concurrency", "1"),
        ] {
            let bad = Cli::try_parse_from(["ltf", flag, value]).expect("parse");
            let e = bad.breaker.config().expect_err("refused").to_string();
            assert!(e.starts_with(&format!("{flag}:")), "{flag} {value}: {e}");
        }
    }
}
