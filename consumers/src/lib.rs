//! Consuming LaTeChforce domain events from Kafka.
//!
//! This crate is where the worker runtime (router, middleware, dedup, retries, dead
//! letters, circuit breaker) lives. Today it provides the [`EventReader`]: a plain
//! consumer-group reader that decodes each message through the registry and hands back
//! the typed event with its Kafka metadata.
//!
//! Guarantees of [`EventReader`]:
//! * a message that does not decode is returned as a [`ReceivedEvent`] whose `event` is
//!   the typed [`ltf_schemas::SchemaError`], never a panic and never silently skipped;
//! * offsets are stored only when the caller calls [`EventReader::store`]
//!   (`enable.auto.offset.store=false`), so reading is at-least-once;
//! * librdkafka's prefetch is bounded (`queued.max.messages.kbytes`).

mod config;
mod error;
mod reader;

pub use config::ReaderConfig;
pub use error::ConsumeError;
pub use reader::{EventReader, ReceivedEvent};
