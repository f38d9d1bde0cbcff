//! Updates and deletes, caller transactions, the request context, concurrent writers.

use ltf_producers::api::error::status_of;
use std::sync::Arc;

use anyhow::{bail, Result};
use ltf_domain::usecases::{
    CreateMultipleRecordsInput, DeleteMultipleRecordsInput, DeleteRecordInput, RecordPatch, RecordRef,
    UpdateMultipleRecordsInput, UseCase,
};
use ltf_domain::{
    ChangeContext, CreateMultipleRecords, CreateRecord, DeleteMultipleRecords, DeleteRecord, UpdateMultipleRecords, UpdateRecord,
    UseCaseError,
};
use ltf_schemas::{DomainEvent, EventPayload, Fields};
use serde_json::json;

use super::{assert_nothing_written, count, create, f, outbox, patch, setup, user, TABLE};

#[tokio::test]
async fn an_update_computes_changed_fields_from_the_stored_row_and_bumps_the_version() -> Result<()> {
    let (db, codec) = setup("uc-update").await?;
    let created = json!({"title": "a", "points": 1, "done": false, "meta": {"k": 1}});
    let rec = CreateRecord.run(&db.pool, &codec, &user(), create(created)).await?.value;
    // Another client changes `meta`; this request does not mention it.
    UpdateRecord.run(&db.pool, &codec, &user(), patch(&rec.id, json!({"meta": {"k": 2}}), None)).await?;
    // `title` is sent unchanged, `done` removed, `due` added, `points` changed.
    let request = json!({"title": "a", "points": 2, "done": null, "due": "2026-01-01"});
    let out = UpdateRecord.run(&db.pool, &codec, &user(), patch(&rec.id, request, Some(2))).await?;
    let current = f(json!({"title": "a", "points": 2, "meta": {"k": 2}, "due": "2026-01-01"}));
    assert_eq!(out.value.version, 3);
    assert_eq!(out.value.fields, current);

    let rows = outbox(&db.pool).await?;
    assert_eq!(rows.iter().map(|r| r.aggregate_sequence).collect::<Vec<_>>(), vec![1, 2, 3]);
    let decoded = codec.decode(&rows[2].value).await?;
    assert_eq!(decoded, out.events[0]);
    let EventPayload::RecordUpdated(p) = &decoded.payload else { bail!("not RecordUpdated: {decoded:?}") };
    assert_eq!(p.previous_fields, f(json!({"title": "a", "points": 1, "done": false, "meta": {"k": 2}})));
    assert_eq!(p.current_fields, current);
    assert_eq!(p.changed_fields, vec!["done", "due", "points"]);
    assert_eq!(p.record_version, 3);
    let stored = ltf_domain::store::records::get(&mut *db.pool.acquire().await?, &rec.id).await?;
    assert_eq!(stored.map(|r| (r.version, r.fields)), Some((3, current)));
    db.drop_database().await
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_no_outbox_row_and_keeps_the_version() -> Result<()> {
    let (db, codec) = setup("uc-update-noop").await?;
    let rec = CreateRecord.run(&db.pool, &codec, &user(), create(json!({"title": "a", "points": 1}))).await?.value;
    let out = UpdateRecord.run(&db.pool, &codec, &user(), patch(&rec.id, json!({"title": "a", "due": null}), Some(1))).await?;
    assert!(out.events.is_empty());
    assert_eq!(out.value, rec, "same fields, version and updated_at");
    let batch = UpdateMultipleRecordsInput {
        table_id: TABLE.into(),
        patches: vec![RecordPatch { record_id: rec.id.clone(), fields: f(json!({"points": 1})), expected_version: None }],
    };
    assert!(UpdateMultipleRecords::default().run(&db.pool, &codec, &user(), batch).await?.events.is_empty());
    assert_eq!(outbox(&db.pool).await?.len(), 1, "only the RecordCreated");
    db.drop_database().await
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_writes_nothing() -> Result<()> {
    let (db, codec) = setup("uc-stale").await?;
    let a = CreateRecord.run(&db.pool, &codec, &user(), create(json!({"points": 1}))).await?.value;
    let b = CreateRecord.run(&db.pool, &codec, &user(), create(json!({"points": 1}))).await?.value;
    UpdateRecord.run(&db.pool, &codec, &user(), patch(&a.id, json!({"points": 2}), Some(1))).await?;

    let err = UpdateRecord.run(&db.pool, &codec, &user(), patch(&a.id, json!({"points": 3}), Some(1))).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::StaleVersion { record_id, expected: 1, actual: 2 } if *record_id == a.id), "{err}");
    assert!(err.is_conflict());
    assert_eq!(status_of(&err).as_u16(), 409);
    // In a batch, one stale patch refuses the valid one too.
    let batch = UpdateMultipleRecordsInput {
        table_id: TABLE.into(),
        patches: vec![
            RecordPatch { record_id: b.id.clone(), fields: f(json!({"points": 9})), expected_version: Some(1) },
            RecordPatch { record_id: a.id.clone(), fields: f(json!({"points": 9})), expected_version: Some(1) },
        ],
    };
    let err = UpdateMultipleRecords::default().run(&db.pool, &codec, &user(), batch).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let delete =
        DeleteRecordInput { table_id: TABLE.into(), record: RecordRef { record_id: a.id.clone(), expected_version: Some(1) } };
    assert!(DeleteRecord.run(&db.pool, &codec, &user(), delete).await.unwrap_err().is_conflict());

    let mut conn = db.pool.acquire().await?;
    let stored_a = ltf_domain::store::records::get(&mut conn, &a.id).await?.map(|r| (r.version, r.fields));
    let stored_b = ltf_domain::store::records::get(&mut conn, &b.id).await?.map(|r| (r.version, r.fields));
    assert_eq!(stored_a, Some((2, f(json!({"points": 2})))));
    assert_eq!(stored_b, Some((1, f(json!({"points": 1})))));
    assert_eq!(outbox(&db.pool).await?.len(), 3, "two creates and one update");
    drop(conn);
    db.drop_database().await
}

