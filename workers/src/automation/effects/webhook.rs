use std::time::Duration;

use ltf_schemas::Fields;
use reqwest::{redirect, StatusCode, Url};
use serde_json::{json, Value as Json};

use super::{EffectError, SsrfGuard};

/// The header carrying the idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The default of [`Webhooks::with_max_response_bytes`]: the most of an answer read.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The most of an answer kept as `responseExcerpt` when the answer is not kept whole.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// Calls webhooks: POST of a JSON body, no redirects, a timeout per call, through the
/// SSRF guard. At most `max_response_bytes` of an answer are read.
#[derive(Debug, Clone)]
pub struct Webhooks {
    http: reqwest::Client,
    guard: SsrfGuard,
    timeout: Duration,
    max_response_bytes: usize,
}

/// The circuit-breaker key of a webhook URL: `webhook:<host>:<port>` (the port the
/// scheme implies when none is given), so one host's ports are separate dependencies
/// and nothing else of the URL (path, query, credentials) names one.
fn dependency(url: &Url) -> String {
    format!("webhook:{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or_default())
}

impl Webhooks {
    /// The circuit-breaker key of `url` (see [`dependency`]); `None` for a URL that does
    /// not parse (the call then fails for good without touching a breaker).
    pub fn dependency_of(url: &str) -> Option<String> {
        Url::parse(url).ok().map(|u| dependency(&u))
    }

    /// A client with `timeout` as the default per-call timeout, reading at most
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] of an answer.
    pub fn new(guard: SsrfGuard, timeout: Duration) -> Result<Webhooks, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(guard.clone()))
            .user_agent(concat!("latechforce-automation/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()?;
        Ok(Webhooks { http, guard, timeout, max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES })
    }

    /// The client reading at most `bytes` of an answer.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Webhooks {
        self.max_response_bytes = bytes;
        self
    }

    /// POSTs `body` to `url` with `key` as `Idempotency-Key` (and the trace's
    /// `traceparent`). 2xx is success; its data: `status`, and `response` (the JSON answer)
    /// when the whole answer fits in `max_response_bytes` and is JSON, else
    /// `responseExcerpt` (its first [`RESPONSE_EXCERPT_BYTES`] as text) and
    /// `responseTruncated` (whether that is not all of it). No more than
    /// `max_response_bytes` of an answer is ever read. 408, 429, 5xx, timeouts and
    /// connection failures are retryable failures of the host; other statuses, bad URLs
    /// and refused hosts are permanent.
    pub async fn post(
        &self,
        url: &str,
        body: &Json,
        key: &str,
        timeout: Option<Duration>,
        traceparent: Option<&str>,
    ) -> Result<Fields, EffectError> {
        let url = Url::parse(url).map_err(|e| EffectError::permanent(format!("invalid webhook URL: {e}")))?;
        self.guard.check(&url).await.map_err(EffectError::permanent)?;
        let dependency = dependency(&url);
        let mut request = self.http.post(url).timeout(timeout.unwrap_or(self.timeout)).header(IDEMPOTENCY_KEY, key);
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        let response = request
            .json(body)
            .send()
            .await
            .map_err(|e| EffectError::transient(&dependency, format!("webhook call failed: {}", without_url(&e))))?;
        let status = response.status();
        if status.is_success() {
            let (body, whole) = read_bounded(response, self.max_response_bytes).await;
            let mut data = Fields::new();
            data.insert("status".into(), json!(status.as_u16()));
            match serde_json::from_slice::<Json>(&body).ok().filter(|_| whole) {
                Some(answer) => {
                    data.insert("response".into(), answer);
                }
                None if !body.is_empty() => {
                    let excerpt = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_EXCERPT_BYTES)]).into_owned();
                    let truncated = !whole || body.len() > RESPONSE_EXCERPT_BYTES;
                    data.insert("responseExcerpt".into(), json!(excerpt));
                    data.insert("responseTruncated".into(), json!(truncated));
                }
                None => {}
            }
            return Ok(data);
        }
        let message = format!("webhook answered {status}");
        if status.is_server_error() || matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) {
            Err(EffectError::transient(dependency, message))
        } else {
            Err(EffectError::permanent(message))
        }
    }
}

/// At most `max` bytes of the answer's body, and whether that is all of it. A body that
/// fails midway counts as cut short (the call itself succeeded).
async fn read_bounded(mut response: reqwest::Response, max: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, false);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, true),
            Err(_) => return (body, false),
        }
    }
}

/// The error without its URL (query strings may hold secrets).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
