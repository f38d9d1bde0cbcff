//! The OpenAPI 3.1 document of the API, built from the handlers' annotations and served at
//! `GET /openapi.json` (outside the API key). It lists every route, its request and answer
//! schemas, the error body and the two ways to present the API key.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::error::{ErrorBody, ErrorDetail};
use crate::api::{automations, connections, forms, health, records, scrape, tables, write};

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "LaTeChforce event pipeline API",
        description = "Use cases over HTTP: each write commits its rows and its events (transactional outbox) \
                       before it answers. Errors answer `{\"error\": {\"code\", \"message\", \"requestId\"}}`."
    ),
    paths(
        tables::create_table,
        forms::create_form,
        forms::submit_form,
        connections::authenticate_connection,
        automations::create_automation,
        automations::list_automations,
        automations::get_automation,
        automations::list_runs,
        records::create_record,
        records::create_records,
        records::update_record,
        records::update_records,
        records::delete_record,
        records::delete_records,
        records::get_record,
        health::healthz,
        health::readyz,
        scrape::metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail, write::Publication)),
    modifiers(&Security),
    tags(
        (name = "tables", description = "Tables and their field definitions"),
        (name = "records", description = "Records: create, update, delete one or a batch; read"),
        (name = "forms", description = "Forms and their submissions"),
        (name = "connections", description = "Connections to external services (OAuth2)"),
        (name = "automations", description = "Automation definitions and their runs"),
        (name = "health", description = "Liveness, readiness, metrics and this document (no API key)"),
    )
)]
pub struct ApiDoc;

/// Adds the API-key security schemes: `bearer` (`Authorization: Bearer <key>`) and
/// `apiKey` (`X-Api-Key: <key>`).
#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("an API key as bearer token")).build(),
            ),
        );
        components.add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "this document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(DOCUMENT.clone())
}
