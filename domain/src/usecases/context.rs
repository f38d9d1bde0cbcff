use ltf_schemas::DomainEvent;
use uuid::Uuid;

/// The event that caused a change (an automation acting on a record-created, a form
/// submission becoming a record): its eventId becomes the causationId of the new events
/// and its correlation id carries over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// eventId of the causing event.
    pub event_id: Uuid,
    /// Its correlation id.
    pub correlation_id: String,
}

impl Cause {
    /// The cause `event`.
    pub fn of(event: &DomainEvent) -> Cause {
        Cause { event_id: event.event_id(), correlation_id: event.envelope.correlation_id.clone() }
    }
}

/// Who asks and in which flow: what a use case stamps on its events and outbox rows.
///
/// * correlation id: `correlation_id` when set, else the cause's, else the eventId of the
///   first event the use case emits (one request, one correlation id for all its events);
/// * causationId: the cause's eventId, `None` for a user action;
/// * `traceparent` (W3C), when a trace is active, goes into every event's headers;
/// * `user_id` becomes the record's `created_by` and RecordCreated's `createdBy`;
/// * with `derived_ids`, the ids the use case creates (eventIds, new record ids) are
///   UUIDv5s of that namespace instead of random: a handler that runs a use case again
///   for the same cause (after a crash before its commit) writes the same ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeContext {
    /// Correlation id of the flow (e.g. from an incoming request header).
    pub correlation_id: Option<String>,
    /// The event that caused this request; `None` for a user action.
    pub cause: Option<Cause>,
    /// W3C trace context of the active trace.
    pub traceparent: Option<String>,
    /// The acting user.
    pub user_id: Option<String>,
    /// Namespace of the ids the use case creates, when they are derived from a cause.
    pub derived_ids: Option<Uuid>,
}

impl ChangeContext {
    /// A user action with no trace and a fresh correlation id.
    pub fn user(user_id: impl Into<String>) -> ChangeContext {
        ChangeContext { user_id: Some(user_id.into()), ..Default::default() }
    }

    /// A change caused by `event`.
    pub fn caused_by(event: &DomainEvent) -> ChangeContext {
        ChangeContext { cause: Some(Cause::of(event)), ..Default::default() }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> ChangeContext {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the W3C `traceparent`.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> ChangeContext {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Derives the ids this run creates from `namespace` (UUIDv5), e.g. a namespace
    /// derived from the causing eventId and the handler.
    pub fn with_derived_ids(mut self, namespace: Uuid) -> ChangeContext {
        self.derived_ids = Some(namespace);
        self
    }

    /// The id of the `index`th new `kind` (`record`) of this run: derived, or random.
    pub(crate) fn new_id(&self, kind: &str, index: usize) -> Uuid {
        match self.derived_ids {
            Some(ns) => Uuid::new_v5(&ns, format!("{kind}/{index}").as_bytes()),
            None => Uuid::new_v4(),
        }
    }

    /// Stamps correlation and causation ids on the events of one use case run (and, with
    /// derived ids, their eventIds).
    pub(crate) fn stamp(&self, mut events: Vec<DomainEvent>) -> Vec<DomainEvent> {
        if self.derived_ids.is_some() {
            for (i, e) in events.iter_mut().enumerate() {
                e.envelope.event_id = self.new_id("event", i);
            }
        }
        let correlation = self
            .correlation_id
            .clone()
            .or_else(|| self.cause.as_ref().map(|c| c.correlation_id.clone()))
            .or_else(|| events.first().map(|e| e.event_id().to_string()));
        for e in &mut events {
            if let Some(c) = &correlation {
                e.envelope.correlation_id = c.clone();
            }
            e.envelope.causation_id = self.cause.as_ref().map(|c| c.event_id.to_string());
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltf_schemas::{EventPayload, Fields, RecordDeleted};

    fn event() -> DomainEvent {
        DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
            table_id: "t".into(),
            record_id: "r".into(),
            record_version: 2,
            deleted_fields: Fields::new().into(),
        }))
    }

    #[test]
    fn a_user_action_shares_one_correlation_id_and_has_no_cause() {
        let (a, b) = (event(), event());
        let first = a.event_id().to_string();
        let out = ChangeContext::user("u").stamp(vec![a, b]);
        assert!(out.iter().all(|e| e.envelope.correlation_id == first && e.envelope.causation_id.is_none()));
    }

    #[test]
    fn a_caused_change_carries_the_cause() {
        let cause = event().with_correlation_id("flow-1");
        let out = ChangeContext::caused_by(&cause).stamp(vec![event()]);
        assert_eq!(out[0].envelope.correlation_id, "flow-1");
        assert_eq!(out[0].envelope.causation_id, Some(cause.event_id().to_string()));
        let out = ChangeContext::caused_by(&cause).with_correlation_id("req-9").stamp(vec![event()]);
        assert_eq!(out[0].envelope.correlation_id, "req-9");
    }

    #[test]
    fn derived_ids_are_the_same_for_the_same_namespace() {
        let ns = Uuid::new_v4();
        let ctx = ChangeContext::caused_by(&event()).with_derived_ids(ns);
        let a = ctx.stamp(vec![event(), event()]);
        let b = ctx.stamp(vec![event(), event()]);
        assert_eq!(a[0].event_id(), b[0].event_id());
        assert_ne!(a[0].event_id(), a[1].event_id());
        assert_eq!(ctx.new_id("record", 0), ctx.new_id("record", 0));
        assert_ne!(ChangeContext::default().new_id("record", 0), ChangeContext::default().new_id("record", 0));
    }
}
