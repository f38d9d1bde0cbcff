//! Per-request observation: the request id scope, request metrics and the tracing span.
//!
//! Guarantees:
//! * every response (handler, refusal, 404, 405) is counted in
//!   [`API_REQUESTS_TOTAL`](crate::metrics::API_REQUESTS_TOTAL) and timed in
//!   [`API_REQUEST_DURATION_SECONDS`](crate::metrics::API_REQUEST_DURATION_SECONDS) by
//!   `route` = the matched route template (`unmatched` when no route matched), `method`
//!   (the standard methods, else `other`) and `status`: never a raw path, so ids never
//!   become labels;
//! * error bodies produced while the request is handled carry its `X-Request-Id` (the
//!   client's when it is 1 to 128 visible ASCII characters, else a new UUID);
//! * the request's span holds the method, the route template and the request id.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::api::context::{with_request_id, REQUEST_ID_HEADER};
use crate::metrics::{labels, API_REQUESTS_TOTAL, API_REQUEST_DURATION_SECONDS};

/// The route label of an unmatched request.
pub const UNMATCHED: &str = "unmatched";

/// The `route` label of a request.
pub fn route_of<B>(req: &axum::http::Request<B>) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned())
}

/// The `method` label: a standard method's name, `other` for extension methods.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Drops a client `X-Request-Id` that is not 1 to 128 visible ASCII characters, so the
/// request-id layer generates one instead: ids are echoed, logged and put in error bodies.
pub async fn drop_invalid_request_id(mut req: Request) -> Request {
    let valid = req.headers().get(REQUEST_ID_HEADER).map(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
    });
    if valid == Some(false) {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}

/// The request id tower-http's request-id layer set (the client's or a new UUID).
pub fn request_id_of<B>(req: &axum::http::Request<B>) -> String {
    req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A request's span and the `traceparent` the events it writes carry, made once per
/// request by [`start_trace`] and kept in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    /// The request's span (tower-http's trace layer instruments the request with it).
    pub span: Span,
    /// The span's own context as a `traceparent` (a child of the caller's), or the
    /// caller's `traceparent` when spans have no OpenTelemetry context; `None` without
    /// either.
    pub traceparent: Option<String>,
}

/// Middleware (outside the trace layer, inside the request-id layers): makes the request's
/// span and fixes the `traceparent` its events carry from that span, not from whatever
/// span is current when a handler runs.
pub async fn start_trace(mut req: Request) -> Request {
    let span = new_span(&req);
    let received = req.headers().get(ltf_kafka::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
    let traceparent = ltf_kafka::trace::traceparent_of(&span, received);
    req.extensions_mut().insert(RequestTrace { span, traceparent });
    req
}

/// The span of one request for tower-http's trace layer: the one [`start_trace`] made, or
/// a new one when that middleware did not run.
pub fn make_span<B>(req: &axum::http::Request<B>) -> Span {
    req.extensions().get::<RequestTrace>().map_or_else(|| new_span(req), |t| t.span.clone())
}

/// A new request span. Its level is ERROR so it is enabled under any filter: every line
/// logged while serving the request, a warning under the default `warn` filter included,
/// carries the request id.
///
/// It joins the trace of the request's `traceparent` (or starts one) and records the
/// trace id ([`ltf_kafka::trace`]).
fn new_span<B>(req: &axum::http::Request<B>) -> Span {
    let span = tracing::error_span!(
        "http_request",
        method = method_label(req.method()),
        route = %route_of(req),
        request_id = %request_id_of(req),
        trace_id = tracing::field::Empty,
    );
    let traceparent = req.headers().get(ltf_kafka::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
    ltf_kafka::trace::adopt(&span, traceparent);
    span
}

/// Middleware: runs the request in its request id's scope, then counts and times it.
pub async fn observe(req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let method = method_label(req.method());
    let request_id = request_id_of(&req);
    let started = Instant::now();
    let response = with_request_id(request_id, next.run(req)).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(API_REQUESTS_TOTAL, labels::ROUTE => route.clone(), labels::METHOD => method, labels::STATUS => status)
        .increment(1);
    metrics::histogram!(API_REQUEST_DURATION_SECONDS, labels::ROUTE => route, labels::METHOD => method)
        .record(started.elapsed().as_secs_f64());
    response
}
