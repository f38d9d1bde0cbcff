//! The outbox relay: publishes the outbox rows the use cases wrote, in order, and marks
//! them sent. Runs as `ltf relay` or embedded in any service ([`Relay::run`]).
//!
//! Guarantees:
//! * every committed outbox row is published at least once; a row is marked sent only in
//!   the transaction that ends after Kafka acknowledged it, so a relay that dies between
//!   the two (SIGKILL, lost connection) leaves the row unsent and it is published again —
//!   a duplicate with the same eventId, which consumers drop by their dedup record;
//! * per aggregate, rows are published in aggregateSequence order and only after every
//!   earlier row of the aggregate was marked sent: the relay selects *unsent rows* (never
//!   "ids above a watermark", which skips rows of transactions that commit out of id
//!   order), takes the lowest sequences of each aggregate it claims, and publishes them
//!   through the idempotent producer with key = aggregateId (one partition, in order);
//! * a batch is one Kafka transaction, so readers of committed messages never see a later
//!   row of an aggregate without the earlier ones: a row Kafka refuses aborts the
//!   transaction, the rows before it go again without it, and it is parked once it is
//!   the first unsent row of its aggregate and refused alone (see `batch`). Each relay
//!   writes as `<topic prefix>.relay-<slot>`, the lowest slot free (a PostgreSQL session
//!   lock), so a restarted relay aborts at once what its predecessor left open;
//! * several relays may run at once: an aggregate is claimed with a transaction-scoped
//!   PostgreSQL advisory lock (`pg_try_advisory_xact_lock`), so at most one relay
//!   publishes a given aggregate at a time and the next one sees its rows as sent;
//!   relays never wait for each other, they take other aggregates;
//! * a failed batch (Kafka or PostgreSQL) is rolled back as a whole and retried with
//!   exponential backoff; nothing is marked sent that was not committed to Kafka;
//! * sent rows are deleted after [`RelayConfig::retention`]; unsent rows never are;
//! * the backlog (unsent rows) and the age of its oldest row are exported as metrics
//!   ([`crate::metrics::OUTBOX_BACKLOG`], [`crate::metrics::OUTBOX_OLDEST_AGE_SECONDS`]).
//!
//! New rows wake the relay at once: the outbox's insert trigger sends a PostgreSQL
//! notification on [`ltf_domain::outbox::NOTIFY_CHANNEL`] when the writing transaction commits; without one the
//! relay polls every [`RelayConfig::poll_interval`].

mod batch;
mod config;
mod error;
mod housekeeping;
mod run;

pub use batch::BatchReport;
pub use config::RelayConfig;
pub use error::RelayError;
pub use ltf_domain::outbox::Backlog;
pub use run::Relay;
