//! The HTTP API served in-process for a test: a fresh database, a topic prefix of its own,
//! the router on 127.0.0.1:0, a reqwest client with the test's API key.

use std::sync::{Arc, OnceLock};

use anyhow::{ensure, Context, Result};
use ltf_producers::api::{router, ApiConfig, ApiKey, ApiState, Readiness};
use ltf_schemas::{EventCodec, TopicNames};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{bootstrap, fresh_database, registry_url, unique_prefix, TestDb};

/// The API key every test server accepts.
pub const TEST_KEY: &str = "test-key-0123456789abcdef";
/// Its principal (the `createdBy` of records created with it).
pub const PRINCIPAL: &str = "tester";

/// The process's Prometheus recorder (histograms with buckets, as `ltf api` installs it),
/// installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0, 10.0])
            .and_then(PrometheusBuilder::install_recorder)
            .expect("installing the Prometheus recorder");
        ltf_producers::metrics::describe();
        handle
    })
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` on 127.0.0.1:0.
    pub async fn start(app: axum::Router) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Server { url, stop: Some(stop), task })
    }

    /// Stops accepting, lets in-flight requests finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.context("server task")?;
        Ok(())
    }
}

/// The API state of a test: its config with [`TEST_KEY`], `pool`, `codec`, readiness
/// probes of the test stack, the process's Prometheus handle.
pub fn state(config: ApiConfig, pool: sqlx::PgPool, codec: Arc<EventCodec>) -> Result<ApiState> {
    let readiness = Readiness::new(&bootstrap(), &registry_url())?;
    Ok(ApiState::new(config, pool, codec, readiness)?.with_metrics(prometheus().clone()))
}

/// The default test configuration: [`TEST_KEY`] for [`PRINCIPAL`].
pub fn config() -> ApiConfig {
    ApiConfig { api_keys: vec![ApiKey::new(PRINCIPAL, TEST_KEY)], ..ApiConfig::default() }
}

/// The API of one test, with its own database and topic prefix.
#[derive(Debug)]
pub struct TestApi {
    /// The server.
    pub server: Server,
    /// The test's database.
    pub db: TestDb,
    /// The codec the API encodes with (its topic prefix is the test's).
    pub codec: Arc<EventCodec>,
    /// A plain client; [`TestApi::call`] adds the API key.
    pub http: reqwest::Client,
}

impl TestApi {
    /// Starts the API with the default configuration.
    pub async fn start(test: &str) -> Result<TestApi> {
        TestApi::start_with(test, |_| {}).await
    }

    /// Starts the API with the default configuration changed by `configure`.
    pub async fn start_with(test: &str, configure: impl FnOnce(&mut ApiConfig)) -> Result<TestApi> {
        let db = fresh_database().await?;
        let codec = Arc::new(EventCodec::new(&registry_url(), TopicNames::new(unique_prefix(test)))?);
        let mut c = config();
        configure(&mut c);
        let server = Server::start(router(state(c, db.pool.clone(), codec.clone())?)).await?;
        Ok(TestApi { server, db, codec, http: reqwest::Client::new() })
    }

    /// `url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// A request with the test's API key.
    pub fn call(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TEST_KEY)
    }

    /// A request without an API key.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Creates the table `id` with `fields` (`[{"name", "type"}]`) over HTTP.
    pub async fn create_table(&self, id: &str, fields: Value) -> Result<()> {
        let body = serde_json::json!({"id": id, "name": id, "fields": fields});
        let r = self.call(Method::POST, "/v1/tables").json(&body).send().await?;
        ensure!(r.status() == StatusCode::CREATED, "creating table {id}: {} {}", r.status(), r.text().await?);
        Ok(())
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> Result<i64> {
        crate::count_rows(&self.db.pool, table).await
    }

    /// Stops the server and drops the database.
    pub async fn stop(self) -> Result<()> {
        self.server.stop().await?;
        self.db.drop_database().await
    }
}

/// The JSON body of `r`, after checking its status.
pub async fn json_with(r: Response, status: StatusCode) -> Result<Value> {
    let got = r.status();
    let text = r.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {text}");
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// Checks that `r` is the API's JSON error with `status` and `code`, its `requestId` the
/// `X-Request-Id` of the answer; returns the error object.
pub async fn error_with(r: Response, status: StatusCode, code: &str) -> Result<Value> {
    let request_id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = json_with(r, status).await?;
    ensure!(content_type.as_deref() == Some("application/json"), "content type {content_type:?}");
    let error = body.get("error").cloned().with_context(|| format!("no `error` in {body}"))?;
    ensure!(error["code"] == code, "expected code {code}: {body}");
    ensure!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {body}");
    ensure!(request_id.is_some() && error["requestId"].as_str() == request_id.as_deref(), "requestId: {body}");
    Ok(error)
}
