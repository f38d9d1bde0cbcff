//! Every metric the worker runtime exports: names, labels, and their help texts.
//!
//! Names follow DESIGN.md: prefix `latechforce_`, unit in the name, labels only from
//! bounded sets (group, handler, event type, outcome, topic, partition, dependency) —
//! never ids or free text. docs/metrics.md lists them.

pub use ltf_kafka::metrics::{Kind, Metric};

use std::sync::OnceLock;

use ltf_schemas::EventType;
use metrics::{counter, histogram, Counter, Histogram};

/// Events handled, by `group`, `handler`, `event_type` and `outcome`
/// (`success`, `retried`, `dead_lettered`, `duplicate`, `undecodable`).
pub const EVENTS_TOTAL: &str = "latechforce_consumer_events_total";
/// Handler processing time in seconds (all attempts), by `group` and `handler`.
pub const PROCESSING_SECONDS: &str = "latechforce_consumer_processing_duration_seconds";
/// End-to-end latency in seconds (handled time − occurredOn), by `group` and `event_type`.
pub const END_TO_END_SECONDS: &str = "latechforce_consumer_end_to_end_latency_seconds";
/// Handler attempts that failed and will be retried, by `group`, `handler` and `class`.
pub const RETRIES_TOTAL: &str = "latechforce_consumer_retries_total";
/// Messages written to a dead-letter topic, by `group`, `topic` and `class`.
pub const DEAD_LETTERS_TOTAL: &str = "latechforce_consumer_dead_letters_total";
/// Consumer lag in messages, by `group`, `topic` and `partition`.
pub const LAG_MESSAGES: &str = "latechforce_consumer_lag_messages";
/// Consumer lag in seconds (age of the oldest unfinished message), by `group`, `topic`
/// and `partition`.
pub const LAG_SECONDS: &str = "latechforce_consumer_lag_seconds";
/// Events in flight (fetched, not finished), by `group`.
pub const IN_FLIGHT: &str = "latechforce_consumer_in_flight_events";
/// Circuit-breaker state by `group` and `dependency`: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "latechforce_consumer_circuit_state";
/// Circuit-breaker transitions by `group`, `dependency` and the `state` entered
/// (`open`, `half_open`, `closed`).
pub const CIRCUIT_TRANSITIONS_TOTAL: &str = "latechforce_consumer_circuit_transitions_total";
/// Partitions paused because parked work holds every in-flight slot, by `group`.
pub const PAUSED_PARTITIONS: &str = "latechforce_consumer_paused_partitions";
/// Events parked now, waiting for a dependency (their attempts untouched), by `group`.
pub const PARKED: &str = "latechforce_consumer_parked_events";
/// Handler calls that failed because a dependency did and were parked, by `group`,
/// `handler` and `dependency`.
pub const PARKS_TOTAL: &str = "latechforce_consumer_parks_total";
/// 1 when the DLQ-rate fuse tripped and the worker stopped consuming, by `group`.
pub const FUSE_TRIPPED: &str = "latechforce_consumer_fuse_tripped";
/// Dedup records deleted by pruning (older than the retention).
pub const DEDUP_PRUNED_TOTAL: &str = "latechforce_consumer_dedup_pruned_total";
/// Partition assignments and revocations, by `group` and `kind` (`assign`, `revoke`).
pub const REBALANCES_TOTAL: &str = "latechforce_consumer_rebalances_total";
/// Label names.
pub mod labels {
    /// The consumer group id.
    pub const GROUP: &str = "group";
    /// The handler name.
    pub const HANDLER: &str = "handler";
    /// The event type string.
    pub const EVENT_TYPE: &str = "event_type";
    /// A handling outcome.
    pub const OUTCOME: &str = "outcome";
    /// The Kafka topic.
    pub const TOPIC: &str = "topic";
    /// The partition number.
    pub const PARTITION: &str = "partition";
    /// A bounded error class.
    pub const CLASS: &str = "class";
    /// A downstream dependency name.
    pub const DEPENDENCY: &str = "dependency";
    /// A rebalance kind (`assign`, `revoke`).
    pub const KIND: &str = "kind";
    /// A circuit-breaker state (`open`, `half_open`, `closed`).
    pub const STATE: &str = "state";
}

/// Outcome label values.
pub mod outcome {
    /// Handled on the first attempt.
    pub const SUCCESS: &str = "success";
    /// Handled after one or more retries.
    pub const RETRIED: &str = "retried";
    /// Sent to the dead-letter topic.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// Already processed: acknowledged without running the handler.
    pub const DUPLICATE: &str = "duplicate";
}

