//! `GET /metrics`: the Prometheus exposition of the installed recorder, outside the API key.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::ApiState;

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric of the process; 404 when the state was built without a
/// Prometheus handle.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
    (status = 404, description = "no Prometheus recorder installed", body = crate::api::error::ErrorBody),
))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(handle) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no metrics recorder is installed").into_response(),
    }
}
