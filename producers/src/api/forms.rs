//! Form routes: `POST /v1/forms` creates a form (CreateForm, no event);
//! `POST /v1/forms/{formId}/submissions` submits one (SubmitForm: the submission and its
//! FormSubmitted, committed together).

use std::collections::BTreeMap;

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
use ltf_domain::store::forms::{FormDef, FormSubmission};
use ltf_domain::usecases::requests::FieldDefView;
use ltf_domain::usecases::{CreateForm, SubmitForm, UseCase};

pub use ltf_domain::usecases::requests::{CreateFormRequest, SubmitFormRequest};

/// A form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormView {
    /// The form id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The table its submissions feed.
    pub table_id: Option<String>,
    /// Its field definitions.
    pub fields: Vec<FieldDefView>,
    /// Form field → table field.
    pub field_mapping: BTreeMap<String, String>,
}

impl From<FormDef> for FormView {
    fn from(f: FormDef) -> FormView {
        FormView {
            id: f.id,
            name: f.name,
            table_id: f.table_id,
            fields: f.fields.into_iter().map(FieldDefView::from).collect(),
            field_mapping: f.field_mapping,
        }
    }
}

/// Answer of `POST /v1/forms`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormCreated {
    /// The form as stored.
    pub form: FormView,
    /// The events appended to the outbox (none: the contract has no form event).
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A stored submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionView {
    /// The submission id.
    pub id: String,
    /// The form submitted.
    pub form_id: String,
    /// The submitted values.
    #[schema(value_type = Object)]
    pub data: Fields,
    /// The principal that submitted it.
    pub submitted_by: Option<String>,
    /// When it was stored.
    pub submitted_at: DateTime<Utc>,
}

impl From<FormSubmission> for SubmissionView {
    fn from(s: FormSubmission) -> SubmissionView {
        SubmissionView { id: s.id, form_id: s.form_id, data: s.data, submitted_by: s.submitted_by, submitted_at: s.submitted_at }
    }
}

/// Answer of `POST /v1/forms/{formId}/submissions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionWritten {
    /// The submission as stored.
    pub submission: SubmissionView,
    /// Its FormSubmitted event in the outbox.
    pub event_ids: Vec<Uuid>,
    /// Where the event is.
    pub publication: Publication,
    /// Set on 202: the event is queued, not lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Path of a form.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct FormPath {
    /// The form id.
    pub form_id: String,
}

/// Creates a form (CreateForm).
#[utoipa::path(post, path = "/v1/forms", tag = "forms",
    params(WriteParams), request_body = CreateFormRequest,
    responses(
        (status = 201, description = "created", body = FormCreated),
        (status = 409, description = "a form with this id exists (`already_exists`); nothing was written", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn create_form(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<CreateFormRequest>,
) -> Result<(StatusCode, Json<FormCreated>), ApiError> {
    let out = CreateForm.run(&state.pool, &state.codec, &ctx, req.input()).await?;
    let s = await_publication(&state, &out.events, q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await;
    let body =
        FormCreated { form: out.value.into(), event_ids: event_ids(&out.events), publication: s.publication, message: s.message };
    Ok((s.status, Json(body)))
}

/// Submits a form (SubmitForm).
#[utoipa::path(post, path = "/v1/forms/{formId}/submissions", tag = "forms",
    params(FormPath, WriteParams), request_body = SubmitFormRequest,
    responses(
        (status = 201, description = "stored; its FormSubmitted is in the outbox", body = SubmissionWritten),
        (status = 202, description = "stored; `waitForPublish` timed out, the event is queued", body = SubmissionWritten),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn submit_form(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    PathParams(path): PathParams<FormPath>,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<SubmitFormRequest>,
) -> Result<(StatusCode, Json<SubmissionWritten>), ApiError> {
    let out = SubmitForm.run(&state.pool, &state.codec, &ctx, req.input(path.form_id)).await?;
    let s = await_publication(&state, &out.events, q.wait_for_publish.unwrap_or(false), StatusCode::CREATED).await;
    let body = SubmissionWritten {
        submission: out.value.into(),
        event_ids: event_ids(&out.events),
        publication: s.publication,
        message: s.message,
    };
    Ok((s.status, Json(body)))
}
