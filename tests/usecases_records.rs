//! The record use cases against a real PostgreSQL (one fresh database per test) and the
//! real schema registry (one topic prefix per test): domain rows and outbox rows are
//! written together or not at all, outbox values decode to the right events, and
//! aggregateSequences are gap-free and unique.

use anyhow::{bail, Result};
use ltf_domain::store::tables::{self, FieldDef, FieldType, TableDef};
use ltf_domain::usecases::{
    CreateMultipleRecordsInput, CreateRecordInput, DeleteMultipleRecordsInput, DeleteRecordInput, RecordPatch, RecordRef,
    UpdateMultipleRecordsInput, UpdateRecordInput, UseCase,
};
use ltf_domain::{
    ChangeContext, CreateMultipleRecords, CreateRecord, DeleteMultipleRecords, DeleteRecord, RecordLimits, UpdateMultipleRecords,
    UseCaseError,
};
use ltf_producers::api::error::status_of;
use ltf_schemas::{AggregateType, EventCodec, EventPayload, Fields, TopicNames};
use ltf_tests::{count_rows as count, fresh_database, outbox_rows as outbox, registry_url, unique_prefix, TestDb};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Updates, deletes, caller transactions, request context and concurrency.
#[path = "usecases_records/changes.rs"]
mod changes;

const TABLE: &str = "tbl_tasks";

fn f(v: Value) -> Fields {
    v.as_object().cloned().expect("a JSON object")
}

/// A fresh database with the table `tbl_tasks`, and a codec on a topic prefix of its own.
async fn setup(test: &str) -> Result<(TestDb, EventCodec)> {
    let db = fresh_database().await?;
    let table = TableDef {
        id: TABLE.into(),
        name: "Tasks".into(),
        fields: vec![
            FieldDef::new("title", FieldType::Text),
            FieldDef::new("points", FieldType::Integer),
            FieldDef::new("done", FieldType::Boolean),
            FieldDef::new("due", FieldType::Date),
            FieldDef::new("meta", FieldType::Json),
        ],
    };
    tables::insert(&mut *db.pool.acquire().await?, &table).await?;
    let codec = EventCodec::new(&registry_url(), TopicNames::new(unique_prefix(test)))?;
    Ok((db, codec))
}

/// No record, no outbox row, no sequence handed out.
async fn assert_nothing_written(pool: &PgPool) -> Result<()> {
    assert_eq!(count(pool, "ltf_records").await?, 0, "records");
    assert_eq!(count(pool, "ltf_outbox").await?, 0, "outbox rows");
    assert_eq!(count(pool, "ltf_aggregate_sequences").await?, 0, "sequences");
    Ok(())
}

fn create(fields: Value) -> CreateRecordInput {
    CreateRecordInput { table_id: TABLE.into(), fields: f(fields) }
}

fn patch(id: &str, fields: Value, expected_version: Option<i64>) -> UpdateRecordInput {
    UpdateRecordInput { table_id: TABLE.into(), patch: RecordPatch { record_id: id.into(), fields: f(fields), expected_version } }
}

fn user() -> ChangeContext {
    ChangeContext::user("user_1")
}

#[tokio::test]
async fn creating_one_record_writes_one_row_and_one_outbox_row_that_decodes_to_record_created() -> Result<()> {
    let (db, codec) = setup("uc-create-one").await?;
    let fields = json!({"title": "Write tests", "points": 3, "done": false, "due": "2026-12-01", "meta": {"tags": ["a", 1]}});
    let out = CreateRecord.run(&db.pool, &codec, &user(), create(fields.clone())).await?;
    assert_eq!(out.value.fields, f(fields.clone()));
    assert_eq!(out.value.version, 1);
    assert_eq!(out.value.created_by.as_deref(), Some("user_1"));
    assert_eq!(count(&db.pool, "ltf_records").await?, 1);

    let rows = outbox(&db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.key, TABLE, "key = table id");
    assert_eq!((row.aggregate_type.as_str(), row.aggregate_id.as_str()), ("table", TABLE));
    assert_eq!(row.aggregate_sequence, 1);
    assert_eq!(row.event_type, "record-created");
    assert_eq!(row.topic, codec.topics().events(AggregateType::Table));
    assert!(row.sent_at.is_none());
    // A codec with empty caches: the writer schema comes from the registry by id.
    let reader = EventCodec::new(&registry_url(), codec.topics().clone())?;
    let decoded = reader.decode(&row.value).await?;
    assert_eq!(decoded, out.events[0]);
    assert_eq!(decoded.event_id(), row.event_id);
    assert_eq!(decoded.envelope.aggregate_sequence, 1);
    assert_eq!(decoded.envelope.causation_id, None);
    let EventPayload::RecordCreated(p) = &decoded.payload else { bail!("not RecordCreated: {decoded:?}") };
    assert_eq!(p.fields, f(fields));
    assert_eq!((p.table_id.as_str(), p.record_id.as_str()), (TABLE, out.value.id.as_str()));
    assert_eq!(p.record_version, 1);
    assert_eq!(p.created_by.as_deref(), Some("user_1"));
    assert_eq!(row.header("event-id"), Some(row.event_id.to_string().as_str()));
    assert_eq!(row.header("event-type"), Some("record-created"));
    assert_eq!(row.header("ordering-key"), Some(out.value.id.as_str()));
    assert_eq!(row.header("correlation-id"), Some(decoded.envelope.correlation_id.as_str()));
    db.drop_database().await
}

