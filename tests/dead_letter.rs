//! Dead letters published to a real Kafka topic (topics of each test's own prefix,
//! created before use) and read back: key, value bytes, original headers and every
//! `dlq-*` header as DESIGN.md lists them; keyless messages stay keyless; a replayed dead
//! letter that fails again keeps pointing at where the event was first read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{TimeZone, Utc};
use ltf_consumers::middleware::{DeadLetter, DeadLetterPublisher, DlqHeaders, UNDECODABLE_HANDLER};
use ltf_consumers::ErrorClass;
use ltf_consumers::Meta;
use ltf_kafka::topics::{ensure_topics, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::{AggregateType, EventCodec, TopicNames};
use ltf_tests::{bootstrap, headers, read_n, registry_url, unique_prefix};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;

const GROUP: &str = "latechforce.automation";

struct Setup {
    dlq: DeadLetterPublisher,
    event_topic: String,
    dlq_topic: String,
}

/// The prefix's table topic and this group's DLQ topic, created; a dead-letter publisher.
async fn setup(test: &str) -> Result<Setup> {
    let topics = TopicNames::new(unique_prefix(test));
    let event_topic = topics.events(AggregateType::Table);
    let dlq_topic = TopicNames::dlq(&event_topic, GROUP);
    let specs: Vec<TopicSpec> = [&event_topic, &TopicNames::retry(&event_topic, GROUP), &dlq_topic]
        .into_iter()
        .map(|name| TopicSpec { name: name.clone(), partitions: 2, replication_factor: 1 })
        .collect();
    ensure_topics(&bootstrap(), &specs).await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics)?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    Ok(Setup { dlq: DeadLetterPublisher::new(publisher, GROUP), event_topic, dlq_topic })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn one(m: &OwnedMessage, name: &str) -> Vec<String> {
    headers(m).into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
}

#[tokio::test]
async fn a_dead_letter_keeps_the_message_and_adds_every_dlq_header() -> Result<()> {
    let s = setup("dlq-basic").await?;
    let original = pairs(&[
        ("event-id", "0b0c8f5e-6a39-4f7e-9d1a-2b3c4d5e6f70"),
        ("event-type", "record-created"),
        ("event-version", "2"),
        ("content-type", "application/vnd.latechforce.event+avro"),
        ("correlation-id", "corr-1"),
        ("ordering-key", "rec_1"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ]);
    let dl = DeadLetter {
        original: Meta {
            topic: s.event_topic.as_str().into(),
            partition: 1,
            offset: 1234,
            key: Some("tbl_1".into()),
            timestamp_ms: Some(1_764_237_000_000),
            headers: original.clone().into(),
        },
        // Not UTF-8, with zero bytes: must arrive byte for byte.
        value: vec![0, 0, 0, 0, 42, 0xff, 0xfe, 0, 1, 2],
        error_class: ErrorClass::ActionFailed,
        error_message: "webhook refused the request: 422 Unprocessable Entity".into(),
        attempts: 1,
        group: GROUP.into(),
        handler: "run-automations".into(),
        first_failure: Utc.timestamp_millis_opt(1_764_237_600_000).unwrap(),
        last_failure: Utc.timestamp_millis_opt(1_764_237_601_250).unwrap(),
    };
    s.dlq.publish(&dl).await?;

    let got = read_n(std::slice::from_ref(&s.dlq_topic), 1, Duration::from_secs(30))?;
    let m = &got[0];
    assert_eq!(m.topic(), s.dlq_topic);
    assert_eq!(m.key(), Some(&b"tbl_1"[..]));
    assert_eq!(m.payload(), Some(&dl.value[..]));
    let hs = headers(m);
    assert_eq!(&hs[..original.len()], &original[..], "original headers first, unchanged and in order");
    let expect = [
        (DlqHeaders::ERROR_CLASS, "action_failed".to_owned()),
        (DlqHeaders::ERROR_MESSAGE, dl.error_message.clone()),
        (DlqHeaders::ATTEMPTS, "1".to_owned()),
        (DlqHeaders::ORIGINAL_TOPIC, s.event_topic.clone()),
        (DlqHeaders::ORIGINAL_PARTITION, "1".to_owned()),
        (DlqHeaders::ORIGINAL_OFFSET, "1234".to_owned()),
        (DlqHeaders::ORIGINAL_TIMESTAMP, "1764237000000".to_owned()),
        (DlqHeaders::CONSUMER_GROUP, GROUP.to_owned()),
        (DlqHeaders::HANDLER, "run-automations".to_owned()),
        (DlqHeaders::FIRST_FAILURE, "2025-11-27T10:00:00.000Z".to_owned()),
        (DlqHeaders::LAST_FAILURE, "2025-11-27T10:00:01.250Z".to_owned()),
    ];
    for (name, value) in &expect {
        assert_eq!(one(m, name), vec![value.clone()], "{name}");
    }
    assert_eq!(hs.len(), original.len() + expect.len(), "nothing else: {hs:?}");
    Ok(())
}

#[tokio::test]
async fn a_keyless_replayed_dead_letter_goes_to_the_same_dlq_with_its_origin() -> Result<()> {
    let s = setup("dlq-replay").await?;
    let retry_topic = TopicNames::retry(&s.event_topic, GROUP);
    // A poison message that was dead-lettered once, replayed to the retry topic, and
    // failed again: its old dlq-* headers say where it was first read.
    let dl = DeadLetter {
        original: Meta {
            topic: retry_topic.as_str().into(),
            partition: 0,
            offset: 3,
            key: None,
            timestamp_ms: Some(1_764_300_000_000),
            headers: pairs(&[
                ("x-origin", "legacy-importer"),
                (DlqHeaders::ORIGINAL_TOPIC, &s.event_topic),
                (DlqHeaders::ORIGINAL_PARTITION, "1"),
                (DlqHeaders::ORIGINAL_OFFSET, "99"),
                (DlqHeaders::ORIGINAL_TIMESTAMP, "1764200000000"),
                (DlqHeaders::ERROR_CLASS, "bad_avro"),
                (DlqHeaders::ATTEMPTS, "0"),
                (DlqHeaders::HANDLER, UNDECODABLE_HANDLER),
            ])
            .into(),
        },
        value: b"not avro at all".to_vec(),
        error_class: ErrorClass::BadAvro,
        error_message: "not Confluent-framed: magic byte is 0x6e, expected 0x00".into(),
        attempts: 0,
        group: GROUP.into(),
        handler: UNDECODABLE_HANDLER.into(),
        first_failure: Utc.timestamp_millis_opt(1_764_300_000_500).unwrap(),
        last_failure: Utc.timestamp_millis_opt(1_764_300_000_500).unwrap(),
    };
    s.dlq.publish(&dl).await?;

    let got = read_n(std::slice::from_ref(&s.dlq_topic), 1, Duration::from_secs(30))?;
    let m = &got[0];
    assert_eq!(m.key(), None, "a keyless message stays keyless");
    assert_eq!(m.payload(), Some(&b"not avro at all"[..]));
    assert_eq!(one(m, "x-origin"), vec!["legacy-importer"]);
    assert_eq!(one(m, DlqHeaders::ORIGINAL_TOPIC), vec![s.event_topic.clone()]);
    assert_eq!(one(m, DlqHeaders::ORIGINAL_PARTITION), vec!["1"]);
    assert_eq!(one(m, DlqHeaders::ORIGINAL_OFFSET), vec!["99"]);
    assert_eq!(one(m, DlqHeaders::ORIGINAL_TIMESTAMP), vec!["1764200000000"]);
    assert_eq!(one(m, DlqHeaders::HANDLER), vec!["-"]);
    assert_eq!(one(m, DlqHeaders::ATTEMPTS), vec!["0"]);
    assert_eq!(one(m, DlqHeaders::ERROR_MESSAGE), vec![dl.error_message.clone()]);
    assert_eq!(one(m, DlqHeaders::FIRST_FAILURE), vec!["2025-11-28T03:20:00.500Z"]);
    assert_eq!(headers(m).len(), 1 + 11, "old dlq-* headers replaced, not duplicated");
    Ok(())
}
