//! Every metric the workers export: names, labels, and their help texts (the runtime's
//! own are in `ltf_consumers::metrics`).
//!
//! Names follow DESIGN.md: prefix `latechforce_`, unit in the name, labels only from
//! bounded sets — never ids or free text. docs/metrics.md lists them.

use ltf_kafka::metrics::Metric;

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
    /// The event type string.
    pub const EVENT_TYPE: &str = "event_type";
    /// A cache write kind (`put`, `delete`).
    pub const KIND: &str = "kind";
    /// A cache write outcome (`applied`, `stale`).
    pub const OUTCOME: &str = "outcome";
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

/// Every metric this crate exports. Adding a metric: its constant above, a line here,
/// a row in docs/metrics.md.
pub const CATALOGUE: &[Metric] = &[
    Metric::counter(
        CACHE_WRITES_TOTAL,
        &[labels::KIND, labels::OUTCOME],
        "Record-cache writes, applied or refused as stale by the version guard.",
    ),
    Metric::counter(ANALYTICS_EVENTS_TOTAL, &[labels::EVENT_TYPE], "Events applied to the analytics rollups, by event type."),
    Metric::counter(ANALYTICS_CONNECTIONS_TOTAL, &[labels::SERVICE], "Connections established, by service."),
    Metric::counter(AUTOMATION_RUNS_TOTAL, &[labels::STATUS], "Automation runs started, succeeded and failed."),
    Metric::counter(
        AUTOMATION_ACTIONS_TOTAL,
        &[labels::ACTION_TYPE, labels::RESULT],
        "Automation actions executed, by action type and result.",
    ),
    Metric::histogram(AUTOMATION_ACTION_SECONDS, &[labels::ACTION_TYPE], "Time an automation action took, by action type."),
];

/// Describes every metric on the installed recorder; call once at start.
pub fn describe() {
    ltf_kafka::metrics::describe_all(CATALOGUE);
}
