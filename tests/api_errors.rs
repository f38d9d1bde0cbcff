//! Every bad input of the HTTP API answers its status with the JSON error body and writes
//! nothing; the open routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) answer
//! without a key.

use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use ltf_producers::api::router;
use ltf_schemas::{EventCodec, TopicNames};
use ltf_tests::api::{config, error_with, json_with, state, Server, TestApi, TEST_KEY};
use ltf_tests::{outbox_rows, registry_url, unique_prefix};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const RECORDS: &str = "/v1/tables/tbl_tasks/records";

/// The API with the table `tbl_tasks` and one record in it; returns the record id.
async fn setup_with(test: &str, configure: impl FnOnce(&mut ltf_producers::api::ApiConfig)) -> Result<(TestApi, String)> {
    let api = TestApi::start_with(test, configure).await?;
    api.create_table("tbl_tasks", json!([{"name": "title", "type": "text"}, {"name": "points", "type": "integer"}])).await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "keep", "points": 1}})).send().await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    let id = body["record"]["id"].as_str().context("id")?.to_owned();
    Ok((api, id))
}

async fn setup(test: &str) -> Result<(TestApi, String)> {
    setup_with(test, |_| {}).await
}

/// Nothing beyond the setup's table, record and event was written.
async fn assert_unchanged(api: &TestApi) -> Result<()> {
    assert_eq!(api.count("ltf_tables").await?, 1, "tables");
    assert_eq!(api.count("ltf_records").await?, 1, "records");
    assert_eq!(api.count("ltf_outbox").await?, 1, "outbox rows");
    let fields: Value = sqlx::query_scalar("SELECT fields FROM ltf_records").fetch_one(&api.db.pool).await?;
    assert_eq!(fields, json!({"title": "keep", "points": 1}), "the record is untouched");
    Ok(())
}

