use std::time::Duration;

use ltf_schemas::Fields;
use reqwest::{redirect, StatusCode, Url};
use serde_json::{json, Value as Json};

use super::{EffectError, SsrfGuard};

/// The header carrying the idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Calls webhooks: POST of a JSON body, no redirects, a timeout per call, through the
/// SSRF guard.
#[derive(Debug, Clone)]
pub struct Webhooks {
    http: reqwest::Client,
    guard: SsrfGuard,
    timeout: Duration,
}

impl Webhooks {
    /// A client with `timeout` as the default per-call timeout.
    pub fn new(guard: SsrfGuard, timeout: Duration) -> Result<Webhooks, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(guard.clone()))
            .user_agent(concat!("latechforce-automation/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()?;
        Ok(Webhooks { http, guard, timeout })
    }

    /// POSTs `body` to `url` with `key` as `Idempotency-Key` (and the trace's
    /// `traceparent`). 2xx is success (data: the
    /// status and a JSON answer when there is one); 408, 429, 5xx, timeouts and connection
    /// failures are retryable failures of the host; other statuses, bad URLs and refused
    /// hosts are permanent.
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
        let dependency = format!("webhook:{}", url.host_str().unwrap_or_default());
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
            let answer = response.json::<Json>().await.ok();
            let mut data = Fields::new();
            data.insert("status".into(), json!(status.as_u16()));
            if let Some(answer) = answer {
                data.insert("response".into(), answer);
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
