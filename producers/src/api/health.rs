//! `/healthz` (liveness) and `/readyz` (readiness), outside the API key.
//!
//! Guarantees:
//! * `/healthz` answers 200 whenever the process serves requests; it checks nothing else;
//! * `/readyz` checks, concurrently and each bounded by `readiness_timeout_ms`, that
//!   PostgreSQL answers `SELECT 1`, that a Kafka broker answers a metadata request and that
//!   the schema registry answers; 200 when all three do, 503 otherwise, the body naming each
//!   check, whether it passed and why not.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::ApiState;
use ltf_kafka::PublishError;

/// What `/readyz` probes besides the database: a Kafka client for metadata requests and
/// the registry's URL.
#[derive(Clone)]
pub struct Readiness {
    kafka: Arc<BaseConsumer>,
    registry_url: String,
    http: reqwest::Client,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness").field("registry_url", &self.registry_url).finish_non_exhaustive()
    }
}

impl Readiness {
    /// Probes of the brokers `bootstrap_servers` and the Confluent-compatible registry API
    /// at `registry_url`. Creating the Kafka client does not connect yet.
    pub fn new(bootstrap_servers: &str, registry_url: &str) -> Result<Readiness, PublishError> {
        let kafka: BaseConsumer = ltf_kafka::security::client_config(bootstrap_servers)
            .set("socket.nagle.disable", "true")
            .create()
            .map_err(PublishError::Create)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| PublishError::Config { key: "registry_url".into(), reason: format!("HTTP client: {e}") })?;
        Ok(Readiness { kafka: Arc::new(kafka), registry_url: registry_url.trim_end_matches('/').to_owned(), http })
    }

    async fn kafka(&self, timeout: Duration) -> Result<(), String> {
        let kafka = Arc::clone(&self.kafka);
        let md = tokio::task::spawn_blocking(move || kafka.fetch_metadata(None, timeout).map(|m| m.brokers().len()))
            .await
            .map_err(|e| e.to_string())?;
        match md {
            Ok(0) => Err("the cluster reported no broker".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("metadata request failed: {e}")),
        }
    }

    async fn registry(&self, timeout: Duration) -> Result<(), String> {
        let url = format!("{}/schemas/types", self.registry_url);
        let response = self.http.get(&url).timeout(timeout).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("GET {url}: HTTP {}", response.status()))
        }
    }
}

/// `/healthz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `/readyz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// The names of the checks that failed (`database`, `kafka`, `registry`).
    pub failed: Vec<&'static str>,
    /// Every check.
    pub checks: Vec<Check>,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `database`, `kafka` or `registry`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database, Kafka and the registry are reachable.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "every dependency answers", body = Ready),
    (status = 503, description = "a dependency does not answer; `failed` names it", body = Ready),
))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Ready>) {
    let timeout = state.config.readiness_timeout();
    let database =
        async { sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool).await.map(drop).map_err(|e| e.to_string()) };
    let (database, kafka, registry) = tokio::join!(
        bounded(timeout, database),
        bounded(timeout, state.readiness.kafka(timeout)),
        bounded(timeout, state.readiness.registry(timeout)),
    );
    let checks: Vec<Check> = [("database", database), ("kafka", kafka), ("registry", registry)]
        .into_iter()
        .map(|(name, r)| Check { name, ok: r.is_ok(), error: r.err() })
        .collect();
    let failed: Vec<&'static str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !failed.is_empty() {
        tracing::warn!(?failed, "not ready");
    }
    let body = Ready { status: if failed.is_empty() { "ready" } else { "unavailable" }, failed, checks };
    (status, Json(body))
}

async fn bounded(timeout: Duration, check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    // A little slack over the check's own timeout, so its error (more telling) wins.
    match tokio::time::timeout(timeout + Duration::from_millis(250), check).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}
