//! The LaTeChforce domain: the PostgreSQL store, the transactional outbox, the use cases,
//! automations and connections. No HTTP and no Kafka client: the API
//! (`ltf-producers::api`) and the workers (`ltf-workers`) call in, the relay
//! (`ltf-producers::relay`) publishes what [`outbox`] holds.
//!
//! | module | what |
//! |---|---|
//! | [`store`] | embedded migrations ([`store::migrate`]); tables, records, forms, connections |
//! | [`outbox`] | the whole outbox: append (with the aggregate sequence), claim, mark sent, backlog, prune, wait |
//! | [`usecases`] | the use cases: records, tables, forms, connections, automations; [`ChangeContext`], [`UseCaseError`] |
//! | [`automations`] | automation definitions, trigger matching, templates, and every read and write of runs and steps |
//! | [`connections`] | OAuth2 service settings, the token exchange, encrypted credentials, [`connections::Secret`] |
//!
//! Every table has one owning module; no SQL naming a table appears anywhere else
//! (`scripts/lib/check-layers` checks it):
//!
//! | table | owner |
//! |---|---|
//! | `ltf_tables` | [`store::tables`] (the link query of [`store::records`] reads its field definitions) |
//! | `ltf_records` | [`store::records`] |
//! | `ltf_forms`, `ltf_form_submissions` | [`store::forms`] |
//! | `ltf_connections` | [`store::connections`] |
//! | `ltf_outbox`, `ltf_aggregate_sequences` | [`outbox`] |
//! | `ltf_automations`, `ltf_automation_runs`, `ltf_automation_steps`, `ltf_automation_effects` | [`automations::store`] |
//! | `ltf_processed_events` | `ltf_consumers::middleware::dedup` |
//! | `ltf_event_log` | `ltf_workers::audit` |
//! | `ltf_analytics_rollups` | `ltf_workers::analytics` |
//! | `ltf_connection_usage` | `ltf_workers::automation::connections` |
//! | `ltf_dlq_replays` | the `ltf` command's `dlq::record` |
//!
//! The record use cases ([`usecases`]: [`CreateRecord`], [`CreateMultipleRecords`],
//! [`UpdateRecord`], [`UpdateMultipleRecords`], [`DeleteRecord`], [`DeleteMultipleRecords`])
//! write to the PostgreSQL domain store ([`store`], schema in the repository's
//! `migrations/`, applied by [`store::migrate`]) through a transactional outbox.
//! Guarantees:
//! * a change and its events are written in one transaction: nothing is reported saved
//!   whose event could be lost, and no event exists for a change that was rolled back;
//! * a use case can run inside the caller's transaction (as a savepoint of it), so several
//!   use cases and the caller's own writes commit or roll back together;
//! * *Multiple* use cases are all-or-nothing, every row and every event or none;
//! * each outbox row holds the encoded event, its headers (correlation and causation ids,
//!   `traceparent` when given) and its aggregateSequence, taken under a row lock on the
//!   aggregate held until commit: per aggregate, sequences are gap-free, unique and in
//!   commit order;
//! * every change bumps the record's version, carried as recordVersion; an expected
//!   version that no longer matches is refused as a conflict ([`UseCaseError::is_conflict`])
//!   and writes nothing; an update that changes nothing emits nothing.
//!
//! Tables, forms and connections ([`CreateTable`], [`CreateForm`], [`SubmitForm`],
//! [`AuthenticateConnection`]) follow the same rules. Further guarantees:
//! * a form submission is validated against the form's fields and stored with its
//!   FormSubmitted (aggregateId = formId) in one transaction; a form's field mapping names
//!   only existing fields of compatible types;
//! * a connection's credentials are exchanged with the service's OAuth2 token endpoint
//!   before any transaction is opened, never while one is held; a refused, failed or
//!   timed-out exchange writes and emits nothing, with a typed error that holds no secret;
//! * the granted tokens are stored only AES-256-GCM-encrypted, bound to their connection
//!   id ([`connections`]); no secret or token appears in a log, an error or `Debug`.

#![warn(missing_docs)]

pub mod automations;
pub mod connections;
pub mod fuzzing;
pub mod outbox;
pub mod store;
pub mod usecases;

pub use connections::{ConnectionsConfig, OAuthServiceConfig};
pub use usecases::{
    AuthenticateConnection, AuthenticateConnectionInput, ChangeContext, CreateForm, CreateFormInput, CreateMultipleRecords,
    CreateRecord, CreateTable, CreateTableInput, DeleteMultipleRecords, DeleteRecord, Outcome, RecordLimits, SubmitForm,
    SubmitFormInput, UpdateMultipleRecords, UpdateRecord, UseCase, UseCaseError,
};
