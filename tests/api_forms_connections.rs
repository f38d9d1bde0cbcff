//! Forms, form submissions and connections over HTTP, against a real PostgreSQL (one fresh
//! database per test), the real schema registry (one topic prefix per test) and, for
//! connections, an OAuth2 token endpoint served by the test on 127.0.0.1:0.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ltf_domain::connections::Secret;
use ltf_domain::{ConnectionsConfig, OAuthServiceConfig};
use ltf_schemas::{AggregateType, EventCodec, EventPayload};
use ltf_tests::api::{error_with, json_with, TestApi, PRINCIPAL};
use ltf_tests::{outbox_rows, registry_url};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CLIENT_ID: &str = "api-client";
const CLIENT_SECRET: &str = "api-client-secret-1";
const GOOD_CODE: &str = "code-accepted-31c7";
const SPENT_CODE: &str = "code-spent-9a02";
const ACCESS_TOKEN: &str = "access-token-e4d1";
const REFRESH_TOKEN: &str = "refresh-token-77b0";

/// A token endpoint: Basic client authentication, `authorization_code` grants; the good
/// code yields tokens, any other an `invalid_grant`.
async fn token(headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (AxumStatus::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    match (form.get("grant_type").map(String::as_str), form.get("code").map(String::as_str)) {
        (Some("authorization_code"), Some(GOOD_CODE)) => Json(json!({
            "access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600,
            "refresh_token": REFRESH_TOKEN, "scope": "read write"
        }))
        .into_response(),
        _ => (AxumStatus::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response(),
    }
}

/// The API with the OAuth2 service `acme` (a token endpoint of the test) configured.
async fn with_connections(test: &str) -> Result<TestApi> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/token", post(token))).await });
    let connections = ConnectionsConfig {
        services: BTreeMap::from([(
            "acme".to_owned(),
            OAuthServiceConfig::new(format!("http://{addr}/token"), CLIENT_ID, CLIENT_SECRET),
        )]),
        encryption_key: Some(Secret::new(STANDARD.encode([3u8; 32]))),
    };
    TestApi::start_with(test, |c| c.connections = connections).await
}

/// The API with the table `tbl_leads` and the form `frm_contact` feeding it.
async fn with_form(test: &str) -> Result<TestApi> {
    let api = TestApi::start(test).await?;
    api.create_table("tbl_leads", json!([{"name": "email", "type": "text"}, {"name": "size", "type": "integer"}])).await?;
    let form = json!({
        "id": "frm_contact", "name": "Contact us", "tableId": "tbl_leads",
        "fields": [{"name": "mail", "type": "text"}, {"name": "employees", "type": "integer"}],
        "fieldMapping": {"mail": "email", "employees": "size"}
    });
    let r = api.call(Method::POST, "/v1/forms").json(&form).send().await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    assert_eq!(body["form"]["id"], "frm_contact");
    assert_eq!(body["form"]["tableId"], "tbl_leads");
    assert_eq!(body["form"]["fieldMapping"], json!({"mail": "email", "employees": "size"}));
    assert_eq!(body["eventIds"], json!([]), "the contract has no form event");
    Ok(api)
}

fn ids(body: &Value) -> Vec<String> {
    body["eventIds"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_submission_writes_its_row_and_a_form_submitted_outbox_row() -> Result<()> {
    let api = with_form("api-form-submit").await?;
    assert_eq!(api.count("ltf_forms").await?, 1);
    let data = json!({"mail": "ada@example.com", "employees": 12});
    let r = api
        .call(Method::POST, "/v1/forms/frm_contact/submissions")
        .header("x-correlation-id", "flow-form-1")
        .json(&json!({"data": data}))
        .send()
        .await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    let submission = &body["submission"];
    let submission_id = submission["id"].as_str().context("submission id")?;
    assert_eq!((submission["formId"].clone(), submission["data"].clone()), (json!("frm_contact"), data.clone()));
    assert_eq!(submission["submittedBy"], PRINCIPAL);
    assert_eq!(api.count("ltf_form_submissions").await?, 1);

    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(ids(&body), vec![row.event_id.to_string()]);
    assert_eq!(row.topic, api.codec.topics().events(AggregateType::Form));
    assert_eq!((row.key.as_str(), row.event_type.as_str()), ("frm_contact", "form-submitted"));
    assert_eq!(row.header("correlation-id"), Some("flow-form-1"));
    let event = EventCodec::new(&registry_url(), api.codec.topics().clone())?.decode(&row.value).await?;
    let EventPayload::FormSubmitted(p) = &event.payload else { bail!("not FormSubmitted: {event:?}") };
    assert_eq!((p.form_id.as_str(), p.submission_id.as_str()), ("frm_contact", submission_id));
    assert_eq!(json!(p.data), data);
    assert_eq!(p.submitted_by.as_deref(), Some(PRINCIPAL));
    api.stop().await
}

#[tokio::test]
async fn bad_submissions_and_forms_are_refused_and_write_nothing() -> Result<()> {
    let api = with_form("api-form-errors").await?;
    let submit = |form: &str, data: Value| {
        api.call(Method::POST, &format!("/v1/forms/{form}/submissions")).json(&json!({"data": data})).send()
    };
    error_with(submit("frm_nope", json!({"mail": "x"})).await?, StatusCode::NOT_FOUND, "unknown_form").await?;
    let e = error_with(submit("frm_contact", json!({"phone": "1"})).await?, StatusCode::BAD_REQUEST, "unknown_field").await?;
    assert_eq!(e["details"]["field"], "phone");
    error_with(submit("frm_contact", json!({"employees": "many"})).await?, StatusCode::BAD_REQUEST, "wrong_field_type").await?;
    let r = api.call(Method::POST, "/v1/forms/frm_contact/submissions").json(&json!({"mail": "x"})).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_body").await?;

    let form = |body: Value| api.call(Method::POST, "/v1/forms").json(&body).send();
    let again = json!({"id": "frm_contact", "name": "again"});
    error_with(form(again).await?, StatusCode::CONFLICT, "already_exists").await?;
    let unknown_table = json!({"name": "f", "tableId": "tbl_nope"});
    error_with(form(unknown_table).await?, StatusCode::NOT_FOUND, "unknown_table").await?;
    let bad_mapping = json!({"name": "f", "tableId": "tbl_leads", "fields": [{"name": "a", "type": "text"}],
                             "fieldMapping": {"a": "size"}});
    error_with(form(bad_mapping).await?, StatusCode::BAD_REQUEST, "invalid_mapping").await?;
    error_with(form(json!({"name": ""})).await?, StatusCode::BAD_REQUEST, "invalid_name").await?;
    let r = api.call(Method::POST, "/v1/tables").json(&json!({"id": "tbl_leads", "name": "dup", "fields": []})).send().await?;
    error_with(r, StatusCode::CONFLICT, "already_exists").await?;
    let dup = json!({"name": "t", "fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "date"}]});
    let r = api.call(Method::POST, "/v1/tables").json(&dup).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "duplicate_field").await?;

    assert_eq!(api.count("ltf_forms").await?, 1);
    assert_eq!(api.count("ltf_tables").await?, 1);
    assert_eq!(api.count("ltf_form_submissions").await?, 0);
    assert_eq!(api.count("ltf_outbox").await?, 0);
    api.stop().await
}

fn grant(code: &str) -> Value {
    json!({"grantType": "authorization_code", "code": code})
}

#[tokio::test]
async fn a_connection_is_established_once_with_its_tokens_stored_encrypted_and_never_returned() -> Result<()> {
    let api = with_connections("api-conn").await?;
    let r = api
        .call(Method::POST, "/v1/connections")
        .header("x-correlation-id", "flow-conn-1")
        .json(&json!({"service": "acme", "grant": grant(GOOD_CODE)}))
        .send()
        .await?;
    let text = r.text().await?;
    for secret in [GOOD_CODE, ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET] {
        assert!(!text.contains(secret), "`{secret}` in the answer: {text}");
    }
    let body: Value = serde_json::from_str(&text)?;
    let connection = &body["connection"];
    let id = connection["id"].as_str().context("connection id")?.to_owned();
    assert_eq!(connection["service"], "acme");
    assert_eq!(connection["userId"], PRINCIPAL, "the key's principal when no userId is given");
    assert_eq!(connection["authenticated"], true);
    assert_eq!(connection["scope"], "read write");

    let blob: Vec<u8> =
        sqlx::query_scalar("SELECT credentials FROM ltf_connections WHERE id = $1").bind(&id).fetch_one(&api.db.pool).await?;
    assert!(!blob.windows(ACCESS_TOKEN.len()).any(|w| w == ACCESS_TOKEN.as_bytes()), "stored encrypted");

    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(ids(&body), vec![row.event_id.to_string()]);
    assert_eq!(row.topic, api.codec.topics().events(AggregateType::Connection));
    assert_eq!((row.key.as_str(), row.event_type.as_str()), (id.as_str(), "connection-established"));
    assert_eq!(row.header("correlation-id"), Some("flow-conn-1"));
    let event = api.codec.decode(&row.value).await?;
    let EventPayload::ConnectionEstablished(p) = &event.payload else { bail!("not ConnectionEstablished: {event:?}") };
    assert_eq!((p.connection_id.as_str(), p.service.as_str(), p.user_id.as_str()), (id.as_str(), "acme", PRINCIPAL));

    // Re-authenticating replaces the credentials and emits nothing: 200.
    let again = json!({"connectionId": id, "service": "acme", "grant": grant(GOOD_CODE)});
    let body = json_with(api.call(Method::POST, "/v1/connections").json(&again).send().await?, StatusCode::OK).await?;
    assert_eq!(body["eventIds"], json!([]));
    assert_eq!(api.count("ltf_outbox").await?, 1);
    api.stop().await
}

#[tokio::test]
async fn refused_unknown_and_mismatched_connections_are_refused_and_write_nothing() -> Result<()> {
    let api = with_connections("api-conn-errors").await?;
    let connect = |body: Value| api.call(Method::POST, "/v1/connections").json(&body).send();

    let r = connect(json!({"service": "acme", "grant": grant(SPENT_CODE)})).await?;
    let e = error_with(r, StatusCode::UNPROCESSABLE_ENTITY, "credentials_refused").await?;
    assert_eq!(e["details"]["oauthError"], "invalid_grant");
    assert!(!e.to_string().contains(SPENT_CODE), "the code is not echoed: {e}");
    let r = connect(json!({"service": "nope", "grant": grant(GOOD_CODE)})).await?;
    error_with(r, StatusCode::NOT_FOUND, "unknown_service").await?;
    let r = connect(json!({"service": "acme", "grant": {"grantType": "password", "username": "u"}})).await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_body").await?;
    assert_eq!(api.count("ltf_connections").await?, 0);
    assert_eq!(api.count("ltf_outbox").await?, 0);

    let body = json_with(
        connect(json!({"connectionId": "conn_1", "service": "acme", "userId": "ada", "grant": grant(GOOD_CODE)})).await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!(body["connection"]["userId"], "ada");
    let r = connect(json!({"connectionId": "conn_1", "service": "acme", "userId": "bob", "grant": grant(GOOD_CODE)})).await?;
    error_with(r, StatusCode::CONFLICT, "connection_mismatch").await?;
    assert_eq!(api.count("ltf_connections").await?, 1);
    assert_eq!(api.count("ltf_outbox").await?, 1);
    api.stop().await
}