#[tokio::test]
async fn malformed_json_and_a_wrong_content_type_are_400_and_415() -> Result<()> {
    let (api, _) = setup("err-json").await?;
    let post = |body: &'static str, content_type: &'static str| {
        api.call(Method::POST, RECORDS).header("content-type", content_type).body(body).send()
    };
    error_with(post(r#"{"fields": {"title": "x""#, "application/json").await?, StatusCode::BAD_REQUEST, "invalid_json").await?;
    error_with(post("", "application/json").await?, StatusCode::BAD_REQUEST, "invalid_json").await?;
    error_with(post(r#"{"fields": [1]}"#, "application/json").await?, StatusCode::BAD_REQUEST, "invalid_body").await?;
    let e = error_with(post(r#"{"fields": {}, "extra": 1}"#, "application/json").await?, StatusCode::BAD_REQUEST, "invalid_body")
        .await?;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("extra")), "names the unknown key: {e}");
    error_with(post(r#"{"fields": {}}"#, "text/plain").await?, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        .await?;
    let r = api.call(Method::POST, RECORDS).body(r#"{"fields": {}}"#).send().await?;
    error_with(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() -> Result<()> {
    let (api, _) = setup_with("err-body-limit", |c| c.body_limit_bytes = 1024).await?;
    let big = json!({"fields": {"title": "x".repeat(2048)}});
    let r = api.call(Method::POST, RECORDS).json(&big).send().await?;
    error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await?;
    let records: Vec<Value> = (0..50).map(|i| json!({"fields": {"title": format!("task {i}")}})).collect();
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&json!({"records": records})).send().await?;
    error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn an_unknown_route_is_404_and_a_wrong_method_405_both_json() -> Result<()> {
    let (api, id) = setup("err-routes").await?;
    for path in ["/nope", "/v1/tables/x", "/v1/tables/tbl_tasks/records/a/b", "/v2/tables/tbl_tasks/records"] {
        let r = api.call(Method::GET, path).send().await?;
        error_with(r, StatusCode::NOT_FOUND, "not_found").await.with_context(|| format!("GET {path}"))?;
    }
    let r = api.call(Method::PUT, RECORDS).json(&json!({})).send().await?;
    let allow = r.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    error_with(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await?;
    assert!(allow.contains("POST") && allow.contains("PATCH"), "Allow: {allow}");
    let r = api.call(Method::POST, &format!("{RECORDS}/{id}")).json(&json!({"fields": {}})).send().await?;
    error_with(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await?;
    let r = api.call(Method::DELETE, "/healthz").send().await?;
    error_with(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await?;
    let r = api.call(Method::GET, "/v1/tables").send().await?;
    error_with(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn unknown_tables_and_records_are_404() -> Result<()> {
    let (api, id) = setup("err-unknown").await?;
    let r = api.call(Method::POST, "/v1/tables/tbl_nope/records").json(&json!({"fields": {"title": "x"}})).send().await?;
    let e = error_with(r, StatusCode::NOT_FOUND, "unknown_table").await?;
    assert_eq!(e["message"], "table tbl_nope does not exist");
    let r =
        api.call(Method::POST, "/v1/tables/tbl_nope/records/batch").json(&json!({"records": [{"fields": {}}]})).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "unknown_table").await?;
    let r = api.call(Method::PATCH, &format!("{RECORDS}/rec_nope")).json(&json!({"fields": {"title": "x"}})).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    let r = api.call(Method::DELETE, &format!("{RECORDS}/rec_nope")).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    let r = api.call(Method::DELETE, &format!("/v1/tables/tbl_nope/records/{id}")).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "unknown_table").await?;
    let batch = json!({"records": [{"id": id, "fields": {"title": "changed"}}, {"id": "rec_nope", "fields": {"title": "x"}}]});
    let r = api.call(Method::PATCH, RECORDS).json(&batch).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    let batch = json!({"records": [{"id": id}, {"id": "rec_nope"}]});
    let r = api.call(Method::POST, &format!("{RECORDS}/delete")).json(&batch).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    let r = api.call(Method::GET, &format!("{RECORDS}/rec_nope")).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn validation_errors_are_400_naming_the_field() -> Result<()> {
    let (api, id) = setup("err-validation").await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "x", "color": "red"}})).send().await?;
    let e = error_with(r, StatusCode::BAD_REQUEST, "unknown_field").await?;
    assert_eq!(e["details"], json!({"tableId": "tbl_tasks", "field": "color", "index": 0}));
    let r = api.call(Method::PATCH, &format!("{RECORDS}/{id}")).json(&json!({"fields": {"points": "three"}})).send().await?;
    let e = error_with(r, StatusCode::BAD_REQUEST, "wrong_field_type").await?;
    assert_eq!(e["details"], json!({"field": "points", "expected": "integer", "got": "string", "index": 0}));
    for (method, path, body) in [
        (Method::POST, format!("{RECORDS}/batch"), json!({"records": []})),
        (Method::PATCH, RECORDS.to_owned(), json!({"records": []})),
        (Method::POST, format!("{RECORDS}/delete"), json!({"records": []})),
    ] {
        let r = api.call(method.clone(), &path).json(&body).send().await?;
        error_with(r, StatusCode::BAD_REQUEST, "empty_batch").await.with_context(|| format!("{method} {path}"))?;
    }
    let r = api.call(Method::POST, "/v1/tables").json(&json!({"name": " ", "fields": []})).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_name").await?;
    let dup = json!({"name": "t", "fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "date"}]});
    let r = api.call(Method::POST, "/v1/tables").json(&dup).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "duplicate_field").await?;
    let r = api
        .call(Method::POST, "/v1/tables")
        .json(&json!({"name": "t", "fields": [{"name": "a", "type": "blob"}]}))
        .send()
        .await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_body").await?;
    let r = api.call(Method::POST, "/v1/tables").json(&json!({"id": "tbl_tasks", "name": "again", "fields": []})).send().await?;
    error_with(r, StatusCode::CONFLICT, "already_exists").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn a_stale_version_is_409() -> Result<()> {
    let (api, id) = setup("err-stale").await?;
    let r = api
        .call(Method::PATCH, &format!("{RECORDS}/{id}"))
        .json(&json!({"fields": {"points": 2}, "expectedVersion": 7}))
        .send()
        .await?;
    let e = error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    assert_eq!(e["details"]["actualVersion"], 1);
    let r = api.call(Method::DELETE, &format!("{RECORDS}/{id}?expectedVersion=2")).send().await?;
    error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    let r = api
        .call(Method::POST, &format!("{RECORDS}/delete"))
        .json(&json!({"records": [{"id": id, "expectedVersion": 3}]}))
        .send()
        .await?;
    error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn a_batch_over_the_configured_limit_is_413() -> Result<()> {
    let (api, id) = setup_with("err-batch-limit", |c| c.records.max_batch = 5).await?;
    let records: Vec<Value> = (0..6).map(|i| json!({"fields": {"points": i}})).collect();
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&json!({"records": records})).send().await?;
    let e = error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large").await?;
    assert_eq!(e["details"], json!({"size": 6, "limit": 5}));
    let patches: Vec<Value> = (0..6).map(|i| json!({"id": id, "fields": {"points": i}})).collect();
    let r = api.call(Method::PATCH, RECORDS).json(&json!({"records": patches})).send().await?;
    error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large").await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn a_missing_or_unknown_api_key_is_401_and_writes_nothing() -> Result<()> {
    let (api, id) = setup("err-auth").await?;
    let body = json!({"fields": {"title": "x"}});
    let attempts = [
        api.anonymous(Method::POST, RECORDS).json(&body),
        api.anonymous(Method::POST, RECORDS).bearer_auth("wrong-key-0123456789abcdef").json(&body),
        api.anonymous(Method::POST, RECORDS).header("x-api-key", "wrong-key-0123456789abcdef").json(&body),
        api.anonymous(Method::POST, RECORDS).header("authorization", format!("Basic {TEST_KEY}")).json(&body),
        api.anonymous(Method::POST, RECORDS).bearer_auth(TEST_KEY).header("x-api-key", "other").json(&body),
        api.anonymous(Method::POST, RECORDS).bearer_auth(&TEST_KEY[..TEST_KEY.len() - 1]).json(&body),
        api.anonymous(Method::GET, &format!("{RECORDS}/{id}")),
        api.anonymous(Method::DELETE, &format!("{RECORDS}/{id}")),
        api.anonymous(Method::POST, "/v1/tables").json(&json!({"name": "t", "fields": []})),
    ];
    for (i, attempt) in attempts.into_iter().enumerate() {
        let r = attempt.send().await?;
        ensure!(r.headers().get("www-authenticate").is_some(), "attempt {i}: no WWW-Authenticate");
        error_with(r, StatusCode::UNAUTHORIZED, "unauthorized").await.with_context(|| format!("attempt {i}"))?;
    }
    assert_unchanged(&api).await?;
    api.stop().await
}

#[tokio::test]
async fn bad_query_parameters_and_headers_are_400_an_invalid_traceparent_is_ignored() -> Result<()> {
    let (api, id) = setup("err-query").await?;
    let body = json!({"fields": {"title": "x"}});
    let r = api.call(Method::POST, &format!("{RECORDS}?waitForPublish=maybe")).json(&body).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_query").await?;
    let r = api.call(Method::POST, &format!("{RECORDS}?wait=true")).json(&body).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_query").await?;
    let r = api.call(Method::DELETE, &format!("{RECORDS}/{id}?expectedVersion=one")).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_query").await?;
    let r = api.call(Method::POST, RECORDS).header("x-correlation-id", "c".repeat(129)).json(&body).send().await?;
    error_with(r, StatusCode::BAD_REQUEST, "invalid_correlation_id").await?;
    let r = api
        .call(Method::POST, &format!("{RECORDS}?wait=true"))
        .header("x-request-id", "r".repeat(200))
        .json(&body)
        .send()
        .await?;
    let id = r.headers()["x-request-id"].to_str()?.to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "an oversized request id is replaced: {id}");
    error_with(r, StatusCode::BAD_REQUEST, "invalid_query").await?;
    assert_unchanged(&api).await?;

    let r = api.call(Method::POST, RECORDS).header("traceparent", "00-not-a-trace-01").json(&body).send().await?;
    json_with(r, StatusCode::CREATED).await?;
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows[1].header("traceparent"), None, "an invalid traceparent is ignored");
    api.stop().await
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_the_stack_up() -> Result<()> {
    let api = TestApi::start("err-health").await?;
    let body = json_with(api.anonymous(Method::GET, "/healthz").send().await?, StatusCode::OK).await?;
    assert_eq!(body, json!({"status": "ok"}));
    let body = json_with(api.anonymous(Method::GET, "/readyz").send().await?, StatusCode::OK).await?;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], json!([]));
    let names: Vec<&str> = body["checks"].as_array().context("checks")?.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, vec!["database", "kafka", "registry"]);
    api.stop().await
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_does_not_answer() -> Result<()> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let options: sqlx::postgres::PgConnectOptions = ltf_tests::database_url().parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy_with(options.host("127.0.0.1").port(closed));
    let codec = Arc::new(EventCodec::new(&registry_url(), TopicNames::new(unique_prefix("err-readyz")))?);
    let mut c = config();
    c.readiness_timeout_ms = 1000;
    let server = Server::start(router(state(c, pool, codec)?)).await?;
    let r = reqwest::get(format!("{}/readyz", server.url)).await?;
    let body = json_with(r, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failed"], json!(["database"]), "{body}");
    assert!(body["checks"][0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let r = reqwest::get(format!("{}/healthz", server.url)).await?;
    assert_eq!(r.status(), StatusCode::OK, "alive while not ready");
    server.stop().await
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_raw_path() -> Result<()> {
    let (api, id) = setup("err-metrics").await?;
    let r = api.call(Method::GET, &format!("{RECORDS}/{id}")).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let r = api.call(Method::GET, &format!("/no/such/{id}")).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api.anonymous(Method::GET, "/metrics").send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await?;
    let counted = |route: &str, method: &str, status: &str| {
        text.lines().any(|l| {
            l.starts_with("latechforce_api_requests_total{")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("method=\"{method}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(counted("/v1/tables/{tableId}/records/{recordId}", "GET", "200"), "{text}");
    assert!(counted("/v1/tables/{tableId}/records", "POST", "201"), "{text}");
    assert!(counted("unmatched", "GET", "404"), "{text}");
    assert!(text.contains("latechforce_api_request_duration_seconds_bucket{"), "a histogram: {text}");
    assert!(text.contains("latechforce_api_events_written_total{event_type=\"record-created\"}"), "{text}");
    assert!(!text.contains(&id), "no id in any label");
    api.stop().await
}

#[tokio::test]
async fn openapi_json_is_valid_json_listing_every_path_and_the_key_schemes() -> Result<()> {
    let api = TestApi::start("err-openapi").await?;
    let doc = json_with(api.anonymous(Method::GET, "/openapi.json").send().await?, StatusCode::OK).await?;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let paths = doc["paths"].as_object().context("paths")?;
    for (path, method) in [
        ("/v1/tables", "post"),
        ("/v1/forms", "post"),
        ("/v1/forms/{formId}/submissions", "post"),
        ("/v1/connections", "post"),
        ("/v1/tables/{tableId}/records", "post"),
        ("/v1/tables/{tableId}/records", "patch"),
        ("/v1/tables/{tableId}/records/batch", "post"),
        ("/v1/tables/{tableId}/records/delete", "post"),
        ("/v1/tables/{tableId}/records/{recordId}", "get"),
        ("/v1/tables/{tableId}/records/{recordId}", "patch"),
        ("/v1/tables/{tableId}/records/{recordId}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        ensure!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "X-Api-Key");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(paths["/v1/tables/{tableId}/records"]["post"]["security"].is_array());
    assert!(paths["/healthz"]["get"].get("security").is_none());
    api.stop().await
}

/// Installs a trigger on `ltf_records` running `body` (PL/pgSQL) before every insert.
async fn before_insert(api: &TestApi, body: &str) -> Result<()> {
    sqlx::query("CREATE SEQUENCE IF NOT EXISTS ltf_test_calls").execute(&api.db.pool).await?;
    sqlx::query(&format!(
        "CREATE OR REPLACE FUNCTION ltf_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
    ))
    .execute(&api.db.pool)
    .await?;
    sqlx::query(
        "CREATE OR REPLACE TRIGGER ltf_test_fault BEFORE INSERT ON ltf_records FOR EACH ROW EXECUTE FUNCTION ltf_test_fault()",
    )
    .execute(&api.db.pool)
    .await?;
    Ok(())
}

async fn drop_fault(api: &TestApi) -> Result<()> {
    sqlx::query("DROP TRIGGER ltf_test_fault ON ltf_records").execute(&api.db.pool).await?;
    Ok(())
}

/// Calls the fault trigger made, read from its non-transactional sequence.
async fn fault_calls(api: &TestApi) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT last_value FROM ltf_test_calls").fetch_one(&api.db.pool).await?)
}

fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn a_connection_the_database_terminates_mid_request_is_503_with_retry_after_and_writes_nothing() -> Result<()> {
    let (api, _) = setup("api_pg_terminated").await?;
    // What a PostgreSQL restart does to a busy connection: FATAL 57P01, "terminating
    // connection due to administrator command".
    before_insert(&api, "PERFORM pg_terminate_backend(pg_backend_pid());").await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "lost", "points": 2}})).send().await?;
    let after = retry_after(&r);
    error_with(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await?;
    ensure!(after.is_some_and(|s| s >= 1), "Retry-After: {after:?}");
    drop_fault(&api).await?;
    assert_unchanged(&api).await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "later", "points": 3}})).send().await?;
    json_with(r, StatusCode::CREATED).await?;
    api.stop().await
}

#[tokio::test]
async fn a_deadlock_is_retried_inside_the_use_case_and_the_request_succeeds() -> Result<()> {
    let (api, _) = setup("api_pg_deadlock_once").await?;
    before_insert(
        &api,
        "IF nextval('ltf_test_calls') <= 2 THEN RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01'; END IF;",
    )
    .await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "third try", "points": 2}})).send().await?;
    json_with(r, StatusCode::CREATED).await?;
    assert_eq!(fault_calls(&api).await?, 3, "two deadlocks, then the insert that went through");
    assert_eq!(api.count("ltf_records").await?, 2);
    assert_eq!(api.count("ltf_outbox").await?, 2, "the retried request wrote its event once");
    api.stop().await
}

#[tokio::test]
async fn a_deadlock_that_keeps_happening_is_503_with_retry_after_after_bounded_retries() -> Result<()> {
    let (api, _) = setup("api_pg_deadlock_always").await?;
    before_insert(&api, "PERFORM nextval('ltf_test_calls'); RAISE EXCEPTION 'serialization (injected)' USING ERRCODE = '40001';")
        .await?;
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": "never", "points": 2}})).send().await?;
    let after = retry_after(&r);
    error_with(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await?;
    ensure!(after.is_some_and(|s| s >= 1), "Retry-After: {after:?}");
    let calls = fault_calls(&api).await?;
    ensure!((2..=5).contains(&calls), "tried {calls} times: retried, and boundedly");
    drop_fault(&api).await?;
    assert_unchanged(&api).await?;
    api.stop().await
}

/// A schema registry that is down (connection refused) or failing (HTTP 500) is a
/// dependency outage: 503 with Retry-After, nothing written — never 500.
#[tokio::test]
async fn a_registry_that_is_down_or_failing_is_503_with_retry_after_and_writes_nothing() -> Result<()> {
    use axum::http::StatusCode as HttpStatus;
    let failing = Server::start(axum::Router::new().fallback(|| async { (HttpStatus::INTERNAL_SERVER_ERROR, "boom") })).await?;
    for (what, registry) in [("down", "http://127.0.0.1:9".to_owned()), ("failing", failing.url.clone())] {
        let api = TestApi::start(&format!("api_registry_{what}")).await?;
        api.create_table("tbl_tasks", json!([{"name": "title", "type": "text"}])).await?;
        // The same database, through a codec whose registry is down or failing.
        let codec = Arc::new(EventCodec::new(&registry, TopicNames::new(unique_prefix(&format!("reg-{what}"))))?);
        let server = Server::start(router(state(config(), api.db.pool.clone(), codec)?)).await?;
        let r = api
            .http
            .post(format!("{}{RECORDS}", server.url))
            .bearer_auth(TEST_KEY)
            .json(&json!({"fields": {"title": "x"}}))
            .send()
            .await?;
        let after = retry_after(&r);
        error_with(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            .await
            .map_err(|e| anyhow::anyhow!("registry {what}: {e}"))?;
        ensure!(after.is_some_and(|s| s >= 1), "registry {what}: Retry-After {after:?}");
        assert_eq!(api.count("ltf_records").await?, 0, "registry {what}: nothing written");
        server.stop().await?;
        api.stop().await?;
    }
    failing.stop().await
}
