//! What the automation's handlers share: derived ids, events caused by the event being
//! handled, and appending them to the outbox inside the dedup transaction.

use chrono::Utc;
use ltf_domain::outbox::{self, OutboxError};
use ltf_domain::usecases::{ChangeContext, UseCaseError};
use ltf_schemas::{DomainEvent, EventCodec, EventPayload, Headers};
use sqlx::PgConnection;
use uuid::Uuid;

use ltf_consumers::ErrorClass;
use ltf_consumers::{Event, HandlerError};

/// Namespace of run ids.
const RUN_NAMESPACE: Uuid = Uuid::from_u128(0x6c74_665f_6175_746f_6d61_7469_6f6e_7275);

/// The run id of `automation_id` triggered by event `source`: the same for every delivery
/// of that event, so a replayed trigger finds its run.
pub fn run_id(source: Uuid, automation_id: &str) -> Uuid {
    Uuid::new_v5(&RUN_NAMESPACE, format!("{source}/{automation_id}").as_bytes())
}

/// An id derived from `cause` and `name` (UUIDv5).
pub fn derived(cause: Uuid, name: &str) -> Uuid {
    Uuid::new_v5(&cause, name.as_bytes())
}

/// A new event with id `id` caused by `cause`: same correlation id, causationId = its
/// eventId.
pub fn caused_by(cause: &Event, id: Uuid, payload: EventPayload) -> DomainEvent {
    let mut e = DomainEvent::new(payload);
    e.envelope.event_id = id;
    e.envelope.occurred_on = Utc::now();
    e.envelope.correlation_id = cause.event.envelope.correlation_id.clone();
    e.envelope.causation_id = Some(cause.event_id().to_string());
    e
}

/// The use-case context for changes caused by `cause` in handler `handler`: causation,
/// correlation, the trace, and ids derived from (cause, handler, `scope`).
pub fn use_case_context(cause: &Event, handler: &str, scope: &str) -> ChangeContext {
    let mut ctx =
        ChangeContext::caused_by(&cause.event).with_derived_ids(derived(cause.event_id(), &format!("{handler}/{scope}")));
    if let Some(tp) = traceparent(cause) {
        ctx = ctx.with_traceparent(tp);
    }
    ctx
}

/// The `traceparent` of events caused by `cause`: the current (handle_event) span's
/// context, a child of the cause's trace.
pub fn traceparent(cause: &Event) -> Option<String> {
    ltf_kafka::trace::traceparent_of(&tracing::Span::current(), cause.meta.header(Headers::TRACEPARENT))
}

/// Appends `events` to the outbox on `conn` (inside the dedup transaction), with the
/// cause's trace.
pub async fn append(
    conn: &mut PgConnection,
    codec: &EventCodec,
    cause: &Event,
    events: Vec<DomainEvent>,
) -> Result<(), HandlerError> {
    outbox::append(conn, codec, traceparent(cause).as_deref(), events).await.map_err(|e| match e {
        OutboxError::Db(e) => HandlerError::from(e),
        e @ OutboxError::Encode { .. } => HandlerError::retryable(ErrorClass::Encode, e).from_dependency("schema-registry"),
    })?;
    Ok(())
}

/// A use case's refusal as a handler error: retryable when running it again may succeed.
pub fn use_case_error(e: UseCaseError) -> HandlerError {
    match e {
        UseCaseError::Db(db) => HandlerError::from(db),
        UseCaseError::Encode { .. } if e.is_retryable() => {
            HandlerError::retryable(ErrorClass::UseCase, e).from_dependency("schema-registry")
        }
        e if e.is_retryable() => HandlerError::retryable(ErrorClass::UseCase, e),
        e => HandlerError::permanent(ErrorClass::UseCase, e),
    }
}