#[tokio::test]
async fn a_delete_emits_record_deleted_with_the_deleted_fields() -> Result<()> {
    let (db, codec) = setup("uc-delete").await?;
    let rec = CreateRecord.run(&db.pool, &codec, &user(), create(json!({"title": "a", "points": 1}))).await?.value;
    UpdateRecord.run(&db.pool, &codec, &user(), patch(&rec.id, json!({"points": 2}), None)).await?;
    let input =
        DeleteRecordInput { table_id: TABLE.into(), record: RecordRef { record_id: rec.id.clone(), expected_version: Some(2) } };
    let out = DeleteRecord.run(&db.pool, &codec, &user(), input).await?;
    assert_eq!(count(&db.pool, "ltf_records").await?, 0);
    let rows = outbox(&db.pool).await?;
    assert_eq!((rows.len(), rows[2].aggregate_sequence, rows[2].event_type.as_str()), (3, 3, "record-deleted"));
    let decoded = codec.decode(&rows[2].value).await?;
    assert_eq!(decoded, out.events[0]);
    let EventPayload::RecordDeleted(p) = &decoded.payload else { bail!("not RecordDeleted: {decoded:?}") };
    assert_eq!(p.deleted_fields, f(json!({"title": "a", "points": 2})));
    assert_eq!((p.record_id.as_str(), p.record_version), (rec.id.as_str(), 3));

    // A batch naming a missing record deletes nothing.
    let recs = CreateMultipleRecords::default()
        .run(
            &db.pool,
            &codec,
            &user(),
            CreateMultipleRecordsInput { table_id: TABLE.into(), records: vec![f(json!({"points": 1})); 3] },
        )
        .await?
        .value;
    let refs = |ids: &[&str]| ids.iter().map(|id| RecordRef::any_version(*id)).collect::<Vec<_>>();
    let input = DeleteMultipleRecordsInput { table_id: TABLE.into(), records: refs(&[recs[0].id.as_str(), "rec_missing"]) };
    let err = DeleteMultipleRecords::default().run(&db.pool, &codec, &user(), input).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::RecordNotFound { record_id, .. } if record_id == "rec_missing"), "{err}");
    assert_eq!(count(&db.pool, "ltf_records").await?, 3);
    // A record named twice is deleted once.
    let input = DeleteMultipleRecordsInput {
        table_id: TABLE.into(),
        records: refs(&[&recs[0].id, &recs[1].id, &recs[0].id].map(String::as_str)),
    };
    let out = DeleteMultipleRecords::default().run(&db.pool, &codec, &user(), input).await?;
    assert_eq!(out.events.len(), 2);
    assert_eq!(count(&db.pool, "ltf_records").await?, 1);
    assert_eq!(outbox(&db.pool).await?.iter().map(|r| r.aggregate_sequence).max(), Some(8));
    db.drop_database().await
}

