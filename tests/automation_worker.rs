//! The automation worker's own behaviour against the real stack: retries with one
//! idempotency key, failed runs, the SSRF guard, the delete cascade, per-service
//! connection usage, and the automation API's refusals.

use std::time::Duration;

use anyhow::{ensure, Result};
use ltf_domain::outbox;
use ltf_schemas::{ConnectionEstablished, DomainEvent, EventPayload};
use ltf_tests::api::{error_with, json_with};
use ltf_tests::platform::{eventually, Platform, AUTOMATION_MAX_PARK};
use ltf_workers::audit::history;
use reqwest::{Method, StatusCode};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn tasks(p: &Platform) -> Result<()> {
    p.api.create_table("tasks", json!([{"name": "title", "type": "text"}])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_call_cut_off_by_its_timeout_is_repeated_with_the_same_key_and_takes_effect_once() -> Result<()> {
    let p = Platform::start("auto-timeout").await?;
    tasks(&p).await?;
    // The first call is accepted (the receiver acts on it) but answered after the
    // action's timeout: the worker cannot know it succeeded and calls again.
    p.receiver.script(&[(Duration::from_millis(1500), StatusCode::OK)]);
    p.create_automation(json!({
        "id": "slow", "name": "Slow receiver",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [{"id": "hook", "type": "webhook", "url": p.receiver.url("/slow"), "timeoutMs": 300}]
    }))
    .await?;
    p.create_record("tasks", json!({"title": "x"})).await?;
    let runs = p.ended_runs("slow", 1, WAIT).await?;
    p.wait_drained(WAIT).await?;
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["steps"][0]["attempts"], 1, "a timeout is the host's failure: it uses no attempt");
    let calls = p.receiver.calls("/slow");
    assert_eq!(calls.len(), 2, "called twice");
    assert!(calls[0].key.is_some() && calls[0].key == calls[1].key, "with one key: {calls:?}");
    assert_eq!(p.receiver.effects("/slow").len(), 1, "the receiver acted once");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_action_ends_the_run_as_failed_at_once_or_after_max_park_and_later_actions_never_run() -> Result<()> {
    let p = Platform::start("auto-failure").await?;
    tasks(&p).await?;
    p.create_automation(json!({
        "id": "refused", "name": "Refused by the receiver",
        "trigger": {"event": "record-created", "tableId": "tasks", "conditions": [{"field": "title", "op": "equals", "value": "refuse"}]},
        "actions": [{"id": "hook", "type": "webhook", "url": p.receiver.url("/refuse")},
                    {"id": "after", "type": "webhook", "url": p.receiver.url("/after")}]
    }))
    .await?;
    p.create_automation(json!({
        "id": "down", "name": "Receiver down",
        "trigger": {"event": "record-created", "tableId": "tasks", "conditions": [{"field": "title", "op": "equals", "value": "down"}]},
        "actions": [{"id": "hook", "type": "webhook", "url": p.receiver.url("/down")},
                    {"id": "after", "type": "webhook", "url": p.receiver.url("/after")}]
    }))
    .await?;

    // A 400 is permanent: one call, the run fails at once.
    p.receiver.script(&[(Duration::ZERO, StatusCode::BAD_REQUEST)]);
    p.create_record("tasks", json!({"title": "refuse"})).await?;
    let runs = p.ended_runs("refused", 1, WAIT).await?;
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["error"], "webhook answered 400 Bad Request");
    assert_eq!(runs[0]["steps"][0]["result"], "failure");
    assert_eq!(runs[0]["steps"][0]["attempts"], 1);
    assert_eq!(p.receiver.calls("/refuse").len(), 1);

    // A 503 is the host's failure: the step is parked and called again, using no
    // attempt, until the worker's max_park; then it fails with dependency_unavailable.
    p.receiver.script(&[(Duration::ZERO, StatusCode::SERVICE_UNAVAILABLE); 1000]);
    let started = std::time::Instant::now();
    p.create_record("tasks", json!({"title": "down"})).await?;
    let runs = p.ended_runs("down", 1, WAIT).await?;
    p.wait_drained(WAIT).await?;
    assert!(started.elapsed() >= AUTOMATION_MAX_PARK, "parked for max_park first ({:?})", started.elapsed());
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["steps"][0]["attempts"], 1);
    let error = runs[0]["error"].as_str().unwrap_or_default();
    ensure!(error.starts_with("dependency_unavailable: webhook:127.0.0.1:"), "{error}");
    // The last failure seen: the 503, or the circuit the 503s opened.
    ensure!(error.contains("503 Service Unavailable") || error.ends_with("is open)"), "{error}");
    let calls = p.receiver.calls("/down").len();
    ensure!(calls >= 3, "called again while parked ({calls} calls)");
    assert!(p.receiver.calls("/after").is_empty(), "no action after a failed one");
    assert_eq!(runs[0]["steps"].as_array().map(Vec::len), Some(1));
    // Nothing was dead-lettered: a failed action is a run outcome, not a poison message.
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ltf_automation_runs WHERE status = 'failed'").fetch_one(&p.api.db.pool).await?;
    assert_eq!(failed, 2);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ssrf_guard_refuses_loopback_private_and_link_local_addresses_not_explicitly_allowed() -> Result<()> {
    let p = Platform::start("auto-ssrf").await?;
    tasks(&p).await?;
    let port = p.receiver.url.rsplit(':').next().unwrap_or_default().to_owned();
    // Only 127.0.0.1 is allowed; `localhost` resolves to loopback but is not.
    let targets = [
        ("local", format!("http://localhost:{port}/sneaky")),
        ("private", "http://10.255.255.1/x".to_owned()),
        ("metadata", "http://169.254.169.254/latest/meta-data".to_owned()),
        ("v6", format!("http://[::1]:{port}/sneaky")),
    ];
    for (id, url) in &targets {
        p.create_automation(json!({
            "id": id, "name": id,
            "trigger": {"event": "record-created", "tableId": "tasks"},
            "actions": [{"id": "hook", "type": "webhook", "url": url}]
        }))
        .await?;
    }
    p.create_record("tasks", json!({"title": "x"})).await?;
    for (id, _) in &targets {
        let runs = p.ended_runs(id, 1, WAIT).await?;
        assert_eq!(runs[0]["status"], "failed", "{id}");
        let error = runs[0]["error"].as_str().unwrap_or_default();
        ensure!(error.starts_with("refused to call") && error.contains("non-public"), "{id}: {error}");
        assert_eq!(runs[0]["steps"][0]["attempts"], 1, "{id}: refused at once");
    }
    assert!(p.receiver.calls("/sneaky").is_empty(), "the loopback receiver was never called");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_record_removes_the_links_to_it_through_update_record_caused_by_the_deletion() -> Result<()> {
    let p = Platform::start("auto-cascade").await?;
    p.api.create_table("contacts", json!([{"name": "name", "type": "text"}])).await?;
    p.api
        .create_table(
            "deals",
            json!([{"name": "title", "type": "text"}, {"name": "owner", "type": "link"}, {"name": "people", "type": "link"}]),
        )
        .await?;
    let ada = p.create_record("contacts", json!({"name": "Ada"})).await?;
    let bob = p.create_record("contacts", json!({"name": "Bob"})).await?;
    let one = p.create_record("deals", json!({"title": "one", "owner": ada, "people": [ada, bob]})).await?;
    let other = p.create_record("deals", json!({"title": "other", "owner": bob})).await?;
    p.wait_drained(WAIT).await?;

    p.delete_record("contacts", &ada).await?;
    let (fields, version) =
        eventually("the links to Ada removed", WAIT, || async { Ok(p.record(&one).await?.filter(|(_, v)| *v == 2)) }).await?;
    p.wait_drained(WAIT).await?;
    assert_eq!(fields, json!({"title": "one", "people": [bob]}), "single link removed, list link without Ada");
    assert_eq!(version, 2, "one update for both fields");
    assert_eq!(p.record(&other).await?.map(|(_, v)| v), Some(1), "a deal not linking Ada is untouched");

    let deletion = history(&p.api.db.pool, "contacts", None).await?.into_iter().find(|e| e.event_type == "record-deleted");
    let deletion = deletion.ok_or_else(|| anyhow::anyhow!("the deletion is not in the audit log"))?;
    let updates: Vec<_> =
        history(&p.api.db.pool, "deals", None).await?.into_iter().filter(|e| e.event_type == "record-updated").collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].causation_id, Some(deletion.event_id.to_string()));
    assert_eq!(updates[0].correlation_id, deletion.correlation_id);
    assert_eq!(updates[0].payload["payload"]["changedFields"], json!(["owner", "people"]), "{}", updates[0].payload);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_established_counts_once_per_event_in_the_service_usage_and_marks_it_healthy() -> Result<()> {
    let p = Platform::start("auto-connections").await?;
    // Different connections are different Kafka keys, handled in any order: the latest
    // (by occurredOn) is the service's last connection whatever the order.
    let event = |id: &str, service: &str, seconds_ago: i64| {
        let mut e = DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: id.into(),
            service: service.into(),
            user_id: "u1".into(),
        }));
        e.envelope.occurred_on -= chrono::TimeDelta::seconds(seconds_ago);
        e
    };
    let events = vec![event("c2", "github", 10), event("c1", "github", 20), event("c3", "slack", 5)];
    let mut tx = p.api.db.pool.begin().await?;
    outbox::append(&mut tx, &p.api.codec, None, events).await?;
    tx.commit().await?;
    p.wait_drained(WAIT).await?;
    let usage: Vec<(String, i64, String, String)> =
        sqlx::query_as("SELECT service, connections, last_connection_id, health FROM ltf_connection_usage ORDER BY service")
            .fetch_all(&p.api.db.pool)
            .await?;
    assert_eq!(
        usage,
        vec![("github".into(), 2, "c2".into(), "healthy".into()), ("slack".into(), 1, "c3".into(), "healthy".into())]
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automation_api_refuses_bad_definitions_naming_the_key_and_serves_definitions_and_runs() -> Result<()> {
    let api = ltf_tests::api::TestApi::start("auto-api").await?;
    api.create_table("tasks", json!([{"name": "title", "type": "text"}])).await?;
    let valid = json!({
        "id": "a1", "name": "A",
        "trigger": {"event": "record-updated", "tableId": "tasks", "conditions": [{"field": "title", "op": "changed"}]},
        "actions": [{"id": "hook", "type": "webhook", "url": "https://hooks.example.com/x"}]
    });
    let post = |body: serde_json::Value| api.call(Method::POST, "/v1/automations").json(&body).send();
    let mut bad = valid.clone();
    bad["actions"][0]["url"] = json!("gopher://x");
    let e = error_with(post(bad).await?, StatusCode::BAD_REQUEST, "invalid_automation").await?;
    assert_eq!(e["details"]["key"], "actions[0].url");
    let mut bad = valid.clone();
    bad["trigger"]["conditions"][0] = json!({"field": "title", "op": "changedTo"});
    let e = error_with(post(bad).await?, StatusCode::BAD_REQUEST, "invalid_automation").await?;
    assert_eq!(e["details"]["key"], "trigger.conditions[0].value");
    let mut bad = valid.clone();
    bad["trigger"]["tableId"] = json!("nope");
    error_with(post(bad).await?, StatusCode::NOT_FOUND, "unknown_table").await?;
    let mut bad = valid.clone();
    bad["actions"][0]["type"] = json!("teleport");
    error_with(post(bad).await?, StatusCode::BAD_REQUEST, "invalid_body").await?;
    assert_eq!(api.count("ltf_automations").await?, 0, "nothing stored");

    let stored = json_with(post(valid.clone()).await?, StatusCode::CREATED).await?;
    assert_eq!(stored["automation"]["enabled"], true);
    error_with(post(valid.clone()).await?, StatusCode::CONFLICT, "already_exists").await?;
    let list = json_with(api.call(Method::GET, "/v1/automations").send().await?, StatusCode::OK).await?;
    assert_eq!(list["automations"][0]["id"], "a1");
    let one = json_with(api.call(Method::GET, "/v1/automations/a1").send().await?, StatusCode::OK).await?;
    assert_eq!(one["automation"]["trigger"], valid["trigger"]);
    error_with(api.call(Method::GET, "/v1/automations/zz").send().await?, StatusCode::NOT_FOUND, "unknown_automation").await?;
    let runs = json_with(api.call(Method::GET, "/v1/automations/a1/runs").send().await?, StatusCode::OK).await?;
    assert_eq!(runs["runs"], json!([]));
    error_with(api.call(Method::GET, "/v1/automations/a1/runs?limit=0").send().await?, StatusCode::BAD_REQUEST, "invalid_query")
        .await?;
    let r = api.anonymous(Method::GET, "/v1/automations").send().await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    api.stop().await
}

/// A delete and the cascade of another delete race: the contact Ada is deleted while a
/// deal linking her is being deleted by another transaction. The cascade must wait for
/// that transaction and then skip the deal (it is gone), not fail the RecordDeleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cascade_skips_a_linking_record_deleted_concurrently_instead_of_failing() -> Result<()> {
    use std::sync::Arc;

    use ltf_consumers::{DedupStore, Event, Handler, HandlerContext, Meta};
    use ltf_domain::usecases::{
        ChangeContext, CreateRecord, CreateRecordInput, CreateTable, CreateTableInput, DeleteRecord, DeleteRecordInput,
        RecordRef, UseCase,
    };
    use ltf_schemas::{EventCodec, TopicNames};
    use ltf_workers::automation::CascadeHandler;

    let db = ltf_tests::fresh_database().await?;
    let codec = Arc::new(EventCodec::new(&ltf_tests::registry_url(), TopicNames::new(ltf_tests::unique_prefix("cascade-race")))?);
    let ctx = ChangeContext::default();
    for (id, fields) in
        [("contacts", json!([{"name": "name", "type": "text"}])), ("deals", json!([{"name": "owner", "type": "link"}]))]
    {
        let input: CreateTableInput = serde_json::from_value(json!({"id": id, "name": id, "fields": fields}))?;
        CreateTable.run(&db.pool, &codec, &ctx, input).await?;
    }
    let create = |table: &str, fields: serde_json::Value| {
        let input = CreateRecordInput { table_id: table.into(), fields: fields.as_object().cloned().unwrap_or_default() };
        let (pool, codec, ctx) = (db.pool.clone(), codec.clone(), ctx.clone());
        async move { anyhow::Ok(CreateRecord.run(&pool, &codec, &ctx, input).await?.value.id) }
    };
    let ada = create("contacts", json!({"name": "Ada"})).await?;
    let deal = create("deals", json!({"owner": ada})).await?;

    // The deal's deletion holds its row lock, not yet committed.
    let mut deleting_deal = db.pool.begin().await?;
    let input = DeleteRecordInput { table_id: "deals".into(), record: RecordRef::any_version(&deal) };
    DeleteRecord.execute(&mut deleting_deal, &codec, &ctx, input).await?;
    // Ada's deletion commits; its RecordDeleted goes to the cascade.
    let input = DeleteRecordInput { table_id: "contacts".into(), record: RecordRef::any_version(&ada) };
    let deleted = DeleteRecord.run(&db.pool, &codec, &ctx, input).await?.events.remove(0);
    let meta = Meta { topic: "t".into(), partition: 0, offset: 0, key: None, timestamp_ms: None, headers: Default::default() };
    let event = Event { event: deleted, meta: meta.into() };
    let dedup = Arc::new(DedupStore::new(db.pool.clone(), Duration::from_secs(3600)));
    let cascade = tokio::spawn(async move {
        let ctx = HandlerContext::new("g", "cascade", 1, Some(dedup));
        CascadeHandler::new(codec).handle(&ctx, &event).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    deleting_deal.commit().await?;
    let result = tokio::time::timeout(Duration::from_secs(10), cascade).await??;
    ensure!(result.is_ok(), "the cascade failed: {result:?}");
    let updates: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ltf_outbox WHERE event_type = 'record-updated'").fetch_one(&db.pool).await?;
    assert_eq!(updates, 0, "nothing to unlink: the deal is gone");
    db.drop_database().await
}

/// A webhook host that answers 2xx with a huge body: the worker reads a bounded part of
/// it, and stores and emits only a bounded excerpt.
#[tokio::test]
async fn a_huge_webhook_answer_is_read_bounded_and_only_an_excerpt_is_kept() -> Result<()> {
    use ltf_workers::automation::{SsrfGuard, Webhooks};

    let big = serde_json::to_vec(&json!({"blob": "z".repeat(4 * 1024 * 1024)}))?;
    let app = axum::Router::new()
        .route("/big", axum::routing::post(move || async move { ([("content-type", "application/json")], big) }));
    let server = ltf_tests::api::Server::start(app).await?;
    let webhooks = Webhooks::new(SsrfGuard::new(["127.0.0.1".to_owned()]), Duration::from_secs(10))?;
    let data = webhooks
        .post(&format!("{}/big", server.url), &json!({}), "key-1", None, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(data["status"], 200);
    let kept = serde_json::to_vec(&data)?.len();
    ensure!(kept <= 16 * 1024, "{kept} bytes of the answer kept in the step and its event");
    assert_eq!(data["responseTruncated"], true, "{:?}", data.keys().collect::<Vec<_>>());
    ensure!(data["responseExcerpt"].as_str().is_some_and(|e| e.starts_with("{\"blob\":\"zzz")), "an excerpt of the start");
    server.stop().await
}

/// An automation whose action writes to its own trigger table: each run's record starts
/// the next run. The chain stops at the depth limit (8) with a run failed for
/// `loop_detected`, instead of running forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_automation_triggering_itself_stops_at_the_depth_limit_with_loop_detected() -> Result<()> {
    let p = Platform::start("auto-loop").await?;
    tasks(&p).await?;
    p.create_automation(json!({
        "id": "echo", "name": "Echo",
        "trigger": {"event": "record-created", "tableId": "tasks"},
        "actions": [{"id": "again", "type": "create_record", "tableId": "tasks", "fields": {"title": "again"}}]
    }))
    .await?;
    p.create_record("tasks", json!({"title": "first"})).await?;
    let failed = eventually("a run failed for loop_detected", WAIT, || async {
        let runs = p.runs("echo").await?;
        ensure!(runs.len() <= 9, "{} runs: the chain went past the limit", runs.len());
        Ok(runs.into_iter().find(|r| r["status"] == "failed"))
    })
    .await?;
    ensure!(failed["error"].as_str().is_some_and(|e| e.contains("loop_detected")), "{failed}");
    p.wait_drained(WAIT).await?;
    let runs = p.runs("echo").await?;
    assert_eq!(runs.len(), 9, "8 runs in the chain, the 9th refused");
    assert_eq!(runs.iter().filter(|r| r["status"] == "succeeded").count(), 8);
    assert_eq!(p.count("ltf_records").await?, 9, "the first record and one per run that ran");
    p.stop().await
}

/// Writers of the same tables at once — API batch updates in random order, single
/// updates and deletes, the delete cascade, and automation-style record actions (an
/// update and an automation event in one transaction) — never deadlock: every writer
/// locks records (by id), then aggregate sequences, then the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_cascades_and_record_actions_never_deadlock() -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use ltf_consumers::{DedupStore, Event, Handler, HandlerContext, Meta};
    use ltf_domain::usecases::{
        ChangeContext, CreateRecord, CreateRecordInput, CreateTable, CreateTableInput, DeleteRecord, DeleteRecordInput,
        RecordPatch, RecordRef, UpdateMultipleRecords, UpdateMultipleRecordsInput, UpdateRecord, UpdateRecordInput, UseCase,
        UseCaseError,
    };
    use ltf_domain::RecordLimits;
    use ltf_schemas::{ActionExecuted, ActionResult, EventCodec, EventPayload, TopicNames};
    use ltf_workers::automation::CascadeHandler;
    use rand::seq::SliceRandom;
    use rand::Rng;

    let db = ltf_tests::fresh_database().await?;
    let codec = Arc::new(EventCodec::new(&ltf_tests::registry_url(), TopicNames::new(ltf_tests::unique_prefix("deadlocks")))?);
    let ctx = ChangeContext::default();
    for (id, fields) in [
        ("contacts", json!([{"name": "name", "type": "text"}, {"name": "n", "type": "integer"}])),
        (
            "deals",
            json!([{"name": "owner", "type": "link"}, {"name": "people", "type": "link"}, {"name": "n", "type": "integer"}]),
        ),
    ] {
        let input: CreateTableInput = serde_json::from_value(json!({"id": id, "name": id, "fields": fields}))?;
        CreateTable.run(&db.pool, &codec, &ctx, input).await?;
    }
    let create = |table: &'static str, fields: serde_json::Value| {
        let input = CreateRecordInput { table_id: table.into(), fields: fields.as_object().cloned().unwrap_or_default() };
        let (pool, codec, ctx) = (db.pool.clone(), codec.clone(), ctx.clone());
        async move { anyhow::Ok(CreateRecord.run(&pool, &codec, &ctx, input).await?.value.id) }
    };
    let mut contacts = Vec::new();
    for i in 0..12 {
        contacts.push(create("contacts", json!({"name": format!("c{i}"), "n": 0})).await?);
    }
    let mut deals = Vec::new();
    for i in 0..12 {
        let (a, b) = (&contacts[i], &contacts[(i + 1) % 12]);
        deals.push(create("deals", json!({"owner": a, "people": [a, b], "n": 0})).await?);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let (deadlocks, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Counts a failure: a deadlock is what this test is about; a record deleted by another
    // writer meanwhile is a normal race.
    let judge = {
        let deadlocks = deadlocks.clone();
        move |e: &UseCaseError| -> Result<()> {
            match e {
                UseCaseError::Db(db) if ltf_pg::classify(db) == ltf_pg::PgFailure::Conflict => {
                    deadlocks.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                UseCaseError::RecordNotFound { .. } => Ok(()),
                other => Err(anyhow::anyhow!("unexpected failure: {other}")),
            }
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    // API batch updates of deals, ids in random order, in their own transaction (no retry).
    for _ in 0..3 {
        let (pool, codec, ctx, deals, judge, done) =
            (db.pool.clone(), codec.clone(), ctx.clone(), deals.clone(), judge.clone(), done.clone());
        tasks.spawn(async move {
            while std::time::Instant::now() < deadline {
                let mut ids = deals.clone();
                ids.shuffle(&mut rand::rng());
                let n = rand::rng().random_range(0..1000);
                let patches = ids[..4]
                    .iter()
                    .map(|id| RecordPatch {
                        record_id: id.clone(),
                        fields: json!({"n": n}).as_object().cloned().unwrap_or_default(),
                        expected_version: None,
                    })
                    .collect();
                let input = UpdateMultipleRecordsInput { table_id: "deals".into(), patches };
                let mut tx = pool.begin().await?;
                match UpdateMultipleRecords::new(RecordLimits::default()).execute(&mut tx, &codec, &ctx, input).await {
                    Ok(_) => tx.commit().await?,
                    Err(e) => judge(&e)?,
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(())
        });
    }
    // Deletes of contacts, each followed by its cascade (as the automation worker runs it).
    {
        let (pool, codec, ctx, contacts, judge, done) =
            (db.pool.clone(), codec.clone(), ctx.clone(), contacts.clone(), judge.clone(), done.clone());
        let deadlocks = deadlocks.clone();
        tasks.spawn(async move {
            let dedup = Arc::new(DedupStore::new(pool.clone(), Duration::from_secs(3600)));
            let cascade = CascadeHandler::new(codec.clone());
            for id in contacts.iter().take(8) {
                if std::time::Instant::now() >= deadline {
                    break;
                }
                let input = DeleteRecordInput { table_id: "contacts".into(), record: RecordRef::any_version(id) };
                let mut tx = pool.begin().await?;
                let deleted = match DeleteRecord.execute(&mut tx, &codec, &ctx, input).await {
                    Ok(o) => {
                        tx.commit().await?;
                        o.events
                    }
                    Err(e) => {
                        judge(&e)?;
                        continue;
                    }
                };
                for e in deleted {
                    let meta = Meta {
                        topic: "t".into(),
                        partition: 0,
                        offset: 0,
                        key: None,
                        timestamp_ms: None,
                        headers: Default::default(),
                    };
                    let hctx = HandlerContext::new("g", "cascade", 1, Some(dedup.clone()));
                    if let Err(err) = cascade.handle(&hctx, &Event { event: e, meta: meta.into() }).await {
                        if err.message.contains("deadlock") {
                            deadlocks.fetch_add(1, Ordering::SeqCst);
                        } else {
                            anyhow::bail!("cascade failed: {err:?}");
                        }
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            anyhow::Ok(())
        });
    }
    // Automation-style record actions: update one deal and append an automation event in
    // one transaction; and API single updates of contacts.
    for worker in 0..2 {
        let (pool, codec, ctx, deals, contacts, judge, done) =
            (db.pool.clone(), codec.clone(), ctx.clone(), deals.clone(), contacts.clone(), judge.clone(), done.clone());
        tasks.spawn(async move {
            while std::time::Instant::now() < deadline {
                let (table, id) = if worker == 0 {
                    ("deals", deals[rand::rng().random_range(0..deals.len())].clone())
                } else {
                    ("contacts", contacts[rand::rng().random_range(0..contacts.len())].clone())
                };
                let patch = RecordPatch {
                    record_id: id,
                    fields: json!({"n": 7}).as_object().cloned().unwrap_or_default(),
                    expected_version: None,
                };
                let mut tx = pool.begin().await?;
                match UpdateRecord.execute(&mut tx, &codec, &ctx, UpdateRecordInput { table_id: table.into(), patch }).await {
                    Ok(_) => {
                        let executed = ltf_schemas::DomainEvent::new(EventPayload::ActionExecuted(ActionExecuted {
                            automation_id: "auto".into(),
                            action_id: "a".into(),
                            run_id: uuid::Uuid::new_v4().to_string(),
                            result: ActionResult::Success,
                            data: None,
                            error: None,
                        }));
                        match ltf_domain::outbox::append(&mut tx, &codec, None, vec![executed]).await {
                            Ok(_) => tx.commit().await?,
                            Err(e) => judge(&UseCaseError::from(e))?,
                        }
                    }
                    Err(e) => judge(&e)?,
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let writes = done.load(Ordering::SeqCst);
    eprintln!("{writes} writes, {} deadlocks or serialization failures", deadlocks.load(Ordering::SeqCst));
    ensure!(writes > 100, "only {writes} writes: the load did not run");
    assert_eq!(deadlocks.load(Ordering::SeqCst), 0, "no writer deadlocked");
    db.drop_database().await
}
