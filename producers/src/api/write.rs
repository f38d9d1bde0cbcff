//! What every write endpoint shares: the processing mode, the publication state of its
//! answer and the events-written metric.
//!
//! Processing modes:
//! * default: the answer comes once the use case's transaction committed, its events
//!   durably queued in the outbox (`"publication": "queued"`);
//! * `?waitForPublish=true`: the answer comes once the relay published every event of the
//!   request (`"publication": "published"`), bounded by `wait_for_publish_timeout_ms`; past
//!   it the answer is 202 with `"publication": "queued"` and a message: the change is
//!   committed and its events are queued, not lost.
//!
//! Either way the answer lists the eventIds written to the outbox, and
//! [`API_EVENTS_WRITTEN_TOTAL`](crate::metrics::API_EVENTS_WRITTEN_TOTAL) counts them by
//! event type once committed.

use axum::http::StatusCode;
use ltf_schemas::DomainEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};
use uuid::Uuid;

use crate::api::error::ErrorBody;
use crate::api::ApiState;
use crate::metrics::{labels, API_EVENTS_WRITTEN_TOTAL};
use ltf_domain::outbox::wait_published;

/// Query parameters of a write.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Answer only once the relay published the events (bounded by the server's
    /// `wait_for_publish_timeout_ms`; 202 past it). Default false: answer once committed.
    pub wait_for_publish: Option<bool>,
}

/// Where the events of a write are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Publication {
    /// Committed to the outbox; the relay publishes them.
    Queued,
    /// Published to Kafka by the relay.
    Published,
}

/// The status and publication state of a committed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationOutcome {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// Where its events are.
    pub publication: Publication,
    /// Set when a wait for publication timed out.
    pub message: Option<String>,
}

/// The message of a 202: the wait timed out.
pub const QUEUED_MESSAGE: &str =
    "the change is committed and its events are durably queued in the outbox; the relay has not published them yet \
     within the wait, they are not lost";

/// The eventIds of `events`.
pub fn event_ids(events: &[DomainEvent]) -> Vec<Uuid> {
    events.iter().map(DomainEvent::event_id).collect()
}

/// Counts the committed `events`, then waits for their publication when `wait`; `done` is
/// the status of a write that does not wait or whose events were published in time.
pub async fn await_publication(state: &ApiState, events: &[DomainEvent], wait: bool, done: StatusCode) -> PublicationOutcome {
    for e in events {
        metrics::counter!(API_EVENTS_WRITTEN_TOTAL, labels::EVENT_TYPE => e.event_type().as_str()).increment(1);
    }
    if !wait {
        return PublicationOutcome { status: done, publication: Publication::Queued, message: None };
    }
    let timeout = state.config.wait_for_publish_timeout();
    let ids = event_ids(events);
    let published = match tokio::time::timeout(timeout, wait_published(&state.pool, &ids, timeout)).await {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "waiting for publication failed; answering 202");
            false
        }
        Err(_) => false,
    };
    if published {
        PublicationOutcome { status: done, publication: Publication::Published, message: None }
    } else {
        PublicationOutcome {
            status: StatusCode::ACCEPTED,
            publication: Publication::Queued,
            message: Some(QUEUED_MESSAGE.into()),
        }
    }
}

/// The error answers of a write, for the OpenAPI document.
#[derive(Debug, IntoResponses)]
pub enum WriteErrors {
    /// Malformed JSON, unknown body key, unknown field, wrong field type, empty batch,
    /// bad query parameter or header.
    #[response(status = 400, description = "invalid input; nothing was written")]
    BadRequest(ErrorBody),
    /// No API key, or an unknown one.
    #[response(status = 401, description = "missing or unknown API key; nothing was written")]
    Unauthorized(ErrorBody),
    /// Unknown table, record or form.
    #[response(status = 404, description = "unknown table, record or form; nothing was written")]
    NotFound(ErrorBody),
    /// The body is larger than the limit, a batch holds more records than allowed, or an
    /// event of the change is larger than a Kafka message may be (`event_too_large`).
    #[response(status = 413, description = "body, batch or event too large; nothing was written")]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415, description = "the body is not JSON; nothing was written")]
    UnsupportedMediaType(ErrorBody),
    /// A database or registry failure; retry.
    #[response(status = 503, description = "a dependency is unavailable; nothing was written")]
    Unavailable(ErrorBody),
}
