use std::collections::HashMap;

use ltf_schemas::{DomainEvent, EventCodec, EventPayload, RecordDeleted};
use sqlx::{Connection, PgConnection};

use crate::outbox;
use crate::store::records;
use crate::usecases::{distinct, validate, ChangeContext, Outcome, Record, RecordLimits, UseCase, UseCaseError};

/// A record to delete and, optionally, the version the client last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// The record to delete.
    pub record_id: String,
    /// When set, the delete applies only if the stored version is this one; otherwise
    /// [`UseCaseError::StaleVersion`].
    pub expected_version: Option<i64>,
}

impl RecordRef {
    /// The record `id`, whatever its version.
    pub fn any_version(id: impl Into<String>) -> RecordRef {
        RecordRef { record_id: id.into(), expected_version: None }
    }
}

/// Input of [`DeleteRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecordInput {
    /// The table the record belongs to.
    pub table_id: String,
    /// The record.
    pub record: RecordRef,
}

/// Input of [`DeleteMultipleRecords`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMultipleRecordsInput {
    /// The table the records belong to.
    pub table_id: String,
    /// The records; a record named twice is deleted once.
    pub records: Vec<RecordRef>,
}

/// Deletes one record: RecordDeleted with deletedFields = the stored fields and
/// recordVersion = the stored version + 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteRecord;

impl UseCase for DeleteRecord {
    type Input = DeleteRecordInput;
    type Output = Record;

    /// Locks the record, checks the expected version, then deletes it and writes its
    /// outbox row in one transaction (a savepoint inside the caller's transaction).
    /// Returns the record as it was.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: DeleteRecordInput,
    ) -> Result<Outcome<Record>, UseCaseError> {
        delete(conn, codec, ctx, &input.table_id, vec![input.record]).await?.single()
    }
}

/// Deletes a batch of records of one table, all or none (a missing record or a stale
/// version anywhere refuses the whole batch); one RecordDeleted each.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteMultipleRecords {
    /// The batch limit.
    pub limits: RecordLimits,
}

impl DeleteMultipleRecords {
    /// A use case with these limits.
    pub fn new(limits: RecordLimits) -> DeleteMultipleRecords {
        DeleteMultipleRecords { limits }
    }
}

impl UseCase for DeleteMultipleRecords {
    type Input = DeleteMultipleRecordsInput;
    type Output = Vec<Record>;

    /// As [`DeleteRecord::execute`], for every record. Returns the records as they were,
    /// in request order.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: DeleteMultipleRecordsInput,
    ) -> Result<Outcome<Vec<Record>>, UseCaseError> {
        validate::batch(input.records.len(), &self.limits)?;
        delete(conn, codec, ctx, &input.table_id, input.records).await
    }
}

async fn delete(
    conn: &mut PgConnection,
    codec: &EventCodec,
    ctx: &ChangeContext,
    table_id: &str,
    targets: Vec<RecordRef>,
) -> Result<Outcome<Vec<Record>>, UseCaseError> {
    let mut tx = conn.begin().await?;
    validate::table(&mut tx, table_id).await?;
    let ids = distinct(targets.iter().map(|t| t.record_id.as_str()));
    let mut rows: HashMap<String, Record> =
        records::lock_many(&mut tx, table_id, &ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    for t in &targets {
        let row = rows
            .get(&t.record_id)
            .ok_or_else(|| UseCaseError::RecordNotFound { table: table_id.to_owned(), record_id: t.record_id.clone() })?;
        if let Some(expected) = t.expected_version.filter(|v| *v != row.version) {
            return Err(UseCaseError::StaleVersion { record_id: row.id.clone(), expected, actual: row.version });
        }
    }
    let deleted: Vec<Record> = ids.iter().filter_map(|id| rows.remove(*id)).collect();
    let events = deleted
        .iter()
        .map(|r| {
            DomainEvent::new(EventPayload::RecordDeleted(RecordDeleted {
                table_id: table_id.to_owned(),
                record_id: r.id.clone(),
                record_version: r.version + 1,
                deleted_fields: r.fields.clone().into(),
            }))
        })
        .collect();
    records::delete_many(&mut tx, &ids).await?;
    let events = outbox::append(&mut tx, codec, ctx.traceparent.as_deref(), ctx.stamp(events)).await?;
    tx.commit().await?;
    Ok(Outcome { value: deleted, events })
}
