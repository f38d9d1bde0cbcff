//! A real HTTP server receiving webhooks, as a receiver that honours `Idempotency-Key`
//! does: every call is recorded, but a key it has seen is acknowledged without a second
//! effect. It can be told to answer the next calls slowly or with an error status.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::api::Server;

/// One received call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request path.
    pub path: String,
    /// Its `Idempotency-Key`.
    pub key: Option<String>,
    /// Its JSON body.
    pub body: Value,
    /// Its `traceparent`.
    pub traceparent: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// Keys whose effect happened, by path.
    effects: Vec<Call>,
    seen: BTreeSet<(String, String)>,
    /// Answers for the next calls: (delay, status).
    script: Vec<(Duration, StatusCode)>,
}

/// The receiver.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: Server,
}

async fn receive(State(inner): State<Arc<Mutex<Inner>>>, uri: Uri, headers: HeaderMap, Json(body): Json<Value>) -> StatusCode {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let call = Call { path: uri.path().to_owned(), key: key.clone(), body, traceparent };
    let (delay, status) = {
        let mut g = inner.lock().expect("receiver lock");
        g.calls.push(call.clone());
        let answer = if g.script.is_empty() { (Duration::ZERO, StatusCode::OK) } else { g.script.remove(0) };
        // The effect happens when the call is accepted (2xx), once per key.
        if answer.1.is_success() {
            let first = match &key {
                Some(k) => g.seen.insert((call.path.clone(), k.clone())),
                None => true,
            };
            if first {
                g.effects.push(call);
            }
        }
        answer
    };
    tokio::time::sleep(delay).await;
    status
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:0.
    pub async fn start() -> Result<Receiver> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().route("/{*path}", post(receive)).with_state(inner.clone());
        let server = Server::start(app).await?;
        Ok(Receiver { url: server.url.clone(), inner, server })
    }

    /// `url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The next calls are answered with these (delay, status) pairs, in order.
    pub fn script(&self, answers: &[(Duration, StatusCode)]) {
        self.inner.lock().expect("receiver lock").script.extend_from_slice(answers);
    }

    /// Every call to `path`.
    pub fn calls(&self, path: &str) -> Vec<Call> {
        self.inner.lock().expect("receiver lock").calls.iter().filter(|c| c.path == path).cloned().collect()
    }

    /// The calls to `path` that had an effect (the first accepted call per key).
    pub fn effects(&self, path: &str) -> Vec<Call> {
        self.inner.lock().expect("receiver lock").effects.iter().filter(|c| c.path == path).cloned().collect()
    }

    /// Stops the server.
    pub async fn stop(self) -> Result<()> {
        self.server.stop().await
    }
}
