//! The HTTP API: the use cases over JSON (axum), served by `ltf api`.
//!
//! Guarantees:
//! * a write answers only once its transaction committed: its rows and its events are in
//!   PostgreSQL (transactional outbox), and the answer lists the eventIds; with
//!   `?waitForPublish=true` it waits for the relay to publish them, bounded, and answers
//!   202 "queued" past the bound ([`write`]);
//! * every refusal (bad JSON, wrong content type, body or batch too large, unknown route,
//!   method, table, record or form, invalid field, stale version, missing or unknown API
//!   key) answers its 4xx with the JSON error body of [`error`] and writes nothing;
//! * every route but `/healthz`, `/readyz`, `/metrics` and `/openapi.json` requires an API
//!   key ([`auth`]); its principal becomes `ChangeContext::user_id`;
//! * `X-Request-Id` is taken from the client or generated, echoed on the answer, put in
//!   error bodies and in the request's span; `X-Correlation-Id` (default: the request id)
//!   and a valid `traceparent` go into the events' headers ([`context`]);
//! * requests are counted and timed by route template, method and status ([`observe`]).

pub mod auth;
pub mod automations;
pub mod config;
pub mod connections;
pub mod context;
pub mod error;
pub mod extract;
pub mod forms;
pub mod health;
pub mod observe;
pub mod openapi;
pub mod records;
pub mod scrape;
pub mod tables;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use ltf_schemas::EventCodec;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use config::{ApiConfig, ApiKey};
pub use error::ApiError;
pub use health::Readiness;

use ltf_domain::usecases::AuthenticateConnection;
use ltf_kafka::PublishError;

/// What the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    pool: PgPool,
    codec: Arc<EventCodec>,
    config: Arc<ApiConfig>,
    keys: Arc<auth::ApiKeys>,
    readiness: Readiness,
    metrics: Option<PrometheusHandle>,
    connect: Arc<AuthenticateConnection>,
}

impl ApiState {
    /// The state of an API writing to `pool`, encoding with `codec`; validates `config`
    /// (the error names the bad key).
    pub fn new(config: ApiConfig, pool: PgPool, codec: Arc<EventCodec>, readiness: Readiness) -> Result<ApiState, PublishError> {
        config.validate()?;
        let keys = Arc::new(auth::ApiKeys::new(&config.api_keys));
        let connect = AuthenticateConnection::new(&config.connections)
            .map_err(|e| PublishError::Config { key: e.key, reason: e.reason })?;
        Ok(ApiState { pool, codec, config: Arc::new(config), keys, readiness, metrics: None, connect: Arc::new(connect) })
    }

    /// Serves `handle`'s metrics at `/metrics`.
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> ApiState {
        self.metrics = Some(handle);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }
}

/// The API's routes and middleware.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/tables", post(tables::create_table))
        .route("/v1/forms", post(forms::create_form))
        .route("/v1/automations", post(automations::create_automation).get(automations::list_automations))
        .route("/v1/automations/{automationId}", get(automations::get_automation))
        .route("/v1/automations/{automationId}/runs", get(automations::list_runs))
        .route("/v1/forms/{formId}/submissions", post(forms::submit_form))
        .route("/v1/connections", post(connections::authenticate_connection))
        .route("/v1/tables/{tableId}/records", post(records::create_record).patch(records::update_records))
        .route("/v1/tables/{tableId}/records/batch", post(records::create_records))
        .route("/v1/tables/{tableId}/records/delete", post(records::delete_records))
        .route(
            "/v1/tables/{tableId}/records/{recordId}",
            get(records::get_record).patch(records::update_record).delete(records::delete_record),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_api_key));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(scrape::metrics))
        .route("/openapi.json", get(openapi::openapi_json));
    Router::new()
        .merge(v1)
        .merge(open)
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(TraceLayer::new_for_http().make_span_with(observe::make_span::<axum::body::Body>))
        .layer(axum::middleware::map_request(observe::start_trace))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(observe::drop_invalid_request_id))
        .with_state(state)
}
