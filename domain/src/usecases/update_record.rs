use std::collections::HashMap;

use ltf_schemas::{DomainEvent, EventCodec, EventPayload, Fields, RecordUpdated};
use sqlx::{Connection, PgConnection};

use crate::outbox;
use crate::store::records;
use crate::usecases::changes::{changed_fields, merge};
use crate::usecases::{distinct, validate, ChangeContext, Outcome, Record, RecordLimits, UseCase, UseCaseError};

/// One record's change: the fields to set (a `null` value removes the field; fields not
/// named keep their value) and, optionally, the version the client last read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPatch {
    /// The record to change.
    pub record_id: String,
    /// The fields to set or, with `null`, remove.
    pub fields: Fields,
    /// When set, the change applies only if the stored version is this one; otherwise
    /// [`UseCaseError::StaleVersion`].
    pub expected_version: Option<i64>,
}

/// Input of [`UpdateRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRecordInput {
    /// The table the record belongs to.
    pub table_id: String,
    /// The change.
    pub patch: RecordPatch,
}

/// Input of [`UpdateMultipleRecords`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateMultipleRecordsInput {
    /// The table the records belong to.
    pub table_id: String,
    /// The changes, applied in order (two patches of one record apply one after the other).
    pub patches: Vec<RecordPatch>,
}

/// Updates one record: RecordUpdated with previousFields, currentFields and changedFields
/// taken from the stored row, recordVersion = the new version. A change that changes
/// nothing writes nothing and emits nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateRecord;

impl UseCase for UpdateRecord {
    type Input = UpdateRecordInput;
    type Output = Record;

    /// Validates, locks the record, checks the expected version, then writes the change and
    /// its outbox row in one transaction (a savepoint inside the caller's transaction).
    /// Returns the record as stored afterwards.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: UpdateRecordInput,
    ) -> Result<Outcome<Record>, UseCaseError> {
        update(conn, codec, ctx, &input.table_id, vec![input.patch]).await?.single()
    }
}

/// Updates a batch of records of one table, all or none (a missing record or a stale
/// version anywhere refuses the whole batch); one RecordUpdated per effective change.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateMultipleRecords {
    /// The batch limit.
    pub limits: RecordLimits,
}

impl UpdateMultipleRecords {
    /// A use case with these limits.
    pub fn new(limits: RecordLimits) -> UpdateMultipleRecords {
        UpdateMultipleRecords { limits }
    }
}

impl UseCase for UpdateMultipleRecords {
    type Input = UpdateMultipleRecordsInput;
    type Output = Vec<Record>;

    /// As [`UpdateRecord::execute`], for every patch. Returns each distinct record once, in
    /// request order, as stored afterwards.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: UpdateMultipleRecordsInput,
    ) -> Result<Outcome<Vec<Record>>, UseCaseError> {
        validate::batch(input.patches.len(), &self.limits)?;
        update(conn, codec, ctx, &input.table_id, input.patches).await
    }
}

async fn update(
    conn: &mut PgConnection,
    codec: &EventCodec,
    ctx: &ChangeContext,
    table_id: &str,
    patches: Vec<RecordPatch>,
) -> Result<Outcome<Vec<Record>>, UseCaseError> {
    let mut tx = conn.begin().await?;
    let table = validate::table(&mut tx, table_id).await?;
    for (index, p) in patches.iter().enumerate() {
        validate::fields(&table, &p.fields, index)?;
    }
    let ids = distinct(patches.iter().map(|p| p.record_id.as_str()));
    let mut rows: HashMap<String, Record> =
        records::lock_many(&mut tx, table_id, &ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();

    let mut events = Vec::new();
    for p in &patches {
        let row = rows
            .get_mut(&p.record_id)
            .ok_or_else(|| UseCaseError::RecordNotFound { table: table_id.to_owned(), record_id: p.record_id.clone() })?;
        if let Some(expected) = p.expected_version.filter(|v| *v != row.version) {
            return Err(UseCaseError::StaleVersion { record_id: row.id.clone(), expected, actual: row.version });
        }
        let current = merge(&row.fields, &p.fields);
        let changed = changed_fields(&row.fields, &current);
        if changed.is_empty() {
            continue;
        }
        let previous = std::mem::replace(&mut row.fields, current);
        row.version += 1;
        events.push(DomainEvent::new(EventPayload::RecordUpdated(RecordUpdated {
            table_id: table_id.to_owned(),
            record_id: row.id.clone(),
            record_version: row.version,
            previous_fields: previous.into(),
            current_fields: row.fields.clone().into(),
            changed_fields: changed,
        })));
    }

    if !events.is_empty() {
        let touched = distinct(events.iter().filter_map(|e| e.payload.record_id()));
        let changes: Vec<(&str, &Fields, i64)> =
            touched.iter().filter_map(|id| rows.get(*id)).map(|r| (r.id.as_str(), &r.fields, r.version)).collect();
        let written = records::update_many(&mut tx, &changes).await?;
        for r in written {
            rows.insert(r.id.clone(), r);
        }
        events = outbox::append(&mut tx, codec, ctx.traceparent.as_deref(), ctx.stamp(events)).await?;
    }
    tx.commit().await?;
    let value = ids.iter().filter_map(|id| rows.remove(*id)).collect();
    Ok(Outcome { value, events })
}
