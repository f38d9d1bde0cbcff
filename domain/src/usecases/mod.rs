//! The use cases: create, update and delete one record or a batch; create tables and
//! forms; submit a form; authenticate a connection to an external service.
//!
//! Each is a type with one `execute` method taking a `&mut PgConnection`. It wraps its work
//! in a transaction of its own on that connection, or, when the connection is already
//! inside the caller's transaction, in a savepoint of it: either way the rows and their
//! outbox rows are written together or not at all, and a refused use case leaves the
//! caller's transaction usable. `run` does the same on a connection of a pool and returns
//! once committed.
//!
//! Guarantees:
//! * input is validated before anything is written, with a typed [`UseCaseError`] per
//!   fault (unknown table, form or service, unknown field, wrong field type, empty or
//!   oversized batch, missing record, stale version, bad definition or mapping, existing
//!   id, refused or failed credential exchange);
//! * *Multiple* use cases are all-or-nothing: every row and every event, or none;
//! * every change bumps the record's version, carried by its event as recordVersion;
//!   RecordUpdated's previousFields, currentFields and changedFields come from the stored
//!   row locked for update, not from the request, and an update that changes nothing
//!   writes nothing and emits nothing;
//! * an expected version that does not match is [`UseCaseError::StaleVersion`] (409) and
//!   nothing is written;
//! * [`CreateTable`] and [`CreateForm`] emit nothing (the contract has no table or form
//!   definition events); [`SubmitForm`] stores the submission with its FormSubmitted;
//! * a transaction that loses a race with another one (deadlock, serialization failure,
//!   lock or statement timeout: [`ltf_pg::PgFailure::Conflict`]) is run again by `run`, at
//!   most [`CONFLICT_RETRIES`] more times after a short random wait, before its error is
//!   returned ([`UseCaseError::is_retryable`]: the API answers 503); the database being
//!   away ([`ltf_pg::PgFailure::Unavailable`]) is returned at once;
//! * writers lock rows in one order — records (by id), then aggregate sequences (by
//!   aggregate), then the outbox — so concurrent writers wait for each other instead of
//!   deadlocking;
//! * [`AuthenticateConnection`] exchanges the credentials before opening any transaction,
//!   stores the tokens only encrypted, and emits ConnectionEstablished when a connection
//!   first holds credentials; a refused or failed exchange writes and emits nothing.

mod authenticate_connection;
mod changes;
mod config;
mod context;
mod create_automation;
mod create_form;
mod create_record;
mod create_table;
pub mod definitions;
mod delete_record;
mod error;
pub mod requests;
mod submit_form;
mod update_record;
pub mod validate;

use std::future::Future;

use ltf_schemas::{DomainEvent, EventCodec};
use sqlx::{PgConnection, PgPool};

pub use authenticate_connection::{AuthenticateConnection, AuthenticateConnectionInput};
pub use changes::{changed_fields, merge};
pub use config::RecordLimits;
pub use context::{Cause, ChangeContext};
pub use create_automation::CreateAutomation;
pub use create_form::{CreateForm, CreateFormInput};
pub use create_record::{CreateMultipleRecords, CreateMultipleRecordsInput, CreateRecord, CreateRecordInput};
pub use create_table::{CreateTable, CreateTableInput};
pub use definitions::{MAX_FIELDS, MAX_NAME_CHARS};
pub use delete_record::{DeleteMultipleRecords, DeleteMultipleRecordsInput, DeleteRecord, DeleteRecordInput, RecordRef};
pub use error::{MappingFault, UseCaseError};
pub use submit_form::{SubmitForm, SubmitFormInput};
pub use update_record::{RecordPatch, UpdateMultipleRecords, UpdateMultipleRecordsInput, UpdateRecord, UpdateRecordInput};

pub use crate::connections::{ConnectionsConfig, OAuthGrant, OAuthServiceConfig};
pub use crate::store::connections::ServiceConnection;
pub use crate::store::forms::{FormDef, FormSubmission};
pub use crate::store::records::Record;
pub use crate::store::tables::{FieldDef, FieldType, TableDef};

/// How often [`UseCase::run`] runs a use case again after its transaction lost a race.
pub const CONFLICT_RETRIES: u32 = 3;

/// One use case: validate the input, then write the rows and their outbox rows in one
/// transaction (a savepoint of the caller's when `conn` is inside one).
pub trait UseCase {
    /// What the caller asks for.
    type Input: Send;
    /// What was written (the rows, or for deletes the records as they were).
    type Output;

    /// Runs the use case on `conn`.
    fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Outcome<Self::Output>, UseCaseError>> + Send;

    /// Whether [`run`](Self::run) may run the use case again after a conflict: only when
    /// nothing happened outside the database before its transaction.
    const RETRIES_CONFLICTS: bool = true;

    /// [`execute`](Self::execute) on a connection of `pool`; returns once committed. A
    /// transaction that lost a race is run again (see the module's guarantees).
    fn run(
        &self,
        pool: &PgPool,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Outcome<Self::Output>, UseCaseError>> + Send
    where
        Self: Sync,
        Self::Input: Clone,
    {
        async move {
            let mut retries = 0;
            loop {
                match self.execute(&mut *pool.acquire().await?, codec, ctx, input.clone()).await {
                    Err(e) if Self::RETRIES_CONFLICTS && retries < CONFLICT_RETRIES && e.is_conflict_failure() => {}
                    other => return other,
                }
                retries += 1;
                let wait = rand::random_range(5..=20 * u64::from(retries));
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
        }
    }
}

/// What a use case wrote: its result and the events it appended to the outbox, in order,
/// with their aggregateSequence set. Committed once `execute` returned outside a caller's
/// transaction (or `run` returned); otherwise when the caller commits.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// The rows as written (or, for deletes, as they were).
    pub value: T,
    /// The events appended to the outbox; empty for an update that changed nothing and for
    /// the use cases that emit none.
    pub events: Vec<DomainEvent>,
}

impl<T> Outcome<Vec<T>> {
    /// The single value of a one-record run.
    pub(crate) fn single(self) -> Result<Outcome<T>, UseCaseError> {
        let Outcome { value, events } = self;
        let value = value.into_iter().next().ok_or(UseCaseError::Db(sqlx::Error::RowNotFound))?;
        Ok(Outcome { value, events })
    }
}

/// Distinct record ids in first-appearance order.
pub(crate) fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}
