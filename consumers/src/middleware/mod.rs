//! Everything around a handler call, one module per concern (watermill style). The chain,
//! declared here and composed in one place ([`crate::pipeline`], per event and handler):
//!
//! ```text
//! decode ─▶ dedup ─▶ breaker ─▶ retry ─▶ handler ─▶ (failure) dead letter
//! ```
//!
//! 1. decode (the codec; a registry outage is waited out by the `dependency` module, a value that
//!    does not decode goes to the dead letters as it is);
//! 2. [`dedup`]: an event the handler already handled is acknowledged without a call;
//!    after success the event is recorded, by the handler in the transaction of its side
//!    effect ([`DedupStore::begin`]) or else by the middleware ([`Recording`]);
//! 3. [`circuit_breaker`]: [`Breakers`], per dependency Closed → Open (failure rate over
//!    a window) → HalfOpen (a few probes) → Closed (ramping concurrency); a failure of a
//!    dependency parks the event (the `dependency` module) instead of using an attempt;
//! 4. [`retry`]: [`RetryPolicy`] and the attempt loop: the handler's own retryable errors
//!    only, bounded attempts, exponential backoff with equal jitter;
//! 5. the handler;
//! 6. [`dead_letter`]: [`DeadLetter`] and [`DeadLetterPublisher`] — a faithful copy of the
//!    message with the `dlq-*` headers, acknowledged before the offset may be stored; and
//!    [`fuse`]: [`DlqFuse`] stops the worker when too large a share of recent events is
//!    dead-lettered, until reset.
//!
//! Each piece has its own tests; none of them reads Kafka or stores offsets.

pub mod circuit_breaker;
pub mod dead_letter;
pub mod dedup;
pub(crate) mod dependency;
pub mod fuse;
pub mod retry;

#[cfg(test)]
mod test_recorder;

pub use circuit_breaker::{Admission, BreakerConfig, Breakers, CircuitState, Clock, DependencyPermit, ManualClock, SystemClock};
pub use dead_letter::{DeadLetter, DeadLetterPublisher, DeadLetterSink, DlqHeaders, Origin, UNDECODABLE_HANDLER};
pub use dedup::{DedupStore, Recording};
pub use fuse::{DlqFuse, FuseConfig};
pub use retry::RetryPolicy;
