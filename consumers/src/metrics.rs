//! Every metric the worker runtime exports: names, labels, and their help texts.
//!
//! Names follow DESIGN.md: prefix `latechforce_`, unit in the name, labels only from
//! bounded sets (group, handler, event type, outcome, topic, partition, dependency) —
//! never ids or free text. docs/metrics.md lists them.

pub use ltf_kafka::metrics::{Kind, Metric};

use std::hash::Hash;

use arc_swap::ArcSwap;
use foldhash::HashMap;
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

/// A handler's event counters by (event type, outcome).
type CountersByOutcome = HashMap<(&'static str, &'static str), Counter>;

/// The handles of the per-event metrics of one consumer group, each resolved once per
/// label set: counting an event is then an atomic add, not a lookup by name and labels
/// with the label strings allocated anew (a twentieth of a worker's CPU per event).
/// Handles are resolved on first use, so the recorder installed at start is the one
/// they belong to. Each map is an immutable snapshot, replaced whole when a label set is
/// first seen: reading one takes no lock and no reference count that the lanes on other
/// threads would contend for.
pub(crate) struct GroupMetrics {
    group: String,
    /// By (handler, event type, outcome).
    events: ArcSwap<HashMap<String, CountersByOutcome>>,
    processing: ArcSwap<HashMap<String, Histogram>>,
    end_to_end: ArcSwap<HashMap<&'static str, Histogram>>,
}

impl std::fmt::Debug for GroupMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMetrics").field("group", &self.group).finish_non_exhaustive()
    }
}

/// Applies `use_it` to the handle of `key` in `map`, made by `make` the first time.
fn with_cached<K, Q, V>(
    map: &ArcSwap<HashMap<K, V>>,
    key: &Q,
    own: impl FnOnce() -> K,
    make: impl FnOnce() -> V,
    use_it: impl FnOnce(&V),
) where
    K: Eq + Hash + Clone + std::borrow::Borrow<Q>,
    Q: Eq + Hash + ?Sized,
    V: Clone,
{
    if let Some(v) = map.load().get(key) {
        return use_it(v);
    }
    let (key, v) = (own(), make());
    add_to(map, |new| {
        new.entry(key.clone()).or_insert_with(|| v.clone());
    });
    use_it(&v);
}

/// Replaces `map`'s snapshot with a copy that `add` changed (a label set seen first).
fn add_to<K: Eq + Hash + Clone, V: Clone>(map: &ArcSwap<HashMap<K, V>>, add: impl Fn(&mut HashMap<K, V>)) {
    map.rcu(|old| {
        let mut new = HashMap::clone(old);
        add(&mut new);
        new
    });
}

impl GroupMetrics {
    /// The metrics of consumer group `group`.
    pub(crate) fn new(group: &str) -> GroupMetrics {
        GroupMetrics {
            group: group.to_owned(),
            events: ArcSwap::default(),
            processing: ArcSwap::default(),
            end_to_end: ArcSwap::default(),
        }
    }

    /// Adds `n` to [`EVENTS_TOTAL`] of `handler`, `event_type` and `outcome`.
    pub(crate) fn count(&self, handler: &str, event_type: &'static str, outcome: &'static str, n: u64) {
        let key = (event_type, outcome);
        if let Some(c) = self.events.load().get(handler).and_then(|per| per.get(&key)) {
            return c.increment(n);
        }
        let c = counter!(EVENTS_TOTAL, labels::GROUP => self.group.clone(), labels::HANDLER => handler.to_owned(),
            labels::EVENT_TYPE => event_type, labels::OUTCOME => outcome);
        add_to(&self.events, |new| {
            new.entry(handler.to_owned()).or_default().entry(key).or_insert_with(|| c.clone());
        });
        c.increment(n);
    }

    /// Records `secs` in [`PROCESSING_SECONDS`] of `handler`.
    pub(crate) fn processing(&self, handler: &str, secs: f64) {
        let make = || histogram!(PROCESSING_SECONDS, labels::GROUP => self.group.clone(), labels::HANDLER => handler.to_owned());
        with_cached(&self.processing, handler, || handler.to_owned(), make, |h| h.record(secs));
    }

    /// Records `secs` in [`END_TO_END_SECONDS`] of `event_type`.
    pub(crate) fn end_to_end(&self, event_type: &'static str, secs: f64) {
        let make = || histogram!(END_TO_END_SECONDS, labels::GROUP => self.group.clone(), labels::EVENT_TYPE => event_type);
        with_cached(&self.end_to_end, event_type, || event_type, make, |h| h.record(secs));
    }
}
