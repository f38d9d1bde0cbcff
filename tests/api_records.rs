//! The record endpoints of the HTTP API end to end, against a real PostgreSQL (one fresh
//! database per test) and the real schema registry (one topic prefix per test): HTTP →
//! rows in PostgreSQL → outbox rows with the right topic, key, headers and payload; with
//! `?waitForPublish=true` and the real relay, on to Kafka.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ltf_domain::store::records;
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_producers::api::ApiKey;
use ltf_producers::relay::{Relay, RelayConfig};
use ltf_schemas::{AggregateType, DomainEvent, EventCodec, EventPayload, Fields};
use ltf_tests::api::{error_with, json_with, TestApi, PRINCIPAL};
use ltf_tests::{bootstrap, headers, outbox_rows, read_n, registry_url, OutboxRow};
use rdkafka::Message;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TABLE: &str = "tbl_tasks";
const RECORDS: &str = "/v1/tables/tbl_tasks/records";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn setup(test: &str) -> Result<TestApi> {
    setup_with(test, |_| {}).await
}

async fn setup_with(test: &str, configure: impl FnOnce(&mut ltf_producers::api::ApiConfig)) -> Result<TestApi> {
    let api = TestApi::start_with(test, configure).await?;
    let fields = json!([
        {"name": "title", "type": "text"},
        {"name": "points", "type": "integer"},
        {"name": "done", "type": "boolean"},
        {"name": "due", "type": "date"},
        {"name": "meta", "type": "json"},
    ]);
    api.create_table(TABLE, fields).await?;
    Ok(api)
}

fn f(v: &Value) -> Fields {
    v.as_object().cloned().expect("a JSON object")
}

/// Creates one record over HTTP; returns the answer.
async fn create(api: &TestApi, fields: Value) -> Result<Value> {
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": fields})).send().await?;
    json_with(r, StatusCode::CREATED).await
}

/// Creates `n` records in one batch; returns their ids.
async fn create_many(api: &TestApi, n: usize) -> Result<Vec<String>> {
    let records: Vec<Value> = (0..n).map(|i| json!({"fields": {"title": format!("task {i}"), "points": i}})).collect();
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&json!({"records": records})).send().await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    Ok(body["records"].as_array().context("records")?.iter().map(|r| r["id"].as_str().unwrap_or_default().to_owned()).collect())
}

