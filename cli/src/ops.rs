//! The operations endpoints every long-running command serves: `/metrics` (Prometheus),
//! `/healthz` (the process is alive) and, added by the command, `/readyz`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds (1 ms … 30 s), so latencies export as Prometheus histograms
/// that `histogram_quantile` can aggregate across instances.
const SECONDS_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0];

/// Installs the process-wide Prometheus recorder and describes the producer metrics.
pub fn install_metrics() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&SECONDS_BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    ltf_kafka::metrics::describe();
    ltf_producers::metrics::describe();
    Ok(handle)
}

/// `/metrics` and `/healthz` (the process answers); add a `/readyz` of the command's own.
pub fn router(handle: PrometheusHandle) -> Router {
    metrics_router(handle).route("/healthz", get(|| std::future::ready("ok\n")))
}

/// `/metrics` only, for commands with a liveness check of their own.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(move || std::future::ready(handle.render())))
}

/// Serves `app` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the operations port {addr}"))?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("operations server")
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
