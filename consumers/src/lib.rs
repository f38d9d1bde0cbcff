//! Consuming LaTeChforce domain events from Kafka: the worker runtime.
//!
//! Work in progress (issue 4): handler API ([`Handler`]), dedup store, middleware.
//!
//! Guarantees of [`EventReader`]:
//! * a message that does not decode is returned as a [`ReceivedEvent`] whose `event` is
//!   the typed [`ltf_schemas::SchemaError`], never a panic and never silently skipped;
//! * offsets are stored only when the caller calls [`EventReader::store`]
//!   (`enable.auto.offset.store=false`), so reading is at-least-once;
//! * librdkafka's prefetch is bounded (`queued.max.messages.kbytes`).

mod config;
pub mod dedup;
mod error;
mod handler;
pub mod metrics;
pub mod middleware;
mod reader;
mod router;
pub mod runner;

pub use config::ReaderConfig;
pub use error::ConsumeError;
pub use handler::{Event, Handler, HandlerContext, HandlerError, Meta};
pub use reader::{EventReader, ReceivedEvent};
pub use router::Router;
pub use runner::{Blocker, Health, Incoming, Process, RunReport, Runner, WorkerConfig};
