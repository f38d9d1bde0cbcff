//! The whole pipeline in one test process: the HTTP API, the outbox relay and the four
//! workers (audit, cache, analytics, automation), each its own consumer group, on a
//! topic prefix and a database of the test's own; plus the outside world the automation
//! talks to: a webhook receiver and an SMTP server.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ltf_consumers::middleware::RetryPolicy;
use ltf_consumers::WorkerBuilder;
use ltf_consumers::{DedupStore, RunReport, Runner, WorkerConfig};
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::ConsumerConfig;
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_producers::relay::{Relay, RelayConfig};
use ltf_schemas::TopicNames;
use ltf_workers::automation::AutomationConfig;
use ltf_workers::{WorkerDeps, WorkerKind};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{json_with, TestApi};
use crate::receiver::Receiver;
use crate::smtp::SmtpServer;
use crate::{bootstrap, count_rows, group_behind, redis_url};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Where notify actions are mailed.
pub const NOTIFY_TO: &str = "ops@example.com";
/// How long an automation step waits for a failing webhook host in these tests.
pub const AUTOMATION_MAX_PARK: Duration = Duration::from_secs(3);

struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<RunReport, ltf_consumers::ConsumeError>>,
}

type RelayTask = JoinHandle<Result<(), ltf_producers::relay::RelayError>>;