#[tokio::test]
async fn creating_100_in_one_batch_writes_100_rows_and_outbox_rows_with_sequences_1_to_100() -> Result<()> {
    let (db, codec) = setup("uc-create-100").await?;
    let records = (0..100).map(|i| f(json!({"title": format!("task {i}"), "points": i}))).collect();
    let input = CreateMultipleRecordsInput { table_id: TABLE.into(), records };
    let out = CreateMultipleRecords::default().run(&db.pool, &codec, &user(), input).await?;
    assert_eq!(out.value.len(), 100);
    assert_eq!(count(&db.pool, "ltf_records").await?, 100);
    let rows = outbox(&db.pool).await?;
    assert_eq!(rows.iter().map(|r| r.aggregate_sequence).collect::<Vec<_>>(), (1..=100).collect::<Vec<i64>>());
    for (i, (row, record)) in rows.iter().zip(&out.value).enumerate() {
        let EventPayload::RecordCreated(p) = codec.decode(&row.value).await?.payload else { bail!("not RecordCreated") };
        assert_eq!(p.record_id, record.id, "sequence {} is record {i}", i + 1);
        assert_eq!(p.fields["points"], json!(i));
    }
    let correlation = rows[0].header("correlation-id");
    assert!(rows.iter().all(|r| r.header("correlation-id") == correlation), "one request, one correlation id");
    db.drop_database().await
}

#[tokio::test]
async fn a_batch_with_one_invalid_record_writes_no_row_and_no_event() -> Result<()> {
    let (db, codec) = setup("uc-create-invalid").await?;
    let mut records: Vec<Fields> = (0..10).map(|i| f(json!({"title": format!("task {i}")}))).collect();
    records[7] = f(json!({"title": "bad", "points": 1.5}));
    let input = CreateMultipleRecordsInput { table_id: TABLE.into(), records };
    let err = CreateMultipleRecords::default().run(&db.pool, &codec, &user(), input).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::WrongFieldType { field, index: 7, .. } if field == "points"), "{err}");
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn an_unknown_table_is_unknown_table_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-unknown-table").await?;
    let input = CreateRecordInput { table_id: "tbl_nope".into(), fields: f(json!({"title": "x"})) };
    let err = CreateRecord.run(&db.pool, &codec, &user(), input).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::UnknownTable(t) if t == "tbl_nope"), "{err}");
    assert_eq!(status_of(&err).as_u16(), 404);
    let input = DeleteRecordInput { table_id: "tbl_nope".into(), record: RecordRef::any_version("r") };
    assert!(matches!(DeleteRecord.run(&db.pool, &codec, &user(), input).await, Err(UseCaseError::UnknownTable(_))));
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn an_unknown_field_is_unknown_field_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-unknown-field").await?;
    let err = CreateRecord.run(&db.pool, &codec, &user(), create(json!({"title": "x", "color": "red"}))).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::UnknownField { table, field, index: 0 } if table == TABLE && field == "color"), "{err}");
    assert_eq!(status_of(&err).as_u16(), 400);
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn a_wrong_field_type_is_wrong_field_type_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-wrong-type").await?;
    for (fields, field, expected, got) in [
        (json!({"points": "three"}), "points", FieldType::Integer, "string"),
        (json!({"done": 1}), "done", FieldType::Boolean, "number"),
        (json!({"due": "next week"}), "due", FieldType::Date, "a string that is not an ISO 8601 date or RFC 3339 date-time"),
    ] {
        let err = CreateRecord.run(&db.pool, &codec, &user(), create(fields)).await.unwrap_err();
        let UseCaseError::WrongFieldType { field: fe, expected: ex, got: g, .. } = &err else { bail!("{err}") };
        assert_eq!((fe.as_str(), *ex, g.as_str()), (field, expected, got));
    }
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn an_empty_batch_is_empty_batch_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-empty").await?;
    let create = CreateMultipleRecordsInput { table_id: TABLE.into(), records: vec![] };
    let err = CreateMultipleRecords::default().run(&db.pool, &codec, &user(), create).await.unwrap_err();
    assert!(matches!(err, UseCaseError::EmptyBatch), "{err}");
    let update = UpdateMultipleRecordsInput { table_id: TABLE.into(), patches: vec![] };
    let err = UpdateMultipleRecords::default().run(&db.pool, &codec, &user(), update).await.unwrap_err();
    assert!(matches!(err, UseCaseError::EmptyBatch), "{err}");
    let delete = DeleteMultipleRecordsInput { table_id: TABLE.into(), records: vec![] };
    let err = DeleteMultipleRecords::default().run(&db.pool, &codec, &user(), delete).await.unwrap_err();
    assert!(matches!(err, UseCaseError::EmptyBatch), "{err}");
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}

#[tokio::test]
async fn a_batch_over_the_configured_limit_is_batch_too_large_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-over-limit").await?;
    let limits = RecordLimits { max_batch: 5 };
    let records = (0..6).map(|i| f(json!({"points": i}))).collect();
    let input = CreateMultipleRecordsInput { table_id: TABLE.into(), records };
    let err = CreateMultipleRecords::new(limits).run(&db.pool, &codec, &user(), input).await.unwrap_err();
    assert!(matches!(err, UseCaseError::BatchTooLarge { size: 6, limit: 5 }), "{err}");
    assert_eq!(status_of(&err).as_u16(), 413);
    assert_nothing_written(&db.pool).await?;
    db.drop_database().await
}