/// Every metric this crate exports. Adding a metric: its constant above, a line here,
/// a row in docs/metrics.md.
pub const CATALOGUE: &[Metric] = &[
    Metric::counter(
        EVENTS_TOTAL,
        &[labels::GROUP, labels::HANDLER, labels::EVENT_TYPE, labels::OUTCOME],
        "Events handled, by group, handler, event type and outcome.",
    ),
    Metric::histogram(PROCESSING_SECONDS, &[labels::GROUP, labels::HANDLER], "Handler processing time, all attempts."),
    Metric::histogram(END_TO_END_SECONDS, &[labels::GROUP, labels::EVENT_TYPE], "Handled time minus occurredOn."),
    Metric::counter(
        RETRIES_TOTAL,
        &[labels::GROUP, labels::HANDLER, labels::CLASS],
        "Failed handler attempts that will be retried.",
    ),
    Metric::counter(
        DEAD_LETTERS_TOTAL,
        &[labels::GROUP, labels::TOPIC, labels::CLASS],
        "Messages written to a dead-letter topic.",
    ),
    Metric::gauge(LAG_MESSAGES, &[labels::GROUP, labels::TOPIC, labels::PARTITION], "Consumer lag in messages per partition."),
    Metric::gauge(
        LAG_SECONDS,
        &[labels::GROUP, labels::TOPIC, labels::PARTITION],
        "Age of the oldest unfinished message per partition.",
    ),
    Metric::gauge(IN_FLIGHT, &[labels::GROUP], "Events fetched and not finished."),
    Metric::gauge(CIRCUIT_STATE, &[labels::GROUP, labels::DEPENDENCY], "Circuit-breaker state: 0 closed, 1 half-open, 2 open."),
    Metric::counter(
        CIRCUIT_TRANSITIONS_TOTAL,
        &[labels::GROUP, labels::DEPENDENCY, labels::STATE],
        "Circuit-breaker transitions, by the state entered.",
    ),
    Metric::gauge(PARKED, &[labels::GROUP], "Events parked now, waiting for a dependency."),
    Metric::gauge(PAUSED_PARTITIONS, &[labels::GROUP], "Partitions paused: parked work holds every in-flight slot."),
    Metric::counter(
        PARKS_TOTAL,
        &[labels::GROUP, labels::HANDLER, labels::DEPENDENCY],
        "Handler calls failed by a dependency and parked (no attempt used).",
    ),
    Metric::gauge(FUSE_TRIPPED, &[labels::GROUP], "1 when the DLQ-rate fuse stopped the worker."),
    Metric::counter(DEDUP_PRUNED_TOTAL, &[], "Dedup records deleted by pruning."),
    Metric::counter(REBALANCES_TOTAL, &[labels::GROUP, labels::KIND], "Partition assignments and revocations."),
];

/// Describes every metric on the installed recorder; call once at start.
pub fn describe() {
    ltf_kafka::metrics::describe_all(CATALOGUE);
}

/// The outcomes counted in [`EVENTS_TOTAL`], in the order of [`HandlerHandles::events`].
const OUTCOMES: [&str; 4] = [outcome::SUCCESS, outcome::RETRIED, outcome::DEAD_LETTERED, outcome::DUPLICATE];

/// The `event_type` label of an event that did not decode.
const UNKNOWN_TYPE: &str = "unknown";

/// Handlers whose handles a group keeps in its table; a group with more resolves the
/// others' handles on every call (correct, only slower).
const HANDLER_SLOTS: usize = 16;

/// Event types and one more for [`UNKNOWN_TYPE`].
const TYPES: usize = EventType::ALL.len() + 1;

/// The handles of one handler, each resolved on first use.
struct HandlerHandles {
    name: String,
    processing: OnceLock<Histogram>,
    /// By event type ([`type_index`]) and outcome ([`OUTCOMES`]).
    events: [[OnceLock<Counter>; OUTCOMES.len()]; TYPES],
}

/// The handles of the per-event metrics of one consumer group, each resolved once per
/// label set: counting an event is then an atomic add, not a lookup by name and labels
/// with the label strings allocated anew (a twentieth of a worker's CPU per event).
/// Handles are resolved on first use, so the recorder installed at start is the one
/// they belong to. They sit in fixed tables written once per slot (`OnceLock`): finding
/// one is a comparison of the handler's name and an index by event type and outcome,
/// with no hashing, no lock and no reference count that the lanes on other threads would
/// contend for (with the maps of snapshots they replaced, the per-event metrics took 12 %
/// of the runtime thread's time in a no-op run; with the tables, 4 %).
pub(crate) struct GroupMetrics {
    group: String,
    handlers: [OnceLock<HandlerHandles>; HANDLER_SLOTS],
    /// By event type ([`type_index`]).
    end_to_end: [OnceLock<Histogram>; TYPES],
}

impl std::fmt::Debug for GroupMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMetrics").field("group", &self.group).finish_non_exhaustive()
    }
}

/// The index of `event_type` in the tables (`None`: [`UNKNOWN_TYPE`]).
fn type_index(event_type: Option<EventType>) -> usize {
    event_type.map_or(EventType::ALL.len(), |t| EventType::ALL.iter().position(|a| *a == t).unwrap_or(EventType::ALL.len()))
}

