//! Who asks and in which flow: the request id of the request being served, and the
//! [`ChangeContext`] a use case stamps on its events, built from the request.
//!
//! * `X-Request-Id`: the client's (or a generated UUID, by tower-http's request-id layer);
//!   available to every error body through [`current_request_id`];
//! * `X-Correlation-Id` → `ChangeContext::correlation_id`, the request id when absent; an
//!   invalid one (empty, over 128 characters, not visible ASCII) is refused with 400;
//! * a W3C `traceparent` → `ChangeContext::traceparent` when well formed; a malformed
//!   one is ignored, as the W3C Trace Context recommendation asks;
//! * the authenticated [`Principal`] → `ChangeContext::user_id`.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::api::error::ApiError;
use crate::api::observe::RequestTrace;
use ltf_domain::usecases::ChangeContext;

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The correlation id header.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` (the rest of the request's handling) with `request_id` as the current
/// request id.
pub(crate) async fn with_request_id<F: Future>(request_id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

/// The id of the request being served; empty outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The principal an API key authenticated; set by the auth middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

/// The request's [`ChangeContext`], extracted from the authenticated principal and the
/// headers.
#[derive(Debug, Clone)]
pub struct Caller(pub ChangeContext);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| ApiError::unauthorized("no principal: this route requires an API key"))?;
        let mut ctx = request_context(&parts.headers, &principal.0, &current_request_id())?;
        // The request span's own context, fixed when the span was made: the events'
        // parent is that span whatever span is current while the handler runs.
        if let Some(tp) = parts.extensions.get::<RequestTrace>().and_then(|t| t.traceparent.clone()) {
            ctx = ctx.with_traceparent(tp);
        }
        Ok(Caller(ctx))
    }
}

/// The context of a request by `user_id` with these headers and request id.
pub fn request_context(headers: &HeaderMap, user_id: &str, request_id: &str) -> Result<ChangeContext, ApiError> {
    let correlation_id = match headers.get(CORRELATION_ID_HEADER) {
        None => request_id.to_owned(),
        Some(v) => v.to_str().ok().filter(|s| is_token(s)).map(str::to_owned).ok_or_else(|| {
            ApiError::bad_request("invalid_correlation_id", "X-Correlation-Id must be 1 to 128 visible ASCII characters")
        })?,
    };
    let mut ctx = ChangeContext::user(user_id);
    if !correlation_id.is_empty() {
        ctx = ctx.with_correlation_id(correlation_id);
    }
    // The request's own traceparent; the extractor replaces it by the request span's
    // context (a child of it) when an OpenTelemetry layer gives spans a context.
    if let Some(tp) = headers.get(TRACEPARENT_HEADER).and_then(|v| v.to_str().ok()).filter(|s| is_traceparent(s)) {
        ctx = ctx.with_traceparent(tp);
    }
    Ok(ctx)
}

/// 1 to 128 visible ASCII characters.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `s` is a W3C `traceparent`: `version-traceid-parentid-flags` in lowercase hex
/// (2, 32, 16, 2 digits), version not `ff`, ids not all zero; version `00` has exactly these
/// four parts, a later version may append more after a `-`.
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let zero = |p: &str| p.bytes().all(|b| b == b'0');
    if parts.len() < 4 {
        return false;
    }
    let (version, trace, parent, flags) = (parts[0], parts[1], parts[2], parts[3]);
    if !(hex(version, 2) && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)) {
        return false;
    }
    if version == "ff" || zero(trace) || zero(parent) {
        return false;
    }
    version != "00" || parts.len() == 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparents_are_checked() {
        assert!(is_traceparent(TP));
        assert!(is_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn the_context_takes_headers_and_defaults_to_the_request_id() {
        let mut h = HeaderMap::new();
        let ctx = request_context(&h, "svc", "req-1").unwrap();
        assert_eq!(ctx.user_id.as_deref(), Some("svc"));
        assert_eq!(ctx.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(ctx.traceparent, None);
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("flow-7"));
        h.insert(TRACEPARENT_HEADER, HeaderValue::from_static(TP));
        let ctx = request_context(&h, "svc", "req-1").unwrap();
        assert_eq!(ctx.correlation_id.as_deref(), Some("flow-7"));
        assert_eq!(ctx.traceparent.as_deref(), Some(TP));
        h.insert(TRACEPARENT_HEADER, HeaderValue::from_static("garbage"));
        assert_eq!(request_context(&h, "svc", "req-1").unwrap().traceparent, None);
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("has space"));
        assert_eq!(request_context(&h, "svc", "req-1").unwrap_err().code(), "invalid_correlation_id");
    }
}