fn ids(body: &Value) -> Vec<String> {
    body["eventIds"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Decodes an outbox value with a codec whose caches are empty: the writer schema comes
/// from the registry by id.
async fn decode(codec: &EventCodec, row: &OutboxRow) -> Result<DomainEvent> {
    let reader = EventCodec::new(&registry_url(), codec.topics().clone())?;
    Ok(reader.decode(&row.value).await?)
}

#[tokio::test]
async fn post_record_writes_the_row_and_an_outbox_row_with_topic_key_headers_and_payload() -> Result<()> {
    let api = setup("api-create").await?;
    let fields = json!({"title": "Write tests", "points": 3, "done": false, "due": "2026-12-01", "meta": {"tags": ["a", 1]}});
    let r = api
        .call(Method::POST, RECORDS)
        .header("x-request-id", "req-create-1")
        .header("x-correlation-id", "flow-42")
        .header("traceparent", TRACEPARENT)
        .json(&json!({"fields": fields}))
        .send()
        .await?;
    assert_eq!(r.headers()["x-request-id"], "req-create-1", "the request id is echoed");
    let body = json_with(r, StatusCode::CREATED).await?;
    let record = &body["record"];
    let id = record["id"].as_str().context("record id")?;
    assert_eq!(record["tableId"], TABLE);
    assert_eq!(record["fields"], fields);
    assert_eq!(record["version"], 1);
    assert_eq!(record["createdBy"], PRINCIPAL);
    assert_eq!(body["publication"], "queued");

    let stored = records::get(&mut *api.db.pool.acquire().await?, id).await?.context("the row")?;
    assert_eq!((stored.fields, stored.version), (f(&fields), 1));

    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(ids(&body), vec![row.event_id.to_string()], "eventIds name the outbox rows");
    assert_eq!(row.topic, api.codec.topics().events(AggregateType::Table));
    assert_eq!(row.key, TABLE, "key = aggregateId = table id");
    assert_eq!(row.event_type, "record-created");
    assert_eq!(row.header("event-id"), Some(row.event_id.to_string().as_str()));
    assert_eq!(row.header("event-type"), Some("record-created"));
    assert_eq!(row.header("ordering-key"), Some(id));
    assert_eq!(row.header("correlation-id"), Some("flow-42"), "X-Correlation-Id becomes the correlation id");
    assert_eq!(row.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(row.header("causation-id"), None, "a user action has no cause");

    let event = decode(&api.codec, row).await?;
    assert_eq!(event.event_id(), row.event_id);
    assert_eq!(event.envelope.correlation_id, "flow-42");
    assert_eq!(event.envelope.aggregate_sequence, 1);
    let EventPayload::RecordCreated(p) = &event.payload else { bail!("not RecordCreated: {event:?}") };
    assert_eq!((p.table_id.as_str(), p.record_id.as_str(), p.record_version), (TABLE, id, 1));
    assert_eq!(p.fields, f(&fields));
    assert_eq!(p.created_by.as_deref(), Some(PRINCIPAL));
    api.stop().await
}

#[tokio::test]
async fn a_100_record_batch_yields_100_rows_and_100_outbox_rows_correlated_by_the_request_id() -> Result<()> {
    let api = setup("api-batch-100").await?;
    let records: Vec<Value> = (0..100).map(|i| json!({"fields": {"title": format!("task {i}"), "points": i}})).collect();
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&json!({"records": records})).send().await?;
    let request_id = r.headers()["x-request-id"].to_str()?.to_owned();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "a generated request id: {request_id}");
    let body = json_with(r, StatusCode::CREATED).await?;
    assert_eq!(body["records"].as_array().map(Vec::len), Some(100));
    assert_eq!(api.count("ltf_records").await?, 100);
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 100);
    assert_eq!(ids(&body), rows.iter().map(|r| r.event_id.to_string()).collect::<Vec<_>>());
    assert_eq!(rows.iter().map(|r| r.aggregate_sequence).collect::<Vec<_>>(), (1..=100).collect::<Vec<i64>>());
    assert!(rows.iter().all(|r| r.header("correlation-id") == Some(request_id.as_str())), "correlation id = request id");
    for (i, (row, record)) in rows.iter().zip(body["records"].as_array().context("records")?).enumerate() {
        let EventPayload::RecordCreated(p) = api.codec.decode(&row.value).await?.payload else { bail!("not RecordCreated") };
        assert_eq!(json!(p.record_id), record["id"], "event {i}");
        assert_eq!(p.fields["points"], json!(i));
    }
    api.stop().await
}

#[tokio::test]
async fn a_batch_with_one_invalid_record_yields_no_row_and_no_outbox_row() -> Result<()> {
    let api = setup("api-batch-invalid").await?;
    let mut records: Vec<Value> = (0..100).map(|i| json!({"fields": {"title": format!("task {i}")}})).collect();
    records[42] = json!({"fields": {"title": "bad", "points": 1.5}});
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&json!({"records": records})).send().await?;
    let error = error_with(r, StatusCode::BAD_REQUEST, "wrong_field_type").await?;
    assert_eq!(error["details"]["index"], 42);
    assert_eq!(error["details"]["field"], "points");
    assert_eq!(api.count("ltf_records").await?, 0);
    assert_eq!(api.count("ltf_outbox").await?, 0);
    api.stop().await
}

