//! Table routes: `POST /v1/tables` creates a table and its field definitions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::Caller;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, QueryParams};
use crate::api::write::{settle, Publication, WriteErrors, WriteParams};
use crate::api::ApiState;
use crate::store::tables::{self, FieldDef, FieldType, TableDef};
use crate::usecases::UseCaseError;

/// One field definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDefView {
    /// The field name, the key in a record's fields.
    pub name: String,
    /// `text`, `number`, `integer`, `boolean`, `date`, `json` or `link`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "text")]
    pub field_type: FieldType,
}

/// Body of `POST /v1/tables`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTableRequest {
    /// The table id (letters, digits, `_` and `-`, at most 128); generated when absent.
    pub id: Option<String>,
    /// The display name.
    pub name: String,
    /// The field definitions, in order; names unique.
    pub fields: Vec<FieldDefView>,
}

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
    /// The events appended to the outbox (the event contract has no table event: empty).
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check(req: &CreateTableRequest) -> Result<(), ApiError> {
    if req.id.as_deref().is_some_and(|id| !is_id(id)) {
        return Err(ApiError::bad_request("invalid_table", "`id` must be 1 to 128 letters, digits, `_` or `-`"));
    }
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_table", "`name` must not be empty"));
    }
    for (i, f) in req.fields.iter().enumerate() {
        if f.name.is_empty() {
            return Err(ApiError::bad_request("invalid_table", format!("fields[{i}].name must not be empty")));
        }
        if req.fields[..i].iter().any(|g| g.name == f.name) {
            return Err(ApiError::bad_request("invalid_table", format!("field `{}` is defined twice", f.name)));
        }
    }
    Ok(())
}

/// Creates a table.
#[utoipa::path(post, path = "/v1/tables", tag = "tables",
    params(WriteParams), request_body = CreateTableRequest,
    responses(
        (status = 201, description = "created", body = TableCreated),
        (status = 409, description = "a table with this id exists; nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn create_table(
    State(state): State<ApiState>,
    _caller: Caller,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<CreateTableRequest>,
) -> Result<(StatusCode, Json<TableCreated>), ApiError> {
    check(&req)?;
    let id = req.id.unwrap_or_else(|| format!("tbl_{}", Uuid::new_v4().simple()));
    let fields: Vec<FieldDef> = req.fields.into_iter().map(|f| FieldDef::new(f.name, f.field_type)).collect();
    let table = TableDef { id, name: req.name, fields };
    let mut conn = state.pool.acquire().await.map_err(UseCaseError::from)?;
    match tables::insert(&mut conn, &table).await {
        Ok(()) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(ApiError::new(StatusCode::CONFLICT, "table_exists", format!("table {} exists", table.id)));
        }
        Err(e) => return Err(UseCaseError::from(e).into()),
    }
    let s = settle(&state, &[], q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await;
    let view = TableView {
        id: table.id,
        name: table.name,
        fields: table.fields.into_iter().map(|f| FieldDefView { name: f.name, field_type: f.field_type }).collect(),
    };
    Ok((s.status, Json(TableCreated { table: view, event_ids: vec![], publication: s.publication, message: s.message })))
}
