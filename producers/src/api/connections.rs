//! Connection routes: `POST /v1/connections` authenticates a connection to an external
//! service (AuthenticateConnection): the OAuth2 grant is exchanged at the service's token
//! endpoint before any transaction; the tokens are stored encrypted, never returned; the
//! first time a connection holds credentials its ConnectionEstablished is written with it.

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
use ltf_domain::usecases::{ServiceConnection, UseCase};

pub use ltf_domain::usecases::requests::{AuthenticateConnectionRequest, GrantDoc};

/// Answer of `POST /v1/connections`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionAuthenticated {
    /// The connection.
    pub connection: ServiceConnection,
    /// Its ConnectionEstablished, when it was established now (none on re-authentication).
    pub event_ids: Vec<Uuid>,
    /// Where the events are.
    pub publication: Publication,
    /// Set on 202: the event is queued, not lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Authenticates a connection (AuthenticateConnection).
#[utoipa::path(post, path = "/v1/connections", tag = "connections",
    params(WriteParams), request_body = AuthenticateConnectionRequest,
    responses(
        (status = 201, description = "established: credentials stored, ConnectionEstablished in the outbox", body = ConnectionAuthenticated),
        (status = 200, description = "re-authenticated: credentials replaced, no event", body = ConnectionAuthenticated),
        (status = 202, description = "established; `waitForPublish` timed out, the event is queued", body = ConnectionAuthenticated),
        (status = 409, description = "the connection exists for another service or user; nothing was written", body = ErrorBody),
        (status = 422, description = "the service refused the grant (`credentials_refused`); nothing was written", body = ErrorBody),
        (status = 502, description = "the token endpoint refused this deployment's client or answered nonsense", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn authenticate_connection(
    State(state): State<ApiState>,
    Caller(ctx): Caller,
    QueryParams(q): QueryParams<WriteParams>,
    Body(req): Body<AuthenticateConnectionRequest>,
) -> Result<(StatusCode, Json<ConnectionAuthenticated>), ApiError> {
    let input = req.input(ctx.user_id.clone());
    let out = state.connect.run(&state.pool, &state.codec, &ctx, input).await?;
    let done = if out.events.is_empty() { StatusCode::OK } else { StatusCode::CREATED };
    let s = await_publication(&state, &out.events, q.wait_for_publish.unwrap_or(false), done).await;
    let body = ConnectionAuthenticated {
        connection: out.value,
        event_ids: event_ids(&out.events),
        publication: s.publication,
        message: s.message,
    };
    Ok((s.status, Json(body)))
}
