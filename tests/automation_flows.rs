//! The spec's four event flow patterns, end to end through the HTTP API, the outbox
//! relay, Kafka and the four workers, with a real HTTP server receiving webhooks and a
//! real SMTP server (aiosmtpd) receiving mail; and replay safety: re-consuming every topic
//! from the start changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Result};
use ltf_tests::platform::{eventually, Platform, NOTIFY_TO};
use ltf_tests::redis_url;
use ltf_workers::analytics::total;
use ltf_workers::audit::history;
use ltf_workers::cache::{CacheConfig, CacheEntry, RecordCache};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

async fn cache_entry(p: &Platform, table: &str, record: &str) -> Result<Option<CacheEntry>> {
    let mut config = CacheConfig::new(redis_url());
    config.key_prefix = p.cache_prefix.clone();
    Ok(RecordCache::new(&config)?.entry(table, record).await?)
}

async fn tasks_table(p: &Platform) -> Result<()> {
    p.api.create_table("tasks", json!([{"name": "title", "type": "text"}, {"name": "status", "type": "text"}])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simple_record_created_triggers_the_automation_and_the_webhook_is_called_once() -> Result<()> {
    let p = Platform::start("flow-simple").await?;
    tasks_table(&p).await?;
    p.create_automation(json!({
        "id": "on_task", "name": "Tell the tracker",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [{"id": "hook", "type": "webhook", "url": p.receiver.url("/tracker"),
                     "body": {"task": "{{recordId}}", "title": "{{fields.title}}"}}]
    }))
    .await?;
    let record = p.create_record("tasks", json!({"title": "Write the spec", "status": "Open"})).await?;

    let runs = p.ended_runs("on_task", 1, WAIT).await?;
    p.wait_drained(WAIT).await?;
    let calls = p.receiver.calls("/tracker");
    assert_eq!(calls.len(), 1, "called once: {calls:?}");
    assert_eq!(calls[0].body, json!({"task": record, "title": "Write the spec"}));
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded");
    assert_eq!(calls[0].key.as_deref(), Some(format!("{}:hook", run["runId"].as_str().unwrap_or_default()).as_str()));
    assert_eq!(run["steps"][0]["result"], "success");
    assert_eq!(run["steps"][0]["data"]["status"], 200);
    assert_eq!(p.runs("on_task").await?.len(), 1, "one run");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fan_out_one_record_created_reaches_the_audit_log_analytics_cache_and_automation() -> Result<()> {
    let p = Platform::start("flow-fanout").await?;
    tasks_table(&p).await?;
    p.create_automation(json!({
        "id": "fan", "name": "Fan-out check",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [{"id": "hook", "type": "webhook", "url": p.receiver.url("/fan")}]
    }))
    .await?;
    let r = p
        .api
        .call(Method::POST, "/v1/tables/tasks/records")
        .json(&json!({"fields": {"title": "Fan", "status": "Open"}}))
        .send()
        .await?;
    let body = ltf_tests::api::json_with(r, reqwest::StatusCode::CREATED).await?;
    let record = body["record"]["id"].as_str().unwrap_or_default().to_owned();
    let event_id = body["eventIds"][0].as_str().unwrap_or_default().to_owned();
    p.ended_runs("fan", 1, WAIT).await?;
    p.wait_drained(WAIT).await?;

    // Audit: the event, once.
    let logged: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id::text, event_type FROM ltf_event_log WHERE aggregate_id = 'tasks'")
            .fetch_all(&p.api.db.pool)
            .await?;
    assert_eq!(logged, vec![(event_id.clone(), "record-created".to_owned())]);
    // Analytics: counted once.
    assert_eq!(total(&p.api.db.pool, "table", "tasks", "records_created", None, None).await?, 1);
    // Cache: the record's current fields.
    match cache_entry(&p, "tasks", &record).await? {
        Some(CacheEntry::Live(r)) => {
            assert_eq!(r.version, 1);
            assert_eq!(Value::Object(r.fields), json!({"title": "Fan", "status": "Open"}));
        }
        other => anyhow::bail!("cache entry: {other:?}"),
    }
    // Automation: one run, one webhook call; the run was caused by the event.
    let runs = p.runs("fan").await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["sourceEventId"], event_id.as_str());
    assert_eq!(p.receiver.calls("/fan").len(), 1);
    // The automation's own events were counted and logged too.
    assert_eq!(total(&p.api.db.pool, "automation", "fan", "automation_runs", None, None).await?, 1);
    assert_eq!(total(&p.api.db.pool, "automation", "fan", "actions_succeeded", None, None).await?, 1);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chain_form_submitted_record_created_automation_triggered_notification_sent_in_causal_order() -> Result<()> {
    let p = Platform::start("flow-chain").await?;
    p.api.create_table("leads", json!([{"name": "name", "type": "text"}, {"name": "email", "type": "text"}])).await?;
    let r = p
        .api
        .call(Method::POST, "/v1/forms")
        .json(&json!({"id": "signup", "name": "Sign up", "tableId": "leads",
                      "fields": [{"name": "your_name", "type": "text"}, {"name": "your_email", "type": "text"}],
                      "fieldMapping": {"your_name": "name", "your_email": "email"}}))
        .send()
        .await?;
    ltf_tests::api::json_with(r, reqwest::StatusCode::CREATED).await?;
    p.create_automation(json!({
        "id": "welcome", "name": "Announce new leads",
        "trigger": {"event": "record-created", "tableId": "leads"},
        "actions": [{"id": "tell", "type": "notify", "message": "New lead {{fields.name}} <{{fields.email}}>"}]
    }))
    .await?;
    let r = p
        .api
        .call(Method::POST, "/v1/forms/signup/submissions")
        .header("x-correlation-id", "chain-1")
        .json(&json!({"data": {"your_name": "Ada", "your_email": "ada@example.com"}}))
        .send()
        .await?;
    ltf_tests::api::json_with(r, reqwest::StatusCode::CREATED).await?;

    // The notification arrives by mail.
    let mail = eventually("the notification mail", WAIT, || async {
        Ok(p.smtp.messages()?.into_iter().find(|m| m.body.contains("New lead Ada <ada@example.com>")))
    })
    .await?;
    assert_eq!(mail.header("to"), Some(NOTIFY_TO));
    let runs = p.ended_runs("welcome", 1, WAIT).await?;
    assert_eq!(runs[0]["status"], "succeeded");
    let key = format!("{}:tell", runs[0]["runId"].as_str().unwrap_or_default());
    assert_eq!(mail.header("idempotency-key"), Some(key.as_str()));
    p.wait_drained(WAIT).await?;
    assert_eq!(p.smtp.messages()?.len(), 1, "one mail");
    assert_eq!(p.count("ltf_records").await?, 1, "one record per submission");

    // Every step is in the audit log, in causal order, with one correlation id and each
    // causationId naming the event before it.
    let mut chain = Vec::new();
    for aggregate in ["signup", "leads", "welcome"] {
        chain.extend(history(&p.api.db.pool, aggregate, None).await?);
    }
    let by_id: BTreeMap<String, _> = chain.iter().map(|e| (e.event_id.to_string(), e)).collect();
    let types: Vec<&str> = ["form-submitted", "record-created", "automation-triggered", "action-executed"].to_vec();
    let mut expected_cause: Option<String> = None;
    for ty in &types {
        let e =
            chain.iter().find(|e| e.event_type == *ty).ok_or_else(|| anyhow::anyhow!("{ty} not in the audit log: {chain:?}"))?;
        ensure!(e.correlation_id == "chain-1", "{ty} correlation {}", e.correlation_id);
        ensure!(e.causation_id == expected_cause, "{ty} caused by {:?}, expected {:?}", e.causation_id, expected_cause);
        // Causal order is in the events themselves (occurred_on). The audit worker's
        // `received_at` is not: the events are on different topics, and a consumer orders
        // per key only (a worker that joins late reads both topics at once, in any order).
        if let Some(cause) = &expected_cause {
            ensure!(by_id[cause].occurred_on <= e.occurred_on, "{ty} occurred before its cause");
        }
        expected_cause = Some(e.event_id.to_string());
    }
    assert_eq!(chain.len(), types.len(), "nothing else: {chain:?}");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_email_change_updates_the_contact_status_change_starts_the_workflow_other_change_only_refreshes_the_cache(
) -> Result<()> {
    let p = Platform::start("flow-conditional").await?;
    p.api.create_table("contacts", json!([{"name": "name", "type": "text"}, {"name": "email", "type": "text"}])).await?;
    p.api
        .create_table(
            "deals",
            json!([{"name": "title", "type": "text"}, {"name": "email", "type": "text"}, {"name": "status", "type": "text"},
                   {"name": "notes", "type": "text"}, {"name": "contact", "type": "link"}]),
        )
        .await?;
    p.create_automation(json!({
        "id": "sync_contact", "name": "Email changed: update the contact",
        "trigger": {"event": "record-updated", "tableId": "deals", "conditions": [{"field": "email", "op": "changed"}]},
        "actions": [{"id": "update", "type": "update_record", "tableId": "contacts", "recordId": "{{fields.contact}}",
                     "fields": {"email": "{{fields.email}}"}}]
    }))
    .await?;
    p.create_automation(json!({
        "id": "workflow", "name": "Status Done: start the workflow",
        "trigger": {"event": "record-updated", "tableId": "deals", "conditions": [{"field": "status", "op": "changedTo", "value": "Done"}]},
        "actions": [{"id": "start", "type": "webhook", "url": p.receiver.url("/workflow"), "body": {"deal": "{{recordId}}"}}]
    }))
    .await?;
    let contact = p.create_record("contacts", json!({"name": "Ada", "email": "old@example.com"})).await?;
    let deal = p
        .create_record(
            "deals",
            json!({"title": "Big", "email": "old@example.com", "status": "Open", "notes": "", "contact": contact}),
        )
        .await?;
    p.wait_drained(WAIT).await?;

    // Email branch.
    p.update_record("deals", &deal, json!({"email": "new@example.com"})).await?;
    let (fields, version) = eventually("the contact's new email", WAIT, || async {
        Ok(p.record(&contact).await?.filter(|(f, _)| f["email"] == "new@example.com"))
    })
    .await?;
    assert_eq!(fields["name"], "Ada");
    assert_eq!(version, 2);
    p.wait_drained(WAIT).await?;
    assert!(p.receiver.calls("/workflow").is_empty(), "the workflow did not start on an email change");
    assert_eq!(p.runs("workflow").await?.len(), 0);

    // Status branch.
    p.update_record("deals", &deal, json!({"status": "Done"})).await?;
    let runs = p.ended_runs("workflow", 1, WAIT).await?;
    assert_eq!(runs[0]["status"], "succeeded");
    p.wait_drained(WAIT).await?;
    assert_eq!(p.receiver.calls("/workflow").iter().map(|c| c.body.clone()).collect::<Vec<_>>(), vec![json!({"deal": deal})]);
    assert_eq!(p.record(&contact).await?.map(|(_, v)| v), Some(2), "the contact was not touched by a status change");
    assert_eq!(p.runs("sync_contact").await?.len(), 1);

    // Other field: neither automation; the cache has the new value.
    let updated = p.update_record("deals", &deal, json!({"notes": "call back"})).await?;
    let version = updated["version"].as_i64().unwrap_or_default();
    eventually("the cache refreshed", WAIT, || async {
        Ok(match cache_entry(&p, "deals", &deal).await? {
            Some(CacheEntry::Live(r)) if r.version == version => Some(r),
            _ => None,
        })
    })
    .await
    .map(|r| assert_eq!(r.fields["notes"], "call back"))?;
    p.wait_drained(WAIT).await?;
    assert_eq!(p.runs("sync_contact").await?.len(), 1, "no new contact update");
    assert_eq!(p.runs("workflow").await?.len(), 1, "no new workflow run");
    assert_eq!(p.receiver.calls("/workflow").len(), 1);
    assert_eq!(p.record(&contact).await?.map(|(_, v)| v), Some(2));
    p.stop().await
}

/// Everything a replay must leave unchanged.
#[derive(Debug, PartialEq)]
struct Snapshot {
    webhook_calls: usize,
    mails: usize,
    records: Vec<(String, i64)>,
    rollups: Vec<(String, String, String, i64)>,
    runs: Vec<(String, String)>,
    steps: i64,
    outbox: i64,
    event_log: i64,
    usage: i64,
}

async fn snapshot(p: &Platform) -> Result<Snapshot> {
    let pool = &p.api.db.pool;
    Ok(Snapshot {
        webhook_calls: p.receiver.calls("/hook").len(),
        mails: p.smtp.messages()?.len(),
        records: sqlx::query_as("SELECT id, version FROM ltf_records ORDER BY id").fetch_all(pool).await?,
        rollups: sqlx::query_as(
            "SELECT dimension, key, metric, sum(value)::bigint FROM ltf_analytics_rollups GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(pool)
        .await?,
        runs: sqlx::query_as("SELECT run_id::text, status FROM ltf_automation_runs ORDER BY 1").fetch_all(pool).await?,
        steps: p.count("ltf_automation_steps").await?,
        outbox: p.count("ltf_outbox").await?,
        event_log: p.count("ltf_event_log").await?,
        usage: p.count("ltf_connection_usage").await?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_every_topic_from_the_start_sends_no_second_webhook_or_mail_counts_nothing_twice_and_creates_no_record(
) -> Result<()> {
    let mut p = Platform::start("flow-replay").await?;
    tasks_table(&p).await?;
    p.api.create_table("log", json!([{"name": "text", "type": "text"}, {"name": "task", "type": "link"}])).await?;
    p.create_automation(json!({
        "id": "everything", "name": "Every action kind",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [
            {"id": "hook", "type": "webhook", "url": p.receiver.url("/hook")},
            {"id": "mail", "type": "email", "to": "team@example.com", "subject": "Task {{fields.title}}", "body": "created"},
            {"id": "log", "type": "create_record", "tableId": "log", "fields": {"text": "created {{fields.title}}", "task": "{{recordId}}"}},
            {"id": "touch", "type": "update_record", "tableId": "tasks", "recordId": "{{recordId}}", "fields": {"status": "Seen"}}
        ]
    }))
    .await?;
    for i in 0..3 {
        p.create_record("tasks", json!({"title": format!("t{i}"), "status": "Open"})).await?;
    }
    // And one task from a form submission (the forms handler's record).
    let r = p
        .api
        .call(Method::POST, "/v1/forms")
        .json(&json!({"id": "intake", "name": "Intake", "tableId": "tasks", "fields": [{"name": "title", "type": "text"}]}))
        .send()
        .await?;
    ltf_tests::api::json_with(r, reqwest::StatusCode::CREATED).await?;
    let r = p
        .api
        .call(Method::POST, "/v1/forms/intake/submissions")
        .json(&json!({"data": {"title": "from the form"}}))
        .send()
        .await?;
    ltf_tests::api::json_with(r, reqwest::StatusCode::CREATED).await?;
    let runs = p.ended_runs("everything", 4, WAIT).await?;
    ensure!(runs.iter().all(|r| r["status"] == "succeeded"), "runs: {runs:?}");
    p.wait_drained(WAIT).await?;
    let before = snapshot(&p).await?;
    assert_eq!((before.webhook_calls, before.mails, before.records.len(), before.steps), (4, 4, 8, 16), "{before:?}");

    p.stop_workers().await?;
    p.forget_offsets().await?;
    p.start_workers()?;
    p.wait_drained(WAIT).await?;
    let after = snapshot(&p).await?;
    assert_eq!(after, before, "a replay changes nothing");
    p.stop().await
}