#[tokio::test]
async fn patch_record_updates_with_expected_version_and_refuses_a_stale_one() -> Result<()> {
    let api = setup("api-update").await?;
    let created = create(&api, json!({"title": "a", "points": 1, "done": false})).await?;
    let id = created["record"]["id"].as_str().context("id")?;
    let path = format!("{RECORDS}/{id}");

    let patch = json!({"fields": {"points": 2, "done": null, "due": "2026-01-01"}, "expectedVersion": 1});
    let r = api.call(Method::PATCH, &path).header("x-correlation-id", "flow-upd").json(&patch).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    assert_eq!(body["record"]["version"], 2);
    assert_eq!(body["record"]["fields"], json!({"title": "a", "points": 2, "due": "2026-01-01"}));
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(ids(&body), vec![rows[1].event_id.to_string()]);
    assert_eq!(rows[1].header("correlation-id"), Some("flow-upd"));
    let event = decode(&api.codec, &rows[1]).await?;
    let EventPayload::RecordUpdated(p) = &event.payload else { bail!("not RecordUpdated: {event:?}") };
    assert_eq!(p.changed_fields, vec!["done", "due", "points"]);
    assert_eq!(p.record_version, 2);
    assert_eq!(p.previous_fields, f(&json!({"title": "a", "points": 1, "done": false})));

    let stale = json!({"fields": {"points": 3}, "expectedVersion": 1});
    let r = api.call(Method::PATCH, &path).json(&stale).send().await?;
    let error = error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    assert_eq!(error["details"], json!({"recordId": id, "expectedVersion": 1, "actualVersion": 2}));
    assert_eq!(api.count("ltf_outbox").await?, 2, "a stale change writes nothing");

    let r = api.call(Method::PATCH, &path).json(&json!({"fields": {"points": 2}})).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    assert_eq!((body["record"]["version"].clone(), ids(&body).len()), (json!(2), 0), "no change, no event");
    assert_eq!(api.count("ltf_outbox").await?, 2);
    api.stop().await
}

#[tokio::test]
async fn patch_records_updates_a_batch_in_one_transaction() -> Result<()> {
    let api = setup("api-update-many").await?;
    let ids_created = create_many(&api, 3).await?;
    let patches: Vec<Value> =
        ids_created.iter().map(|id| json!({"id": id, "fields": {"done": true}, "expectedVersion": 1})).collect();
    let r = api.call(Method::PATCH, RECORDS).json(&json!({"records": patches})).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    let records = body["records"].as_array().context("records")?;
    assert_eq!(records.iter().map(|r| r["id"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ids_created);
    assert!(records.iter().all(|r| r["version"] == 2 && r["fields"]["done"] == true));
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 6);
    assert_eq!(ids(&body), rows[3..].iter().map(|r| r.event_id.to_string()).collect::<Vec<_>>());
    assert!(rows[3..].iter().all(|r| r.event_type == "record-updated"));

    // One stale version refuses the whole batch.
    let patches = json!({"records": [
        {"id": ids_created[0], "fields": {"points": 10}},
        {"id": ids_created[1], "fields": {"points": 11}, "expectedVersion": 1},
    ]});
    let r = api.call(Method::PATCH, RECORDS).json(&patches).send().await?;
    error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    assert_eq!(api.count("ltf_outbox").await?, 6);
    api.stop().await
}

#[tokio::test]
async fn delete_record_with_expected_version_writes_record_deleted() -> Result<()> {
    let api = setup("api-delete").await?;
    let created = create(&api, json!({"title": "gone", "points": 5})).await?;
    let id = created["record"]["id"].as_str().context("id")?;
    let path = format!("{RECORDS}/{id}");

    let r = api.call(Method::DELETE, &format!("{path}?expectedVersion=2")).send().await?;
    error_with(r, StatusCode::CONFLICT, "stale_version").await?;
    assert_eq!(api.count("ltf_records").await?, 1);

    let r = api.call(Method::DELETE, &format!("{path}?expectedVersion=1")).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    assert_eq!(body["record"]["fields"], json!({"title": "gone", "points": 5}), "the record as it was");
    assert_eq!(api.count("ltf_records").await?, 0);
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(ids(&body), vec![rows[1].event_id.to_string()]);
    let event = decode(&api.codec, &rows[1]).await?;
    let EventPayload::RecordDeleted(p) = &event.payload else { bail!("not RecordDeleted: {event:?}") };
    assert_eq!((p.record_id.as_str(), p.record_version), (id, 2));
    assert_eq!(p.deleted_fields, f(&json!({"title": "gone", "points": 5})));

    let r = api.call(Method::GET, &path).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    api.stop().await
}

#[tokio::test]
async fn post_records_delete_deletes_a_batch() -> Result<()> {
    let api = setup("api-delete-many").await?;
    let created = create_many(&api, 3).await?;
    let body = json!({"records": [{"id": created[0]}, {"id": created[2], "expectedVersion": 1}]});
    let r = api.call(Method::POST, &format!("{RECORDS}/delete")).json(&body).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    assert_eq!(body["records"].as_array().map(Vec::len), Some(2));
    assert_eq!(api.count("ltf_records").await?, 1);
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(rows.len(), 5);
    assert_eq!(ids(&body), rows[3..].iter().map(|r| r.event_id.to_string()).collect::<Vec<_>>());
    assert!(rows[3..].iter().all(|r| r.event_type == "record-deleted"));
    api.stop().await
}

#[tokio::test]
async fn get_record_reads_it_within_its_table_only() -> Result<()> {
    let api = setup("api-get").await?;
    api.create_table("tbl_other", json!([{"name": "title", "type": "text"}])).await?;
    let created = create(&api, json!({"title": "read me"})).await?;
    let id = created["record"]["id"].as_str().context("id")?;
    let r = api.call(Method::GET, &format!("{RECORDS}/{id}")).send().await?;
    let body = json_with(r, StatusCode::OK).await?;
    assert_eq!(body["record"], created["record"]);
    let r = api.call(Method::GET, &format!("/v1/tables/tbl_other/records/{id}")).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "record_not_found").await?;
    let r = api.call(Method::GET, &format!("/v1/tables/tbl_nope/records/{id}")).send().await?;
    error_with(r, StatusCode::NOT_FOUND, "unknown_table").await?;
    api.stop().await
}

