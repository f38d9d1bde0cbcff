//! Automation routes: `POST /v1/automations` stores a definition (CreateAutomation, no
//! event); `GET /v1/automations[/{automationId}]` reads them; `GET
//! /v1/automations/{automationId}/runs` lists its latest runs with their steps.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::context::Caller;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, PathParams, QueryParams};
use crate::api::write::WriteErrors;
use crate::api::ApiState;
use ltf_domain::automations::{store, Automation, AutomationRun};
use ltf_domain::usecases::{CreateAutomation, UseCase, UseCaseError};

/// Path of one automation.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct AutomationPath {
    /// The automation id.
    pub automation_id: String,
}

/// Query of `GET /v1/automations/{automationId}/runs`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// How many runs, newest first (1–1000, default 50).
    pub limit: Option<i64>,
}

/// One automation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutomationFound {
    /// The definition.
    pub automation: Automation,
}

/// Every automation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutomationList {
    /// The definitions, by id.
    pub automations: Vec<Automation>,
}

/// Runs of an automation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<AutomationRun>,
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_automation", format!("automation {id} does not exist"))
}

#[utoipa::path(post, path = "/v1/automations", tag = "automations", request_body = Automation,
    responses(
        (status = 201, description = "stored; the automation worker applies it to events from now on", body = AutomationFound),
        (status = 409, description = "an automation with this id exists (`already_exists`)", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
/// Stores an automation definition.
pub async fn create_automation(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    Body(req): Body<Automation>,
) -> Result<(StatusCode, Json<AutomationFound>), ApiError> {
    let out = CreateAutomation.run(&state.pool, &state.codec, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(AutomationFound { automation: out.value })))
}

#[utoipa::path(get, path = "/v1/automations", tag = "automations",
    responses((status = 200, description = "every automation", body = AutomationList)),
    security(("bearer" = []), ("apiKey" = [])))]
/// Lists the automations.
pub async fn list_automations(State(state): State<ApiState>, _caller: Caller) -> Result<Json<AutomationList>, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(UseCaseError::from)?;
    let automations = store::list(&mut conn).await.map_err(UseCaseError::from)?;
    Ok(Json(AutomationList { automations }))
}

#[utoipa::path(get, path = "/v1/automations/{automationId}", tag = "automations", params(AutomationPath),
    responses(
        (status = 200, description = "the automation", body = AutomationFound),
        (status = 404, description = "unknown automation", body = ErrorBody),
    ),
    security(("bearer" = []), ("apiKey" = [])))]
/// Reads one automation.
pub async fn get_automation(
    State(state): State<ApiState>,
    _caller: Caller,
    PathParams(path): PathParams<AutomationPath>,
) -> Result<Json<AutomationFound>, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(UseCaseError::from)?;
    let found = store::get(&mut conn, &path.automation_id).await.map_err(UseCaseError::from)?;
    found.map(|automation| Json(AutomationFound { automation })).ok_or_else(|| unknown(&path.automation_id))
}

#[utoipa::path(get, path = "/v1/automations/{automationId}/runs", tag = "automations", params(AutomationPath, RunsQuery),
    responses(
        (status = 200, description = "its latest runs with their steps", body = RunList),
        (status = 400, description = "limit out of range", body = ErrorBody),
        (status = 404, description = "unknown automation", body = ErrorBody),
    ),
    security(("bearer" = []), ("apiKey" = [])))]
/// Lists an automation's latest runs.
pub async fn list_runs(
    State(state): State<ApiState>,
    _caller: Caller,
    PathParams(path): PathParams<AutomationPath>,
    QueryParams(q): QueryParams<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "limit must be between 1 and 1000"));
    }
    let mut conn = state.pool.acquire().await.map_err(UseCaseError::from)?;
    if store::get(&mut conn, &path.automation_id).await.map_err(UseCaseError::from)?.is_none() {
        return Err(unknown(&path.automation_id));
    }
    let runs = store::runs(&mut conn, Some(&path.automation_id), limit).await.map_err(UseCaseError::from)?;
    Ok(Json(RunList { runs }))
}
