//! Record routes: the six record use cases and a read, under `/v1/tables/{tableId}/records`.
//!
//! Creations answer 201, updates and deletes 200 (202 when `?waitForPublish=true` timed
//! out), each with the records written (for deletes, as they were) and the eventIds
//! appended to the outbox. Batches are all-or-nothing; a refused request writes nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ltf_schemas::Fields;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::context::Caller;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, PathParams, QueryParams};
use crate::api::write::{await_publication, event_ids, Publication, WriteErrors, WriteParams};
use crate::api::ApiState;
use ltf_domain::store::{records, tables};
use ltf_domain::usecases::{
    CreateMultipleRecords, CreateRecord, DeleteMultipleRecords, DeleteRecord, DeleteRecordInput, Outcome, Record, RecordRef,
    UpdateMultipleRecords, UpdateRecord, UseCase, UseCaseError,
};

pub use ltf_domain::usecases::requests::{
    CreateRecordRequest, CreateRecordsRequest, DeleteRecordsRequest, RecordPatchRequest, RecordRefRequest, UpdateRecordRequest,
    UpdateRecordsRequest,
};

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    /// The record id.
    pub id: String,
    /// Its table.
    pub table_id: String,
    /// Its field values.
    #[schema(value_type = Object)]
    pub fields: Fields,
    /// 1 when created, one more with every change (events carry it as recordVersion).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The principal that created it.
    pub created_by: Option<String>,
}

impl From<Record> for RecordView {
    fn from(r: Record) -> RecordView {
        RecordView {
            id: r.id,
            table_id: r.table_id,
            fields: r.fields,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            created_by: r.created_by,
        }
    }
}

/// Query of `DELETE /v1/tables/{tableId}/records/{recordId}`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Delete only if the record is at this version (409 otherwise).
    pub expected_version: Option<i64>,
    /// As for every write: answer once the events are published.
    pub wait_for_publish: Option<bool>,
}

