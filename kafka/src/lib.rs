//! Kafka plumbing both sides of the pipeline share: publishing, topic administration,
//! consumer settings, trace context over headers, and the metric-catalogue types.
//!
//! | module | what |
//! |---|---|
//! | [`publisher`] | [`EventPublisher`] (idempotent producer) and [`PublisherConfig`] |
//! | [`topics`] | [`TopicSpec`](topics::TopicSpec) and [`ensure_topics`](topics::ensure_topics) |
//! | [`consumer`] | [`ConsumerConfig`]: the settings every consumer starts from |
//! | [`trace`] | W3C trace context (`traceparent`) from span to header and back |
//! | [`metrics`] | [`Metric`](metrics::Metric) and [`Kind`](metrics::Kind): the catalogue types |
//! | [`config`] | [`ConfigError`] (names the bad key) and durations in milliseconds |
//! | [`security`] | [`KafkaSecurity`](security::KafkaSecurity): SASL/TLS settings of every client ([`security::client_config`]) |
//! | [`PublishError`] | this crate's one error enum |
//!
//! Guarantees of [`EventPublisher`]:
//! * idempotent producer: `acks=all`, `enable.idempotence=true`, so a retried send never
//!   duplicates or reorders within a partition;
//! * key = aggregateId, so one aggregate's events share a partition and keep their order;
//! * the value is Confluent-framed Avro and the headers are the contract's
//!   (`ltf_schemas::Headers`);
//! * `publish` resolves only after the broker acknowledged the write; `publish_batch`
//!   enqueues every event before awaiting any acknowledgement (one round trip for the
//!   batch, not one per event) and applies back-pressure when librdkafka's queue is full;
//! * every failure is a [`PublishError`] naming the topic and the event id.
//!
//! [`topics::ensure_topics`] creates the event topics (and is a no-op when they exist).
//! [`ConsumerConfig`] stores offsets only when told (`enable.auto.offset.store=false`) and
//! bounds librdkafka's prefetch. Every settings struct validates at start and names the
//! bad key ([`ConfigError`]).
//!
//! This crate knows no database and no HTTP server: it depends on `ltf-schemas` alone of
//! the project's crates.

#![warn(missing_docs)]

pub mod config;
pub mod consumer;
mod error;
pub mod metrics;
pub mod publisher;
pub mod security;
pub mod topics;
pub mod trace;

pub use config::ConfigError;
pub use consumer::ConsumerConfig;
pub use error::PublishError;
pub use publisher::{Delivery, EventPublisher, PublisherConfig, TransactionOutcome};
