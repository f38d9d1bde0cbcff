//! Logs and traces of an `ltf` process.
//!
//! * Logs go to stderr, as text or JSON (`--log-format`), filtered by `LTF_LOG` (tracing's
//!   EnvFilter syntax, default `warn`). JSON lines carry the fields of their spans, so
//!   `trace_id` shows which trace a line belongs to.
//! * Spans of the pipeline (API requests, relay publishes) are OpenTelemetry spans
//!   whatever `LTF_LOG` says, so the W3C trace context flows from hop to hop
//!   (`ltf_kafka::trace`). A worker's per-event span is one only when spans are exported;
//!   otherwise the worker passes on the `traceparent` it received and logs its trace id.
//! * They are recorded and exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the exporter's standard
//!   `OTEL_EXPORTER_OTLP_*` settings and `OTEL_SERVICE_NAME` (default `ltf-<command>`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::subscriber::Interest;
use tracing::Level;
use tracing_subscriber::filter::{DynFilterFn, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes and stops the exporter when dropped.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn exporting() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

/// Installs the process's subscriber: the log layer and the OpenTelemetry layer.
pub fn init(service: &str, json: bool) -> Telemetry {
    let filter = EnvFilter::try_from_env("LTF_LOG").unwrap_or_else(|_| EnvFilter::new("warn,librdkafka=error"));
    let (subscriber, telemetry, exporter_error) = subscriber(service, json, filter, std::io::stderr);
    subscriber.init();
    if let Some(e) = exporter_error {
        tracing::error!(error = %e, "the OTLP span exporter could not be set up; spans are not exported");
    }
    telemetry
}

type Parts<S> = (S, Telemetry, Option<opentelemetry_otlp::ExporterBuildError>);

/// `targets` (none above `most`) as a per-layer filter asked on every span and event. tracing's per-layer
/// filters pass their decision from `enabled()` to `new_span()` through a thread-local;
/// a callsite that every filter always accepts skips `enabled()` and reads a stale
/// decision (tokio-rs/tracing#2519: after a `log_enabled!` check, request spans were
/// dropped). A filter that answers `sometimes` at registration makes every callsite go
/// through `enabled()`, so the decision is always fresh.
///
/// Its most verbose level is the hint: without one, the subscriber's level is TRACE, and
/// so is the `log` bridge's, and librdkafka's client logs a trace record per message it
/// drops (3 % of a worker's CPU, turned into tracing events only to be filtered out).
///
/// A callsite the targets never take is `never` at registration: a per-layer filter that
/// only answers `false` from `enabled()` still leaves the span to the registry (it is
/// created, entered and closed for every event, for no layer), while a callsite every
/// layer calls `never` makes no span at all.
fn fresh<S: tracing::Subscriber>(targets: Targets, most: Level) -> impl tracing_subscriber::layer::Filter<S> {
    let callsites = targets.clone();
    DynFilterFn::new(move |meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>| {
        targets.would_enable(meta.target(), meta.level())
    })
    .with_max_level_hint(most)
    .with_callsite_filter(move |meta| {
        if callsites.would_enable(meta.target(), meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    })
}

/// The targets whose spans are OpenTelemetry spans. The API's and the relay's always are,
/// so a request without a `traceparent` starts a trace whose id reaches the logs and every
/// event. A worker's `handle_event` span (one per event) is one only when spans are
/// exported: without an exporter it would be a context nobody records, built for every
/// event (a sixth of a worker's CPU), so the worker passes the `traceparent` it received
/// on unchanged (W3C's rule for a hop that does not record) and logs its trace id.
fn span_targets(exporting: bool) -> Targets {
    let consumers = if exporting { LevelFilter::INFO } else { LevelFilter::OFF };
    Targets::new()
        .with_target("ltf", Level::INFO)
        .with_target("ltf_producers", Level::INFO)
        .with_target("ltf_consumers", consumers)
}

/// The subscriber of [`init`], logging to `writer` through `filter`.
fn subscriber<W>(service: &str, json: bool, filter: EnvFilter, writer: W) -> Parts<impl tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt::layer().with_writer(writer);
    let logs = if json { logs.json().boxed() } else { logs.boxed() };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    // Without an exporter, spans are not recorded (AlwaysOff): they still get a span
    // context, so trace ids reach the logs and the next hop, at little cost per event.
    let sampler = if exporting() { Sampler::ParentBased(Box::new(Sampler::AlwaysOn)) } else { Sampler::AlwaysOff };
    let mut builder =
        SdkTracerProvider::builder().with_sampler(sampler).with_resource(Resource::builder().with_service_name(service).build());
    let mut exporter_error = None;
    if exporting() {
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => exporter_error = Some(e),
        }
    }
    let provider = builder.build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("ltf"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(fresh(span_targets(exporting()), Level::INFO));
    (tracing_subscriber::registry().with(logs.with_filter(filter)).with(spans), Telemetry { provider }, exporter_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_trace_id_of_their_span_and_the_next_hop_gets_a_child() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let (subscriber, _telemetry, _) =
            subscriber("test", true, EnvFilter::new("warn,ltf_producers=debug"), move || writer.clone());
        let next = tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!(target: "ltf_producers::relay::batch", "relay_publish", trace_id = tracing::field::Empty);
            let received = "00-5b8efff798038103d269b633813fc60c-00f067aa0ba902b7-01";
            ltf_kafka::trace::adopt(&span, Some(received));
            span.in_scope(|| tracing::debug!(target: "ltf_producers::relay::batch", "publishing"));
            ltf_kafka::trace::traceparent_of(&span, Some(received))
        });
        let logged = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        assert!(logged.contains(r#""trace_id":"5b8efff798038103d269b633813fc60c""#), "{logged}");
        let next = next.unwrap_or_default();
        assert!(next.starts_with("00-5b8efff798038103d269b633813fc60c-") && !next.contains("00f067aa0ba902b7"), "{next}");
    }

    /// The events of a request carry a child of the request span, fixed when the span is
    /// made: a span the OpenTelemetry layer does not see (here one of another crate,
    /// at DEBUG) being current while the handler runs must not turn it back into the
    /// caller's own `traceparent`, as taking the current span did.
    #[test]
    fn a_request_traceparent_is_its_spans_child_whatever_span_is_current() {
        use ltf_producers::api::observe::{start_trace, RequestTrace};
        let (subscriber, _telemetry, _) = subscriber("test", true, EnvFilter::new("debug"), std::io::sink);
        let received = "00-5b8efff798038103d269b633813fc60c-00f067aa0ba902b7-01";
        let (fixed, ambient) = tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let req =
                axum::http::Request::builder().uri("/v1/tables").header("traceparent", received).body(axum::body::Body::empty());
            let req = runtime.block_on(start_trace(req.expect("request")));
            let trace = req.extensions().get::<RequestTrace>().cloned().expect("the request's trace");
            let _in_request = trace.span.enter();
            let other = tracing::debug_span!(target: "some_dependency", "query");
            let _in_other = other.enter();
            (trace.traceparent, ltf_kafka::trace::traceparent_of(&tracing::Span::current(), Some(received)))
        });
        let fixed = fixed.unwrap_or_default();
        assert!(fixed.starts_with("00-5b8efff798038103d269b633813fc60c-") && !fixed.contains("00f067aa0ba902b7"), "{fixed}");
        assert_eq!(ambient.as_deref(), Some(received), "the current span has no context: the old way fell back to the caller's");
    }

    /// Without an exporter a worker's per-event span is no OpenTelemetry span: its logs
    /// carry the received trace id and the events it causes the received `traceparent`;
    /// with one, the span joins the trace (the API's and the relay's spans always do).
    #[test]
    fn a_worker_span_joins_the_trace_only_when_spans_are_exported() {
        let consumer = "ltf_consumers::pipeline";
        assert!(!span_targets(false).would_enable(consumer, &Level::INFO));
        assert!(span_targets(true).would_enable(consumer, &Level::INFO));
        for exporting in [false, true] {
            assert!(span_targets(exporting).would_enable("ltf_producers::relay::batch", &Level::INFO));
            assert!(span_targets(exporting).would_enable("ltf_producers::api::observe", &Level::INFO));
        }
        if exporting() {
            return; // The rest is the subscriber of a process without an exporter.
        }
        // At the default log level nothing records a worker's span: it costs nothing.
        let (quiet, _telemetry, _) = subscriber("test", true, EnvFilter::new("warn"), std::io::sink);
        let disabled = tracing::subscriber::with_default(quiet, || {
            tracing::info_span!(target: "ltf_consumers::pipeline", "handle_event").is_disabled()
        });
        assert!(disabled, "a worker's span at the default log level is disabled");
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let (subscriber, _telemetry, _) =
            subscriber("test", true, EnvFilter::new("warn,ltf_consumers=debug"), move || writer.clone());
        let received = "00-5b8efff798038103d269b633813fc60c-00f067aa0ba902b7-01";
        let next = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: "ltf_consumers::pipeline", "handle_event", trace_id = tracing::field::Empty);
            ltf_kafka::trace::adopt(&span, Some(received));
            span.in_scope(|| tracing::debug!(target: "ltf_consumers::pipeline", "event handled"));
            ltf_kafka::trace::traceparent_of(&span, Some(received))
        });
        let logged = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        assert!(logged.contains(r#""trace_id":"5b8efff798038103d269b633813fc60c""#), "{logged}");
        assert_eq!(next.as_deref(), Some(received), "passed on unchanged");
    }

    /// tracing's per-layer filters hand their decision from `enabled()` to `new_span()`
    /// through a thread-local; a callsite every filter always accepts skips `enabled()`,
    /// so it reads the decision of the previous `enabled()` call on the thread. sqlx asks
    /// `log::log_enabled!` after every query (through tracing-log): a request span made
    /// next on that thread was dropped by both layers, and the request's events carried
    /// the caller's `traceparent` (the trace test's failure, tokio-rs/tracing#2519).
    #[test]
    fn a_request_span_made_right_after_a_log_level_check_still_joins_the_trace() {
        use ltf_producers::api::observe::{start_trace, RequestTrace};
        tracing_log::LogTracer::init().expect("log bridge");
        // The trace test's filter: debug logs of ltf_producers, which the span layer (INFO)
        // does not take.
        let filter = EnvFilter::new("warn,ltf_producers=debug,ltf_consumers=debug,tower_http=debug");
        let (subscriber, _telemetry, _) = subscriber("test", true, filter, std::io::sink);
        let received = "00-5b8efff798038103d269b633813fc60c-00f067aa0ba902b7-01";
        let fixed = tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            (0..3)
                .map(|_| {
                    // A level check with no record after it (as sqlx's query logger makes),
                    // for a level one layer takes and the other does not.
                    let _ = log::log_enabled!(target: "ltf_producers::x", log::Level::Debug);
                    let req = axum::http::Request::builder()
                        .uri("/v1/tables")
                        .header("traceparent", received)
                        .body(axum::body::Body::empty());
                    let req = runtime.block_on(start_trace(req.expect("request")));
                    let trace = req.extensions().get::<RequestTrace>().cloned().expect("the request's trace");
                    (trace.span.is_disabled(), trace.traceparent.unwrap_or_default())
                })
                .collect::<Vec<_>>()
        });
        for (disabled, traceparent) in fixed {
            assert!(!disabled, "the request span exists");
            assert!(
                traceparent.starts_with("00-5b8efff798038103d269b633813fc60c-") && !traceparent.contains("00f067aa0ba902b7"),
                "{traceparent}: the span's own context, a child of the caller's"
            );
        }
    }
}