#[tokio::test]
async fn a_rolled_back_caller_transaction_leaves_neither_rows_nor_outbox_rows() -> Result<()> {
    let (db, codec) = setup("uc-rollback").await?;
    let mut tx = db.pool.begin().await?;
    let records = vec![f(json!({"points": 1})), f(json!({"points": 2}))];
    let recs = CreateMultipleRecords::default()
        .execute(&mut tx, &codec, &user(), CreateMultipleRecordsInput { table_id: TABLE.into(), records })
        .await?
        .value;
    UpdateRecord.execute(&mut tx, &codec, &user(), patch(&recs[0].id, json!({"points": 5}), Some(1))).await?;
    let input = DeleteRecordInput { table_id: TABLE.into(), record: RecordRef::any_version(&recs[1].id) };
    DeleteRecord.execute(&mut tx, &codec, &user(), input).await?;
    tx.rollback().await?;
    assert_nothing_written(&db.pool).await?;
    // The rolled-back sequence numbers are handed out again: no gap.
    CreateRecord.run(&db.pool, &codec, &user(), create(json!({}))).await?;
    assert_eq!(outbox(&db.pool).await?.iter().map(|r| r.aggregate_sequence).collect::<Vec<_>>(), vec![1]);
    db.drop_database().await
}

#[tokio::test]
async fn use_cases_in_one_caller_transaction_commit_together_and_a_refused_one_leaves_it_usable() -> Result<()> {
    let (db, codec) = setup("uc-caller-tx").await?;
    let mut tx = db.pool.begin().await?;
    let rec = CreateRecord.execute(&mut tx, &codec, &user(), create(json!({"points": 1}))).await?.value;
    let refused = UpdateRecord.execute(&mut tx, &codec, &user(), patch(&rec.id, json!({"points": 2}), Some(7))).await;
    assert!(refused.unwrap_err().is_conflict());
    UpdateRecord.execute(&mut tx, &codec, &user(), patch(&rec.id, json!({"points": 2}), Some(1))).await?;
    assert_eq!(count(&db.pool, "ltf_outbox").await?, 0, "nothing visible before the caller commits");
    tx.commit().await?;
    let rows = outbox(&db.pool).await?;
    let seen: Vec<_> = rows.iter().map(|r| (r.aggregate_sequence, r.event_type.as_str())).collect();
    assert_eq!(seen, vec![(1, "record-created"), (2, "record-updated")]);
    db.drop_database().await
}

#[tokio::test]
async fn the_request_context_is_stamped_on_events_and_stored_headers() -> Result<()> {
    let (db, codec) = setup("uc-context").await?;
    let cause = DomainEvent::new(EventPayload::FormSubmitted(ltf_schemas::FormSubmitted {
        form_id: "form_1".into(),
        submission_id: "sub_1".into(),
        data: Fields::new().into(),
        submitted_by: None,
    }))
    .with_correlation_id("flow-7");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ctx = ChangeContext { user_id: Some("user_9".into()), ..ChangeContext::caused_by(&cause) }.with_traceparent(traceparent);
    let out = CreateRecord.run(&db.pool, &codec, &ctx, create(json!({"title": "from a form"}))).await?;
    let rows = outbox(&db.pool).await?;
    let row = &rows[0];
    assert_eq!(row.header("traceparent"), Some(traceparent));
    assert_eq!(row.header("correlation-id"), Some("flow-7"));
    assert_eq!(row.header("causation-id"), Some(cause.event_id().to_string().as_str()));
    let decoded = codec.decode(&row.value).await?;
    assert_eq!(decoded, out.events[0]);
    assert_eq!(decoded.envelope.correlation_id, "flow-7");
    assert_eq!(decoded.envelope.causation_id, Some(cause.event_id().to_string()));
    assert_eq!(out.value.created_by.as_deref(), Some("user_9"));
    db.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_one_table_get_unique_gap_free_sequences_in_commit_order() -> Result<()> {
    let (db, codec) = setup("uc-concurrent").await?;
    let codec = Arc::new(codec);
    let (tasks, per_task) = (8, 20);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (pool, codec) = (db.pool.clone(), codec.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let input = create(json!({"title": format!("task {t}/{i}")}));
                CreateRecord.run(&pool, &codec, &ChangeContext::default(), input).await?;
            }
            Ok::<_, UseCaseError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let n = tasks * per_task;
    assert_eq!(count(&db.pool, "ltf_records").await?, n);
    // In id (insertion) order the sequences are 1..=n: unique, gap-free, and a later
    // sequence was never inserted before an earlier one.
    let seqs: Vec<i64> = outbox(&db.pool).await?.iter().map(|r| r.aggregate_sequence).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    db.drop_database().await
}
