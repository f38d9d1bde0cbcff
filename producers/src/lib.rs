//! The producing side of the pipeline: the public HTTP API and the outbox relay.
//!
//! | module | what |
//! |---|---|
//! | [`api`] | the HTTP API (axum): routes, OpenAPI DTOs, the one mapping of domain errors to HTTP statuses |
//! | [`relay`] | publishes the outbox (`ltf_domain::outbox`) to Kafka through `ltf_kafka::EventPublisher` |
//! | [`metrics`] | the API's and the relay's metric names, labels and catalogue |
//!
//! Invariants:
//! * `ltf-producers::api` is the only module that serves the public HTTP API (routes,
//!   OpenAPI DTOs, error → status mapping); ltf-domain, ltf-kafka, ltf-consumers and
//!   ltf-workers depend on neither axum nor utoipa (ltf-domain derives OpenAPI schemas
//!   only under its `openapi` feature, which this crate alone turns on);
//! * the relay marks a row sent only after Kafka acknowledged it, in one transaction per
//!   batch holding the aggregates' advisory locks, so rows of one aggregate are published
//!   once each and in sequence order.

#![warn(missing_docs)]

pub mod api;
pub mod metrics;
pub mod relay;
