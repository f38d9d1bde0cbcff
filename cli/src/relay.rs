//! `ltf relay`: publishes the transactional outbox to Kafka (see `ltf_producers::relay`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use ltf_kafka::topics::{ensure_topics, TopicSpec, CLUSTER_DEFAULT_REPLICATION};
use ltf_producers::relay::{Relay, RelayConfig};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::info;

use crate::ops;
use crate::settings::Common;

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// PostgreSQL URL of the domain store holding the outbox.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "LTF_RELAY_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Most rows per batch (one transaction, one Kafka round trip).
    #[arg(long, env = "LTF_RELAY_BATCH_SIZE", default_value_t = RelayConfig::default().batch_size)]
    batch_size: u32,
    /// Most aggregates claimed per batch.
    #[arg(long, env = "LTF_RELAY_MAX_AGGREGATES", default_value_t = RelayConfig::default().max_aggregates)]
    max_aggregates: u32,
    /// Most relays running at once against one database; each takes a slot and writes its
    /// Kafka transactions as `<topic prefix>.relay-<slot>`.
    #[arg(long, env = "LTF_RELAY_MAX_RELAYS", default_value_t = RelayConfig::default().max_relays)]
    max_relays: u32,
    /// Poll interval in milliseconds when no notification arrives.
    #[arg(long, env = "LTF_RELAY_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,
    /// How often the backlog gauges (`latechforce_outbox_backlog`, oldest age) are
    /// refreshed, in milliseconds.
    #[arg(long, env = "LTF_RELAY_BACKLOG_INTERVAL_MS", default_value_t = 5000)]
    backlog_interval_ms: u64,
    /// How long sent rows are kept, in seconds.
    #[arg(long, env = "LTF_RELAY_RETENTION_SECS", default_value_t = 24 * 3600)]
    retention_secs: u64,
    /// Partitions of the event topics the relay creates when they are missing.
    #[arg(long, env = "LTF_TOPIC_PARTITIONS", default_value_t = 6)]
    partitions: i32,
    /// Replication factor of the event topics the relay creates (default: the cluster's
    /// `default.replication.factor`).
    #[arg(long, env = "LTF_TOPIC_REPLICATION")]
    replication_factor: Option<i32>,
}

impl RelayArgs {
    fn config(&self) -> RelayConfig {
        RelayConfig {
            batch_size: self.batch_size,
            max_aggregates: self.max_aggregates,
            max_relays: self.max_relays,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            retention: Duration::from_secs(self.retention_secs),
            backlog_interval: Duration::from_millis(self.backlog_interval_ms),
            ..RelayConfig::default()
        }
    }
}

pub async fn run(common: &Common, args: RelayArgs) -> Result<()> {
    let config = args.config();
    config.validate()?;
    let handle = ops::install_metrics()?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&args.database_url)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    ltf_domain::store::migrate(&pool).await.context("applying the database migrations")?;

    // Topics must exist before the idempotent producer writes to them (an auto-created
    // topic can drop the first records of an idempotent producer).
    let specs: Vec<TopicSpec> = common
        .topics()
        .all_events()
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: args.partitions,
            replication_factor: args.replication_factor.unwrap_or(CLUSTER_DEFAULT_REPLICATION),
        })
        .collect();
    ensure_topics(&common.bootstrap, &specs).await.context("ensuring the event topics")?;

    let publisher_config = common.publisher_config();
    publisher_config.validate()?;
    let relay = Relay::new(pool.clone(), common.publisher(&publisher_config)?, config)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let ops_app = ops::router(handle).route("/readyz", get(move || ready(pool.clone())));
    let ops_stop = wait_for(stop_rx.clone());
    let server = tokio::spawn(ops::serve(args.listen, ops_app, ops_stop));
    info!(listen = %args.listen, "relay operations endpoints up");

    tokio::spawn(async move {
        ops::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    relay.run(wait_for(stop_rx)).await?;
    server.await.context("operations server task")??;
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Ready when PostgreSQL answers.
async fn ready(pool: PgPool) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&pool).await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
    }
}
