//! Publishing LaTeChforce domain events to Kafka.
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

mod config;
mod error;
mod publisher;
pub mod topics;

pub use config::PublisherConfig;
pub use error::PublishError;
pub use publisher::{Delivery, EventPublisher};
