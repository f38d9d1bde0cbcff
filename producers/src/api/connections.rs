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
use ltf_domain::usecases::{AuthenticateConnectionInput, OAuthGrant, ServiceConnection, UseCase};

/// Body of `POST /v1/connections`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticateConnectionRequest {
    /// The connection to (re-)authenticate; `conn_<uuid>` when absent (a new connection).
    pub connection_id: Option<String>,
    /// The service, a name configured under `connections.services`.
    pub service: String,
    /// The user who connects; the API key's principal when absent.
    pub user_id: Option<String>,
    /// The OAuth2 grant to exchange.
    #[schema(value_type = GrantDoc)]
    pub grant: OAuthGrant,
}

/// The OAuth2 grant, tagged by `grantType` (for the OpenAPI document).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "grantType", rename_all = "snake_case")]
pub enum GrantDoc {
    /// An authorization code from the service's redirect.
    #[serde(rename_all = "camelCase")]
    AuthorizationCode {
        /// The code.
        code: String,
        /// The `redirect_uri` of the authorization request, if it had one.
        redirect_uri: Option<String>,
        /// The PKCE code verifier, if the authorization request had a challenge.
        code_verifier: Option<String>,
    },
    /// A refresh token.
    #[serde(rename_all = "camelCase")]
    RefreshToken {
        /// The refresh token.
        refresh_token: String,
        /// Narrower scopes, if any.
        scopes: Option<Vec<String>>,
    },
    /// The deployment's own client credentials.
    #[serde(rename_all = "camelCase")]
    ClientCredentials {
        /// Scopes to ask for, if any.
        scopes: Option<Vec<String>>,
    },
}

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
    let user_id = req.user_id.or_else(|| ctx.user_id.clone()).unwrap_or_default();
    let input = AuthenticateConnectionInput { connection_id: req.connection_id, service: req.service, user_id, grant: req.grant };
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