fn type_label(event_type: Option<EventType>) -> &'static str {
    event_type.map_or(UNKNOWN_TYPE, EventType::as_str)
}

impl GroupMetrics {
    /// The metrics of consumer group `group`.
    pub(crate) fn new(group: &str) -> GroupMetrics {
        GroupMetrics {
            group: group.to_owned(),
            handlers: std::array::from_fn(|_| OnceLock::new()),
            end_to_end: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The handles of `handler`, from its slot (claimed on first use); `None` once every
    /// slot is another handler's.
    fn handles(&self, handler: &str) -> Option<&HandlerHandles> {
        for slot in &self.handlers {
            let taken = slot.get_or_init(|| HandlerHandles {
                name: handler.to_owned(),
                processing: OnceLock::new(),
                events: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            });
            if taken.name == handler {
                return Some(taken);
            }
        }
        None
    }

    /// Adds `n` to [`EVENTS_TOTAL`] of `handler`, `event_type` (`None`: an event that did
    /// not decode) and `outcome` (one of [`outcome`]).
    pub(crate) fn count(&self, handler: &str, event_type: Option<EventType>, outcome: &'static str, n: u64) {
        let make = || {
            counter!(EVENTS_TOTAL, labels::GROUP => self.group.clone(), labels::HANDLER => handler.to_owned(),
                labels::EVENT_TYPE => type_label(event_type), labels::OUTCOME => outcome)
        };
        let slot = OUTCOMES.iter().position(|o| *o == outcome).zip(self.handles(handler));
        match slot {
            Some((o, h)) => h.events[type_index(event_type)][o].get_or_init(make).increment(n),
            None => make().increment(n),
        }
    }

    /// Records `secs` in [`PROCESSING_SECONDS`] of `handler`.
    pub(crate) fn processing(&self, handler: &str, secs: f64) {
        let make = || histogram!(PROCESSING_SECONDS, labels::GROUP => self.group.clone(), labels::HANDLER => handler.to_owned());
        match self.handles(handler) {
            Some(h) => h.processing.get_or_init(make).record(secs),
            None => make().record(secs),
        }
    }

    /// Records `secs` in [`END_TO_END_SECONDS`] of `event_type`.
    pub(crate) fn end_to_end(&self, event_type: EventType, secs: f64) {
        let make =
            || histogram!(END_TO_END_SECONDS, labels::GROUP => self.group.clone(), labels::EVENT_TYPE => event_type.as_str());
        self.end_to_end[type_index(Some(event_type))].get_or_init(make).record(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` in `text` (0 when absent).
    fn sample(text: &str, name: &str, labels: &str) -> f64 {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.parse().expect("a number"))
    }

    #[test]
    fn each_count_and_sample_lands_in_its_own_label_set_for_every_handler_beyond_the_table_too() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let m = GroupMetrics::new("g");
            // More handlers than the table has slots: the last ones take the slow path.
            for h in 0..HANDLER_SLOTS + 2 {
                let name = format!("h{h}");
                m.count(&name, Some(EventType::RecordUpdated), outcome::SUCCESS, 1);
                m.count(&name, Some(EventType::RecordUpdated), outcome::SUCCESS, 2);
                m.count(&name, Some(EventType::RecordCreated), outcome::RETRIED, 1);
                m.processing(&name, 0.5);
            }
            m.count("h0", None, outcome::DEAD_LETTERED, 4);
            m.count("h1", Some(EventType::RecordDeleted), outcome::DUPLICATE, 5);
            m.end_to_end(EventType::RecordUpdated, 1.0);
            m.end_to_end(EventType::RecordUpdated, 3.0);
        });
        let text = handle.render();
        let events = |h: &str, t: &str, o: &str| {
            sample(&text, EVENTS_TOTAL, &format!("group=\"g\",handler=\"{h}\",event_type=\"{t}\",outcome=\"{o}\""))
        };
        for h in 0..HANDLER_SLOTS + 2 {
            let name = format!("h{h}");
            assert_eq!(events(&name, "record-updated", "success"), 3.0, "{name}\n{text}");
            assert_eq!(events(&name, "record-created", "retried"), 1.0, "{name}");
            assert_eq!(events(&name, "record-created", "success"), 0.0, "{name}");
            let processed = format!("group=\"g\",handler=\"{name}\"");
            assert_eq!(sample(&text, &format!("{PROCESSING_SECONDS}_count"), &processed), 1.0, "{name}");
        }
        assert_eq!(events("h0", "unknown", "dead_lettered"), 4.0);
        assert_eq!(events("h1", "record-deleted", "duplicate"), 5.0);
        let e2e = "group=\"g\",event_type=\"record-updated\"";
        assert_eq!(sample(&text, &format!("{END_TO_END_SECONDS}_count"), e2e), 2.0);
        assert_eq!(sample(&text, &format!("{END_TO_END_SECONDS}_sum"), e2e), 4.0);
    }
}
