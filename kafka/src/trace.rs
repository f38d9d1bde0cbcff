//! One trace across the pipeline, by W3C trace context (`traceparent`).
//!
//! Each hop makes its span a child of the `traceparent` it received ([`adopt`]) and hands
//! its own context to the next hop ([`traceparent_of`]): the API's request span (from the
//! request's `traceparent`, or a new trace), the relay's publish span (from the outbox
//! row), each worker's `handle_event` span (from the Kafka header), and the events a
//! worker emits (from that span). Every such span records the trace id in its `trace_id`
//! field, so JSON logs of every process show the same id for one request.
//!
//! Span contexts come from the OpenTelemetry layer the `ltf` binary installs (with an
//! optional OTLP exporter). Without that layer (a library user's own subscriber) spans
//! have no context: the received `traceparent` is passed on unchanged, so the trace still
//! reaches every event.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and outbox header) name.
pub const TRACEPARENT: &str = "traceparent";

/// The trace id of a well-formed `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex(trace, 32) && hex(parent, 16) && hex(flags, 2) && trace.bytes().any(|b| b != b'0')).then_some(trace)
}

/// Makes `span` a child of `traceparent` (when well formed) and records the trace id in
/// its `trace_id` field: the span's own (a new trace when there is no parent), or, without
/// an OpenTelemetry layer, the parent's.
pub fn adopt(span: &Span, traceparent: Option<&str>) {
    if span.is_disabled() {
        // No layer records it: nothing to parent, nothing to log.
        return;
    }
    let parent = traceparent.filter(|tp| trace_id_of(tp).is_some());
    if let Some(tp) = parent {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), tp.to_owned())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        // Fails only when the span is disabled or has started its OpenTelemetry span.
        let _ = span.set_parent(cx);
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", own.trace_id().to_string());
    } else if let Some(trace) = parent.and_then(trace_id_of) {
        span.record("trace_id", trace);
    }
}

/// The `traceparent` to hand to the next hop: `span`'s context, or `fallback` (what was
/// received) when the span has none.
pub fn traceparent_of(span: &Span, fallback: Option<&str>) -> Option<String> {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        if let Some(tp) = carrier.remove(TRACEPARENT) {
            return Some(tp);
        }
    }
    fallback.filter(|tp| trace_id_of(tp).is_some()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn trace_ids_are_read_from_well_formed_traceparents_only() {
        assert_eq!(trace_id_of(TP), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_an_opentelemetry_layer_the_received_traceparent_is_passed_on() {
        let span = tracing::info_span!("s", trace_id = tracing::field::Empty);
        adopt(&span, Some(TP));
        assert_eq!(traceparent_of(&span, Some(TP)).as_deref(), Some(TP));
        assert_eq!(traceparent_of(&span, Some("garbage")), None);
    }
}
