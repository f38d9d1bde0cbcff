//! Every metric this crate exports: names, labels and the one place each is recorded.
//!
//! Names follow DESIGN.md: prefix `latechforce_`, unit in the name, labels only from
//! bounded sets (route templates, status codes, event types, topics) — never ids or free
//! text. docs/metrics.md lists them.

/// HTTP requests served by the API, by `route` (the matched path template, `unmatched`
/// otherwise), `method` and `status`.
pub const API_REQUESTS_TOTAL: &str = "latechforce_api_requests_total";
/// Latency of API requests in seconds, by `route` and `method`.
pub const API_REQUEST_DURATION_SECONDS: &str = "latechforce_api_request_duration_seconds";
/// Events written to the outbox by the API's use cases, by `event_type`.
pub const API_EVENTS_WRITTEN_TOTAL: &str = "latechforce_api_events_written_total";

/// Outbox rows not yet published (gauge, sampled by the relay).
pub const OUTBOX_BACKLOG: &str = "latechforce_outbox_backlog";
/// Age in seconds of the oldest unpublished outbox row; 0 when the backlog is empty.
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "latechforce_outbox_oldest_age_seconds";
/// Outbox rows parked: Kafka refused them for good; their aggregates wait (gauge, sampled
/// by the relay). Alerted on: an operator retries or skips them (`ltf outbox parked`).
pub const OUTBOX_PARKED: &str = "latechforce_outbox_parked";
/// Outbox rows the relay parked.
pub const RELAY_PARKED_TOTAL: &str = "latechforce_relay_parked_total";
/// Outbox rows the relay published and marked sent, by `topic` and `event_type`.
pub const RELAY_PUBLISHED_TOTAL: &str = "latechforce_relay_published_total";
/// Relay batches that failed to publish (rolled back, retried later), by `reason`
/// (`kafka`, `database`).
pub const RELAY_FAILURES_TOTAL: &str = "latechforce_relay_failures_total";
/// Duration in seconds of one relay batch: claim, publish, mark sent.
pub const RELAY_BATCH_DURATION_SECONDS: &str = "latechforce_relay_batch_duration_seconds";
/// Sent outbox rows deleted after the retention.
pub const RELAY_PRUNED_TOTAL: &str = "latechforce_relay_pruned_total";

use ltf_kafka::metrics::{describe_all, Metric};

/// Label names.
pub mod labels {
    /// The matched route template (`/v1/tables/{table_id}/records`).
    pub const ROUTE: &str = "route";
    /// The HTTP method.
    pub const METHOD: &str = "method";
    /// The HTTP status code.
    pub const STATUS: &str = "status";
    /// The event type string (`record-created`, …).
    pub const EVENT_TYPE: &str = "event_type";
    /// The Kafka topic.
    pub const TOPIC: &str = "topic";
    /// A bounded failure reason.
    pub const REASON: &str = "reason";
}

/// Every metric this crate exports. Adding a metric: its constant above, a line here,
/// a row in docs/metrics.md.
pub const CATALOGUE: &[Metric] = &[
    Metric::counter(
        API_REQUESTS_TOTAL,
        &[labels::ROUTE, labels::METHOD, labels::STATUS],
        "HTTP requests served by the API, by route, method and status.",
    ),
    Metric::histogram(
        API_REQUEST_DURATION_SECONDS,
        &[labels::ROUTE, labels::METHOD],
        "Latency of API requests, by route and method.",
    ),
    Metric::counter(
        API_EVENTS_WRITTEN_TOTAL,
        &[labels::EVENT_TYPE],
        "Events written to the outbox by API requests, by event type.",
    ),
    Metric::gauge(OUTBOX_BACKLOG, &[], "Outbox rows not yet published."),
    Metric::gauge(OUTBOX_OLDEST_AGE_SECONDS, &[], "Age of the oldest unpublished outbox row."),
    Metric::gauge(OUTBOX_PARKED, &[], "Outbox rows parked: refused by Kafka for good, their aggregates waiting."),
    Metric::counter(RELAY_PARKED_TOTAL, &[], "Outbox rows the relay parked."),
    Metric::counter(
        RELAY_PUBLISHED_TOTAL,
        &[labels::TOPIC, labels::EVENT_TYPE],
        "Outbox rows published and marked sent, by topic and event type.",
    ),
    Metric::counter(RELAY_FAILURES_TOTAL, &[labels::REASON], "Relay batches rolled back for a later retry, by reason."),
    Metric::histogram(RELAY_BATCH_DURATION_SECONDS, &[], "Duration of one relay batch."),
    Metric::counter(RELAY_PRUNED_TOTAL, &[], "Sent outbox rows deleted after the retention."),
];

/// Describes every metric (help text) on the installed recorder; call once at start.
pub fn describe() {
    describe_all(CATALOGUE);
}