/// The running pipeline of one test.
pub struct Platform {
    /// The API (and the test's database, `api.db`).
    pub api: TestApi,
    /// The test's topic names.
    pub names: TopicNames,
    /// Receives webhooks.
    pub receiver: Receiver,
    /// Receives mail.
    pub smtp: SmtpServer,
    /// Key prefix of the record cache.
    pub cache_prefix: String,
    relay: Option<(oneshot::Sender<()>, RelayTask)>,
    workers: Vec<Worker>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("prefix", &self.names.prefix())
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// Starts the API, the relay, the receivers and the four workers.
    pub async fn start(test: &str) -> Result<Platform> {
        let api = TestApi::start(test).await?;
        let names = api.codec.topics().clone();
        let specs: Vec<TopicSpec> =
            names.all_events().into_iter().map(|name| TopicSpec { name, partitions: 2, replication_factor: 1 }).collect();
        ensure_topics(&bootstrap(), &specs).await?;
        let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), api.codec.clone())?;
        let relay = Relay::new(
            api.db.pool.clone(),
            publisher,
            RelayConfig { poll_interval: Duration::from_millis(200), ..Default::default() },
        )?;
        let (stop, stopped) = oneshot::channel::<()>();
        let relay_task = tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let cache_prefix = names.prefix().to_owned();
        let mut p = Platform {
            api,
            names,
            receiver: Receiver::start().await?,
            smtp: SmtpServer::start()?,
            cache_prefix,
            relay: Some((stop, relay_task)),
            workers: Vec::new(),
        };
        p.start_workers()?;
        Ok(p)
    }

    /// The group of `kind`.
    pub fn group(&self, kind: WorkerKind) -> String {
        kind.group_id(&self.names)
    }

    /// Starts the four workers (each a consumer group of its own, committed offsets or
    /// the beginning of the topics).
    pub fn start_workers(&mut self) -> Result<()> {
        let automation = AutomationConfig {
            webhook_timeout: Duration::from_secs(2),
            webhook_allow_hosts: vec!["127.0.0.1".into()],
            smtp_url: Some(self.smtp.url.clone()),
            notify_email_to: Some(NOTIFY_TO.into()),
            max_park: AUTOMATION_MAX_PARK,
            ..AutomationConfig::default()
        };
        let deps = WorkerDeps {
            redis_url: Some(redis_url()),
            cache_key_prefix: Some(self.cache_prefix.clone()),
            codec: Some(self.api.codec.clone()),
            automation,
        };
        for kind in WorkerKind::ALL {
            let group = self.group(kind);
            let dedup =
                kind.uses_dedup_store().then(|| Arc::new(DedupStore::new(self.api.db.pool.clone(), Duration::from_secs(86_400))));
            let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), self.api.codec.clone())?;
            let retry = RetryPolicy {
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(400),
                ..Default::default()
            };
            let pipeline = WorkerBuilder::new(&group, self.api.codec.clone(), kind.router(&deps)?, publisher)
                .dedup_opt(dedup)
                .retry(retry)
                .max_park(kind.max_park(&deps))
                .build();
            let mut consumer = ConsumerConfig::new(bootstrap(), &group);
            consumer.session_timeout_ms = 6000;
            let config = WorkerConfig { consumer, side_topic_partitions: 1, ..Default::default() };
            let runner = Runner::new(config, kind.topics(&self.names), Arc::new(pipeline))?;
            let (stop, mut stopped) = watch::channel(false);
            let task = tokio::spawn(runner.run(async move {
                let _ = stopped.wait_for(|v| *v).await;
            }));
            self.workers.push(Worker { stop, task });
        }
        Ok(())
    }

    /// Stops the workers gracefully (finished offsets committed).
    pub async fn stop_workers(&mut self) -> Result<()> {
        for w in self.workers.drain(..) {
            let _ = w.stop.send(true);
            w.task.await.context("worker task")??;
        }
        Ok(())
    }

    /// Deletes the committed offsets of every worker group: the next start reads every
    /// topic from the beginning (the dedup store is kept). The workers must be stopped.
    pub async fn forget_offsets(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
        let groups: Vec<String> = WorkerKind::ALL.iter().map(|k| self.group(*k)).collect();
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let results = admin.delete_groups(&refs, &AdminOptions::new()).await?;
            if results.iter().all(|r| r.is_ok() || matches!(r, Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("could not delete the groups' offsets: {results:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the pipeline is quiet: nothing unsent in the outbox and every worker
    /// group committed every topic to its end, twice in a row (an event a worker emits
    /// goes through the outbox again).
    pub async fn wait_drained(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut quiet = 0;
        loop {
            let unsent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE sent_at IS NULL").fetch_one(&self.api.db.pool).await?;
            let mut behind = 0;
            for kind in WorkerKind::ALL {
                let (group, topics) = (self.group(kind), kind.topics(&self.names));
                behind += tokio::task::spawn_blocking(move || group_behind(&group, &topics)).await??;
            }
            quiet = if unsent == 0 && behind == 0 { quiet + 1 } else { 0 };
            if quiet == 2 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not drained after {within:?}: {unsent} outbox rows unsent, workers {behind} messages behind");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> Result<i64> {
        count_rows(&self.api.db.pool, table).await
    }

    /// Stores an automation over HTTP.
    pub async fn create_automation(&self, definition: Value) -> Result<()> {
        let r = self.api.call(Method::POST, "/v1/automations").json(&definition).send().await?;
        json_with(r, StatusCode::CREATED).await.map(drop)
    }

    /// Creates a record over HTTP; returns its id.
    pub async fn create_record(&self, table: &str, fields: Value) -> Result<String> {
        let r =
            self.api.call(Method::POST, &format!("/v1/tables/{table}/records")).json(&json!({ "fields": fields })).send().await?;
        let body = json_with(r, StatusCode::CREATED).await?;
        body["record"]["id"].as_str().map(str::to_owned).context("no record id")
    }

    /// Updates a record over HTTP; returns the answer's record.
    pub async fn update_record(&self, table: &str, record: &str, fields: Value) -> Result<Value> {
        let r = self
            .api
            .call(Method::PATCH, &format!("/v1/tables/{table}/records/{record}"))
            .json(&json!({ "fields": fields }))
            .send()
            .await?;
        Ok(json_with(r, StatusCode::OK).await?["record"].clone())
    }

    /// Deletes a record over HTTP.
    pub async fn delete_record(&self, table: &str, record: &str) -> Result<()> {
        let r = self.api.call(Method::DELETE, &format!("/v1/tables/{table}/records/{record}")).send().await?;
        json_with(r, StatusCode::OK).await.map(drop)
    }

    /// The stored record `id` (fields and version), if any.
    pub async fn record(&self, id: &str) -> Result<Option<(Value, i64)>> {
        Ok(sqlx::query_as("SELECT fields, version FROM ltf_records WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.api.db.pool)
            .await?)
    }

    /// The runs of `automation` with their steps, as `GET /v1/automations/{id}/runs`
    /// answers them.
    pub async fn runs(&self, automation: &str) -> Result<Vec<Value>> {
        let r = self.api.call(Method::GET, &format!("/v1/automations/{automation}/runs")).send().await?;
        let body = json_with(r, StatusCode::OK).await?;
        Ok(body["runs"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `automation` has `n` runs that ended, and returns them (newest first).
    pub async fn ended_runs(&self, automation: &str, n: usize, within: Duration) -> Result<Vec<Value>> {
        eventually(&format!("{n} ended runs of {automation}"), within, || async {
            let runs = self.runs(automation).await?;
            let ended = runs.iter().filter(|r| r["status"] != "running").count();
            Ok((ended >= n).then_some(runs))
        })
        .await
    }

    /// Stops everything and drops the database.
    pub async fn stop(mut self) -> Result<()> {
        self.stop_workers().await?;
        if let Some((stop, task)) = self.relay.take() {
            let _ = stop.send(());
            task.await.context("relay task")??;
        }
        self.receiver.stop().await?;
        self.api.stop().await
    }
}

/// Polls `check` until it returns `Some`, or fails after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
