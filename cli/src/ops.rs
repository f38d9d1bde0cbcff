//! The operations endpoints every long-running command serves: `/metrics` (Prometheus),
//! `/healthz` (the process is alive) and, added by the command, `/readyz`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Latency buckets in seconds (1 ms … 30 s), so latencies export as Prometheus histograms
/// that `histogram_quantile` can aggregate across instances.
const SECONDS_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0];

/// How often the recorder's histogram samples are folded into their buckets (see
/// [`keep_up`]).
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// The recorder every command installs: latencies as Prometheus histograms.
fn recorder() -> Result<PrometheusRecorder> {
    Ok(PrometheusBuilder::new().set_buckets(&SECONDS_BUCKETS).context("metric buckets")?.build_recorder())
}

/// Installs the process-wide Prometheus recorder and describes the producer metrics.
pub fn install_metrics() -> Result<PrometheusHandle> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    keep_up(handle.clone(), UPKEEP_EVERY)?;
    metrics::set_global_recorder(recorder).context("installing the Prometheus recorder")?;
    ltf_kafka::metrics::describe();
    ltf_producers::metrics::describe();
    Ok(handle)
}

/// Folds the recorded histogram samples into their buckets every `every`, on a thread of
/// its own, for the life of the process.
///
/// The recorder keeps each histogram sample until it is folded, which it does only when
/// asked: by a scrape or by this upkeep. Without it a worker that nobody scrapes (or
/// scrapes every 15 s) holds every event's latency samples in memory: two per event, about
/// 1 MB a second at 60,000 events/s, without bound.
fn keep_up(handle: PrometheusHandle, every: Duration) -> Result<()> {
    std::thread::Builder::new()
        .name("ltf-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            handle.run_upkeep();
        })
        .context("starting the metrics upkeep thread")?;
    Ok(())
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

/// [`serve`] on a thread of its own (with a single-threaded runtime), so the probes and the
/// scrapes are answered while handlers keep every thread of the main runtime busy (a
/// worker's runtime has one thread on two cores). The returned handle gives what `serve`
/// returned.
pub fn serve_on_own_thread(
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    std::thread::Builder::new()
        .name("ltf-ops".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the operations runtime")?;
            runtime.block_on(serve(addr, app, shutdown))
        })
        .context("starting the operations thread")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `VmRSS` of this process in KiB.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("a VmRSS line");
        line.trim().trim_end_matches("kB").trim().parse().expect("VmRSS in kB")
    }

    /// The status line of `GET <path>` on `addr`, read with a blocking socket.
    fn get_status(addr: SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_owned()
    }

    /// A runtime whose only thread a handler blocks (blocking work in a handler) still has
    /// its probes answered: the operations server has a thread of its own.
    #[test]
    fn probes_are_answered_while_every_runtime_thread_is_blocked() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let app = router(recorder().unwrap().handle());
        let server = serve_on_own_thread(addr, app, async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .unwrap();
        // The runtime's one thread, blocked for 3 s.
        runtime.spawn(async { std::thread::sleep(Duration::from_secs(3)) });
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let mut status = get_status(addr, "/healthz");
        while status.is_empty() && started.elapsed() < Duration::from_secs(2) {
            // Not listening yet.
            std::thread::sleep(Duration::from_millis(20));
            status = get_status(addr, "/healthz");
        }
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(started.elapsed() < Duration::from_secs(2), "answered only after the block: {:?}", started.elapsed());
        let _ = stop_tx.send(true);
        server.join().expect("the operations thread").expect("served");
    }

    #[test]
    fn histogram_samples_are_folded_without_a_scrape() {
        use ltf_consumers::metrics::{labels, PROCESSING_SECONDS};
        // A worker's recorder, never scraped, while 6,000,000 latencies are recorded at a
        // worker's pace (bursts with pauses): unfolded, the samples alone hold 48 MB.
        let recorder = recorder().unwrap();
        let handle = recorder.handle();
        keep_up(handle.clone(), Duration::from_millis(10)).unwrap();
        let before = rss_kib();
        let mut peak = before;
        metrics::with_local_recorder(&recorder, || {
            let h = metrics::histogram!(PROCESSING_SECONDS, labels::GROUP => "g", labels::HANDLER => "h");
            for burst in 0..60 {
                for i in 0..100_000u32 {
                    h.record(f64::from(i % 1000) / 1e5 + f64::from(burst) * 1e-9);
                }
                std::thread::sleep(Duration::from_millis(30));
                peak = peak.max(rss_kib());
            }
        });
        let grown_mib = (peak - before) / 1024;
        assert!(grown_mib < 16, "the process grew by {grown_mib} MiB: the samples were kept, not folded");
        // Folded, not dropped: the samples are in the histogram's count. metrics-util's
        // bucket (0.20.4, `AtomicBucket::push`) installs a new block as the tail before it
        // links the blocks before it; a drain between the two (a scrape's drain as much as
        // the upkeep's) reads the new block alone and loses the blocks written since the
        // last drain. On a busy machine that lost 41,731 of the 6,000,000 in one CI run;
        // a count short by that is the library's race, a count near zero would be ours.
        let text = handle.render();
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{PROCESSING_SECONDS}_count{{group=\"g\",handler=\"h\"}} ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {text}"));
        assert!((5_700_000..=6_000_000).contains(&count), "{count} of 6,000,000 samples counted");
    }
}