#[tokio::test]
async fn the_principal_of_the_key_creates_the_record_whichever_header_carries_it() -> Result<()> {
    let robot_key = "robot-key-fedcba9876543210";
    let api = setup_with("api-principal", |c| c.api_keys.push(ApiKey::new("robot", robot_key))).await?;
    let r = api
        .anonymous(Method::POST, RECORDS)
        .header("x-api-key", robot_key)
        .json(&json!({"fields": {"title": "by robot"}}))
        .send()
        .await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    assert_eq!(body["record"]["createdBy"], "robot");
    let event = decode(&api.codec, &outbox_rows(&api.db.pool).await?[0]).await?;
    let EventPayload::RecordCreated(p) = &event.payload else { bail!("not RecordCreated") };
    assert_eq!(p.created_by.as_deref(), Some("robot"));
    api.stop().await
}

/// The API's topics created and a relay publishing its outbox until `stop` is sent.
async fn start_relay(
    api: &TestApi,
) -> Result<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), ltf_producers::relay::RelayError>>)> {
    let specs: Vec<TopicSpec> = api
        .codec
        .topics()
        .all_events()
        .into_iter()
        .map(|name| TopicSpec { name, partitions: 1, replication_factor: 1 })
        .collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), api.codec.clone())?;
    let relay = Relay::new(api.db.pool.clone(), publisher, RelayConfig::default())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((stop, relay))
}

#[tokio::test]
async fn wait_for_publish_answers_201_published_once_the_relay_published_the_event_to_kafka() -> Result<()> {
    let api = setup("api-wait-published").await?;
    let topics = api.codec.topics();
    let (stop, relay) = start_relay(&api).await?;

    let started = Instant::now();
    let r = api
        .call(Method::POST, &format!("{RECORDS}?waitForPublish=true"))
        .header("x-correlation-id", "flow-published")
        .json(&json!({"fields": {"title": "published"}}))
        .send()
        .await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    ensure!(started.elapsed() < Duration::from_secs(5), "answered in {:?}", started.elapsed());
    assert_eq!(body["publication"], "published");
    assert!(body.get("message").is_none());
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(ids(&body), vec![rows[0].event_id.to_string()]);
    assert!(rows[0].sent_at.is_some(), "marked sent by the relay");

    let messages = read_n(&[topics.events(AggregateType::Table)], 1, Duration::from_secs(30))?;
    let m = &messages[0];
    assert_eq!(m.key(), Some(TABLE.as_bytes()), "key = table id");
    let h = headers(m);
    let header = |name: &str| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("event-id"), Some(rows[0].event_id.to_string().as_str()));
    assert_eq!(header("correlation-id"), Some("flow-published"));
    let event = api.codec.decode(m.payload().context("a value")?).await?;
    assert_eq!(event.event_id(), rows[0].event_id);

    let _ = stop.send(());
    relay.await??;
    api.stop().await
}

