//! Every metric the worker runtime exports: names, labels, and their help texts.
//!
//! Names follow DESIGN.md: prefix `latechforce_`, unit in the name, labels only from
//! bounded sets (group, handler, event type, outcome, topic, partition, dependency) —
//! never ids or free text. docs/metrics.md lists them.

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
/// 1 when the DLQ-rate fuse tripped and the worker stopped consuming, by `group`.
pub const FUSE_TRIPPED: &str = "latechforce_consumer_fuse_tripped";
/// Dedup records deleted by pruning (older than the retention).
pub const DEDUP_PRUNED_TOTAL: &str = "latechforce_consumer_dedup_pruned_total";
/// Partition assignments and revocations, by `group` and `kind` (`assign`, `revoke`).
pub const REBALANCES_TOTAL: &str = "latechforce_consumer_rebalances_total";
/// Record-cache writes, by `kind` (`put`, `delete`) and `outcome` (`applied`, `stale`:
/// refused by the version guard).
pub const CACHE_WRITES_TOTAL: &str = "latechforce_cache_writes_total";

/// Events the analytics worker applied to its rollups (first time only), by `event_type`.
pub const ANALYTICS_EVENTS_TOTAL: &str = "latechforce_analytics_events_total";
/// Connections established, as the analytics worker counted them, by `service` (the
/// configured OAuth2 services: a bounded set).
pub const ANALYTICS_CONNECTIONS_TOTAL: &str = "latechforce_analytics_connections_total";

/// Automation runs, by `status` (`started`, `succeeded`, `failed`).
pub const AUTOMATION_RUNS_TOTAL: &str = "latechforce_automation_runs_total";
/// Automation actions executed, by `action_type` and `result` (`success`, `failure`).
pub const AUTOMATION_ACTIONS_TOTAL: &str = "latechforce_automation_actions_total";
/// Time one action took (the external call or the use case), by `action_type`.
pub const AUTOMATION_ACTION_SECONDS: &str = "latechforce_automation_action_duration_seconds";

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
    /// A rebalance kind.
    pub const KIND: &str = "kind";
    /// An external service name (configured set).
    pub const SERVICE: &str = "service";
    /// An automation run status.
    pub const STATUS: &str = "status";
    /// An automation action type (`webhook`, `email`, `create_record`, `update_record`,
    /// `notify`).
    pub const ACTION_TYPE: &str = "action_type";
    /// An action result (`success`, `failure`).
    pub const RESULT: &str = "result";
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

/// Describes every metric on the installed recorder; call once at start.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(EVENTS_TOTAL, "Events handled, by group, handler, event type and outcome.");
    describe_histogram!(PROCESSING_SECONDS, Unit::Seconds, "Handler processing time, all attempts.");
    describe_histogram!(END_TO_END_SECONDS, Unit::Seconds, "Handled time minus occurredOn.");
    describe_counter!(RETRIES_TOTAL, "Failed handler attempts that will be retried.");
    describe_counter!(DEAD_LETTERS_TOTAL, "Messages written to a dead-letter topic.");
    describe_gauge!(LAG_MESSAGES, "Consumer lag in messages per partition.");
    describe_gauge!(LAG_SECONDS, Unit::Seconds, "Age of the oldest unfinished message per partition.");
    describe_gauge!(IN_FLIGHT, "Events fetched and not finished.");
    describe_gauge!(CIRCUIT_STATE, "Circuit-breaker state: 0 closed, 1 half-open, 2 open.");
    describe_gauge!(FUSE_TRIPPED, "1 when the DLQ-rate fuse stopped the worker.");
    describe_counter!(DEDUP_PRUNED_TOTAL, "Dedup records deleted by pruning.");
    describe_counter!(ANALYTICS_EVENTS_TOTAL, "Events applied to the analytics rollups, by event type.");
    describe_counter!(ANALYTICS_CONNECTIONS_TOTAL, "Connections established, by service.");
    describe_counter!(REBALANCES_TOTAL, "Partition assignments and revocations.");
    describe_counter!(CACHE_WRITES_TOTAL, "Record-cache writes, applied or refused as stale by the version guard.");
    describe_counter!(AUTOMATION_RUNS_TOTAL, "Automation runs started, succeeded and failed.");
    describe_counter!(AUTOMATION_ACTIONS_TOTAL, "Automation actions executed, by action type and result.");
    describe_histogram!(AUTOMATION_ACTION_SECONDS, Unit::Seconds, "Time an automation action took, by action type.");
}