/// Answer of a write of one record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordWritten {
    /// The record as written (for a delete, as it was).
    pub record: RecordView,
    /// The events appended to the outbox, in order (none for an update that changed nothing).
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202: the events are queued, not lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answer of a batch write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsWritten {
    /// The records as written (for deletes, as they were), in request order.
    pub records: Vec<RecordView>,
    /// The events appended to the outbox, in order.
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202: the events are queued, not lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answer of `GET /v1/tables/{tableId}/records/{recordId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordFound {
    /// The record.
    pub record: RecordView,
}

/// Path of the table routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct TablePath {
    /// The table id.
    pub table_id: String,
}

/// Path of one record.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct RecordPath {
    /// The table id.
    pub table_id: String,
    /// The record id.
    pub record_id: String,
}

type Answer<T> = Result<(StatusCode, Json<T>), ApiError>;

async fn one(state: &ApiState, out: Outcome<Record>, wait: bool, done: StatusCode) -> (StatusCode, Json<RecordWritten>) {
    let s = await_publication(state, &out.events, wait, done).await;
    let body = RecordWritten {
        record: out.value.into(),
        event_ids: event_ids(&out.events),
        publication: s.publication,
        message: s.message,
    };
    (s.status, Json(body))
}

async fn many(state: &ApiState, out: Outcome<Vec<Record>>, wait: bool, done: StatusCode) -> (StatusCode, Json<RecordsWritten>) {
    let s = await_publication(state, &out.events, wait, done).await;
    let body = RecordsWritten {
        records: out.value.into_iter().map(RecordView::from).collect(),
        event_ids: event_ids(&out.events),
        publication: s.publication,
        message: s.message,
    };
    (s.status, Json(body))
}

/// Creates a record (CreateRecord).
#[utoipa::path(post, path = "/v1/tables/{tableId}/records", tag = "records",
    params(TablePath, WriteParams), request_body = CreateRecordRequest,
    responses(
        (status = 201, description = "created; its RecordCreated is in the outbox", body = RecordWritten),
        (status = 202, description = "created; `waitForPublish` timed out, the event is queued", body = RecordWritten),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn create_record(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<TablePath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<CreateRecordRequest>,
) -> Answer<RecordWritten> {
    let input = req.input(path.table_id);
    let out = CreateRecord.run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(one(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await)
}

/// Creates records, all or none (CreateMultipleRecords).
#[utoipa::path(post, path = "/v1/tables/{tableId}/records/batch", tag = "records",
    params(TablePath, WriteParams), request_body = CreateRecordsRequest,
    responses(
        (status = 201, description = "all created; one RecordCreated each in the outbox", body = RecordsWritten),
        (status = 202, description = "all created; `waitForPublish` timed out, the events are queued", body = RecordsWritten),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn create_records(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<TablePath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<CreateRecordsRequest>,
) -> Answer<RecordsWritten> {
    let input = req.input(path.table_id);
    let out = CreateMultipleRecords::new(state.config.records).run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(many(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await)
}

/// Updates a record (UpdateRecord).
#[utoipa::path(patch, path = "/v1/tables/{tableId}/records/{recordId}", tag = "records",
    params(RecordPath, WriteParams), request_body = UpdateRecordRequest,
    responses(
        (status = 200, description = "updated (or unchanged, with no event)", body = RecordWritten),
        (status = 202, description = "updated; `waitForPublish` timed out, the event is queued", body = RecordWritten),
        (status = 409, description = "`expectedVersion` is stale; nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn update_record(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<RecordPath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<UpdateRecordRequest>,
) -> Answer<RecordWritten> {
    let input = req.input(path.table_id, path.record_id);
    let out = UpdateRecord.run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(one(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::OK).await)
}

/// Updates records, all or none (UpdateMultipleRecords).
#[utoipa::path(patch, path = "/v1/tables/{tableId}/records", tag = "records",
    params(TablePath, WriteParams), request_body = UpdateRecordsRequest,
    responses(
        (status = 200, description = "all updated; one RecordUpdated per effective change", body = RecordsWritten),
        (status = 202, description = "all updated; `waitForPublish` timed out, the events are queued", body = RecordsWritten),
        (status = 409, description = "an `expectedVersion` is stale; nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn update_records(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<TablePath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<UpdateRecordsRequest>,
) -> Answer<RecordsWritten> {
    let input = req.input(path.table_id);
    let out = UpdateMultipleRecords::new(state.config.records).run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(many(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::OK).await)
}

/// Deletes a record (DeleteRecord).
#[utoipa::path(delete, path = "/v1/tables/{tableId}/records/{recordId}", tag = "records",
    params(RecordPath, DeleteParams),
    responses(
        (status = 200, description = "deleted; the record as it was", body = RecordWritten),
        (status = 202, description = "deleted; `waitForPublish` timed out, the event is queued", body = RecordWritten),
        (status = 409, description = "`expectedVersion` is stale; nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn delete_record(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<RecordPath>,
    QueryParams(q): QueryParams<DeleteParams>,
) -> Answer<RecordWritten> {
    let record = RecordRef { record_id: path.record_id, expected_version: q.expected_version };
    let input = DeleteRecordInput { table_id: path.table_id, record };
    let out = DeleteRecord.run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(one(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::OK).await)
}

/// Deletes records, all or none (DeleteMultipleRecords).
#[utoipa::path(post, path = "/v1/tables/{tableId}/records/delete", tag = "records",
    params(TablePath, WriteParams), request_body = DeleteRecordsRequest,
    responses(
        (status = 200, description = "all deleted; the records as they were", body = RecordsWritten),
        (status = 202, description = "all deleted; `waitForPublish` timed out, the events are queued", body = RecordsWritten),
        (status = 409, description = "an `expectedVersion` is stale; nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn delete_records(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<TablePath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<DeleteRecordsRequest>,
) -> Answer<RecordsWritten> {
    let input = req.input(path.table_id);
    let out = DeleteMultipleRecords::new(state.config.records).run(&state.pool, &state.codec, &ctx, input).await?;
    Ok(many(&state, out, q.wait_for_publish.unwrap_or(false), StatusCode::OK).await)
}

/// Reads a record.
#[utoipa::path(get, path = "/v1/tables/{tableId}/records/{recordId}", tag = "records",
    params(RecordPath),
    responses(
        (status = 200, description = "the record", body = RecordFound),
        (status = 401, description = "missing or unknown API key", body = ErrorBody),
        (status = 404, description = "unknown table or record", body = ErrorBody),
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn get_record(
    State(state): State<ApiState>,
    _caller: Caller,
    PathParams(path): PathParams<RecordPath>,
) -> Result<Json<RecordFound>, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(UseCaseError::from)?;
    let record = records::get(&mut conn, &path.record_id).await.map_err(UseCaseError::from)?;
    match record {
        Some(r) if r.table_id == path.table_id => Ok(Json(RecordFound { record: r.into() })),
        _ => {
            // Outside a transaction the share lock ends with the statement.
            let table = tables::find_for_share(&mut conn, &path.table_id).await.map_err(UseCaseError::from)?;
            Err(match table {
                None => UseCaseError::UnknownTable(path.table_id),
                Some(_) => UseCaseError::RecordNotFound { table: path.table_id, record_id: path.record_id },
            }
            .into())
        }
    }
}
