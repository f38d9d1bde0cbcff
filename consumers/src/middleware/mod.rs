//! Failure handling, one module per concern (watermill style): the runner wires them
//! around each handler call.
//!
//! * [`retry`]: [`RetryPolicy`] and [`run_with_retry`] — retryable errors only, bounded
//!   attempts, exponential backoff with equal jitter, early stop on an open breaker;
//! * [`circuit_breaker`]: [`Breakers`] — per dependency Closed → Open → HalfOpen (one
//!   probe) → Closed;
//! * [`dead_letter`]: [`DeadLetter`] and [`DeadLetterPublisher`] — a faithful copy of the
//!   message with the `dlq-*` headers, acknowledged before the offset may be stored;
//! * [`fuse`]: [`DlqFuse`] — stops the worker when too large a share of recent events
//!   is dead-lettered, until reset.
//!
//! Each piece returns plain values and has its own tests; none of them reads Kafka or
//! stores offsets.

pub mod circuit_breaker;
pub mod dead_letter;
pub mod fuse;
pub mod retry;

#[cfg(test)]
mod test_recorder;

pub use circuit_breaker::{BreakerConfig, Breakers, CircuitState, Clock, ManualClock, SystemClock};
pub use dead_letter::{DeadLetter, DeadLetterPublisher, DlqHeaders, Origin, UNDECODABLE_HANDLER};
pub use fuse::{DlqFuse, FuseConfig};
pub use retry::{run_with_retry, RetryPolicy};
