//! Table routes: `POST /v1/tables` creates a table and its field definitions (CreateTable;
//! no event: the contract has no table event).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::Caller;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, QueryParams};
use crate::api::write::{await_publication, event_ids, Publication, WriteErrors, WriteParams};
use crate::api::ApiState;
use ltf_domain::usecases::{CreateTable, UseCase};

pub use ltf_domain::usecases::requests::{CreateTableRequest, FieldDefView};

/// A table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableView {
    /// The table id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The field definitions.
    pub fields: Vec<FieldDefView>,
}

/// Answer of `POST /v1/tables`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableCreated {
    /// The table as stored.
    pub table: TableView,
    /// The events appended to the outbox (none: the contract has no table event).
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Creates a table (CreateTable).
#[utoipa::path(post, path = "/v1/tables", tag = "tables",
    params(WriteParams), request_body = CreateTableRequest,
    responses(
        (status = 201, description = "created", body = TableCreated),
        (status = 409, description = "a table with this id exists (`already_exists`); nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn create_table(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<CreateTableRequest>,
) -> Result<(StatusCode, Json<TableCreated>), ApiError> {
    let out = CreateTable.run(&state.pool, &state.codec, &ctx, req.input()).await?;
    let table = out.value;
    let s = await_publication(&state, &out.events, q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await;
    let view = TableView { id: table.id, name: table.name, fields: table.fields.into_iter().map(FieldDefView::from).collect() };
    let body = TableCreated { table: view, event_ids: event_ids(&out.events), publication: s.publication, message: s.message };
    Ok((s.status, Json(body)))
}