#[tokio::test]
async fn wait_for_publish_answers_202_queued_when_the_relay_does_not_publish_in_time() -> Result<()> {
    let api = setup_with("api-wait-timeout", |c| c.wait_for_publish_timeout_ms = 300).await?;
    let started = Instant::now();
    let r = api
        .call(Method::POST, &format!("{RECORDS}/batch?waitForPublish=true"))
        .json(&json!({"records": [{"fields": {"title": "a"}}, {"fields": {"title": "b"}}]}))
        .send()
        .await?;
    let body = json_with(r, StatusCode::ACCEPTED).await?;
    let waited = started.elapsed();
    ensure!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(body["publication"], "queued");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("not lost")), "{body}");
    let rows = outbox_rows(&api.db.pool).await?;
    assert_eq!(ids(&body), rows.iter().map(|r| r.event_id.to_string()).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r.sent_at.is_none()), "queued in the outbox");
    assert_eq!(api.count("ltf_records").await?, 2, "committed");
    api.stop().await
}

/// The seen case: a record with a 1.1 MB text field was accepted, then wedged the relay
/// for every table. An event the topics cannot take is refused at the edge, whole, and
/// the other tables keep publishing.
#[tokio::test]
async fn an_event_too_large_for_kafka_is_refused_413_naming_the_field_and_other_tables_still_publish() -> Result<()> {
    let api = setup("api-event-too-large").await?;
    api.create_table("notes", json!([{"name": "text", "type": "text"}])).await?;
    let (stop, relay) = start_relay(&api).await?;

    let huge = "x".repeat(1_100_000);
    let r = api.call(Method::POST, RECORDS).json(&json!({"fields": {"title": huge, "points": 1}})).send().await?;
    let error = error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "event_too_large").await?;
    assert_eq!(error["details"]["field"], "title", "{error}");
    ensure!(error["details"]["bytes"].as_u64() > error["details"]["limit"].as_u64(), "{error}");
    // A batch holding one such record is refused whole.
    let batch = json!({"records": [{"fields": {"title": "small"}}, {"fields": {"title": huge}}]});
    let r = api.call(Method::POST, &format!("{RECORDS}/batch")).json(&batch).send().await?;
    error_with(r, StatusCode::PAYLOAD_TOO_LARGE, "event_too_large").await?;
    assert_eq!(api.count("ltf_records").await?, 0, "nothing written");
    assert_eq!(api.count("ltf_outbox").await?, 0, "nothing queued");

    let r = api
        .call(Method::POST, "/v1/tables/notes/records?waitForPublish=true")
        .json(&json!({"fields": {"text": "still flowing"}}))
        .send()
        .await?;
    let body = json_with(r, StatusCode::CREATED).await?;
    assert_eq!(body["publication"], "published", "{body}");
    let _ = stop.send(());
    relay.await??;
    api.stop().await
}

#[tokio::test]
async fn the_event_size_limit_follows_the_smallest_max_message_bytes_of_the_event_topics() -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let topics = ltf_schemas::TopicNames::new(ltf_tests::unique_prefix("max-message-bytes"));
    let names = topics.all_events();
    assert_eq!(ltf_kafka::topics::max_message_bytes(&bootstrap(), &names).await?, None, "no topic yet: no limit of theirs");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    let limits = ["300000", "500000"];
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .zip(limits.iter().cycle())
        .map(|(name, limit)| NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("max.message.bytes", limit))
        .collect();
    for r in admin.create_topics(new.iter(), &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    assert_eq!(ltf_kafka::topics::max_message_bytes(&bootstrap(), &names).await?, Some(300_000));
    Ok(())
}
