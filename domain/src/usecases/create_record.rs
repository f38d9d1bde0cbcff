use ltf_schemas::{DomainEvent, EventCodec, EventPayload, Fields, RecordCreated};
use sqlx::{Connection, PgConnection};

use crate::outbox;
use crate::store::records;
use crate::usecases::{validate, ChangeContext, Outcome, Record, RecordLimits, UseCase, UseCaseError};

/// Input of [`CreateRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRecordInput {
    /// The table to add the record to.
    pub table_id: String,
    /// Its field values.
    pub fields: Fields,
}

/// Input of [`CreateMultipleRecords`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMultipleRecordsInput {
    /// The table to add the records to.
    pub table_id: String,
    /// The field values of each new record.
    pub records: Vec<Fields>,
}

/// Creates one record and its RecordCreated event (recordVersion 1, createdBy = the
/// context's user).
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateRecord;

impl UseCase for CreateRecord {
    type Input = CreateRecordInput;
    type Output = Record;

    /// Validates and writes the record and its outbox row in one transaction (a savepoint
    /// when `conn` is inside the caller's transaction).
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: CreateRecordInput,
    ) -> Result<Outcome<Record>, UseCaseError> {
        create(conn, codec, ctx, &input.table_id, vec![input.fields]).await?.single()
    }
}

/// Creates a batch of records of one table, all or none, one RecordCreated each; their
/// aggregateSequences are consecutive, in the order given.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateMultipleRecords {
    /// The batch limit.
    pub limits: RecordLimits,
}

impl CreateMultipleRecords {
    /// A use case with these limits.
    pub fn new(limits: RecordLimits) -> CreateMultipleRecords {
        CreateMultipleRecords { limits }
    }
}

impl UseCase for CreateMultipleRecords {
    type Input = CreateMultipleRecordsInput;
    type Output = Vec<Record>;

    /// Validates every record, then writes them and their outbox rows in one transaction
    /// (a savepoint when `conn` is inside the caller's transaction).
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: CreateMultipleRecordsInput,
    ) -> Result<Outcome<Vec<Record>>, UseCaseError> {
        validate::batch(input.records.len(), &self.limits)?;
        create(conn, codec, ctx, &input.table_id, input.records).await
    }
}

async fn create(
    conn: &mut PgConnection,
    codec: &EventCodec,
    ctx: &ChangeContext,
    table_id: &str,
    records: Vec<Fields>,
) -> Result<Outcome<Vec<Record>>, UseCaseError> {
    let mut tx = conn.begin().await?;
    let table = validate::table(&mut tx, table_id).await?;
    for (index, fields) in records.iter().enumerate() {
        validate::fields(&table, fields, index)?;
    }
    let rows: Vec<(String, Fields)> =
        records.into_iter().enumerate().map(|(i, f)| (ctx.new_id("record", i).to_string(), f)).collect();
    let written = records::insert_many(&mut tx, table_id, &rows, ctx.user_id.as_deref()).await?;
    let events = written
        .iter()
        .map(|r| {
            DomainEvent::new(EventPayload::RecordCreated(RecordCreated {
                table_id: r.table_id.clone(),
                record_id: r.id.clone(),
                record_version: r.version,
                fields: r.fields.clone().into(),
                created_by: r.created_by.clone(),
            }))
        })
        .collect();
    let events = outbox::append(&mut tx, codec, ctx.traceparent.as_deref(), ctx.stamp(events)).await?;
    tx.commit().await?;
    Ok(Outcome { value: written, events })
}
