//! One event of every type (both RecordCreated versions) through the real Kafka and the
//! real registry, read back with a plain consumer and a codec that knows nothing but the
//! registry: every field equal, keys and headers as the contract says.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ltf_kafka::topics::{ensure_topics, Ensured, TopicSpec};
use ltf_kafka::{EventPublisher, PublisherConfig};
use ltf_schemas::registry::{self, RegistryAdmin};
use ltf_schemas::{examples, EventCodec, EventPayload, EventType, TopicNames};
use ltf_tests::counting_proxy::CountingProxy;
use ltf_tests::{bootstrap, headers, read_n, registry_url, unique_prefix};
use rdkafka::message::Message;

async fn setup(test: &str) -> Result<TopicNames> {
    let topics = TopicNames::new(unique_prefix(test));
    registry::register_all(&registry_url(), &topics).await?;
    let specs: Vec<_> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 3, replication_factor: 1 }).collect();
    ensure_topics(&bootstrap(), &specs).await?;
    Ok(topics)
}

#[tokio::test]
async fn every_event_type_round_trips_through_kafka_and_the_registry() -> Result<()> {
    let topics = setup("roundtrip").await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    let events = examples::samples();
    // One through `publish`, the rest through `publish_batch`.
    let first = publisher.publish(&events[0]).await?;
    assert!(first.offset >= 0);
    let rest = publisher.publish_batch(&events[1..]).await?;
    assert_eq!(rest.len(), events.len() - 1);

    let msgs = read_n(&topics.all_events(), events.len(), Duration::from_secs(30))?;
    assert_eq!(msgs.len(), events.len());
    // A codec with empty caches: every writer schema comes from the registry by id.
    let reader = EventCodec::new(&registry_url(), topics.clone())?;
    let by_id: HashMap<_, _> = events.iter().map(|e| (e.event_id(), e)).collect();
    let mut partition_of_aggregate = HashMap::new();
    for m in &msgs {
        let decoded = reader.decode(m.payload().expect("value")).await?;
        let original = by_id[&decoded.event_id()];
        assert_eq!(&decoded, original, "every field equal for {}", original.event_type());
        assert_eq!(m.topic(), original.topic(&topics));
        assert_eq!(m.key(), Some(original.aggregate_id().as_bytes()), "key = aggregateId");
        let prev = partition_of_aggregate.insert((m.topic().to_owned(), original.aggregate_id().to_owned()), m.partition());
        assert!(prev.is_none() || prev == Some(m.partition()), "one aggregate, one partition");
        let h: HashMap<_, _> = headers(m).into_iter().collect();
        assert_eq!(h["event-id"], original.event_id().to_string());
        assert_eq!(h["event-type"], original.event_type().as_str());
        assert_eq!(h["event-version"], original.envelope.version.to_string());
        assert_eq!(h["content-type"], "application/vnd.latechforce.event+avro");
        assert_eq!(h["correlation-id"], original.envelope.correlation_id);
        assert_eq!(h["ordering-key"], original.ordering_key());
        assert_eq!(h.get("causation-id"), original.envelope.causation_id.as_ref());
        // Confluent framing: magic byte 0, then the id the registry holds for the subject.
        let value = m.payload().expect("value");
        assert_eq!(value[0], 0);
    }
    let versions: Vec<i32> = msgs
        .iter()
        .filter(|m| headers(m).iter().any(|(k, v)| k == "event-type" && v == "record-created"))
        .map(|m| headers(m).into_iter().find(|(k, _)| k == "event-version").map(|(_, v)| v.parse().unwrap()).unwrap())
        .collect();
    assert!(versions.contains(&1) && versions.contains(&2), "both RecordCreated versions written: {versions:?}");
    Ok(())
}

#[tokio::test]
async fn v1_record_created_is_read_with_the_v2_reader_and_gets_the_default() -> Result<()> {
    let topics = setup("v1v2").await?;
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    let v1 =
        examples::samples().into_iter().find(|e| e.event_type() == EventType::RecordCreated && e.envelope.version == 1).unwrap();
    publisher.publish(&v1).await?;
    let msgs = read_n(&[topics.events(v1.aggregate_type())], 1, Duration::from_secs(30))?;
    let value = msgs[0].payload().unwrap();
    // The value was written with the v1 schema (its id is v1's) ...
    let admin = RegistryAdmin::new(&registry_url());
    let subject = format!("{}-{}", topics.events(v1.aggregate_type()), EventType::RecordCreated.full_name());
    let v1_schema = admin.schema(&subject, 1).await?;
    let writer =
        EventCodec::new(&registry_url(), topics.clone())?.writer_schema(u32::from_be_bytes(value[1..5].try_into()?)).await?;
    assert_eq!(writer.canonical_form(), v1_schema.canonical_form());
    // ... and decodes with the v2 reader: createdBy takes its default.
    let decoded = EventCodec::new(&registry_url(), topics)?.decode(value).await?;
    let EventPayload::RecordCreated(p) = &decoded.payload else { panic!("not RecordCreated") };
    assert_eq!(p.created_by, None);
    assert_eq!(decoded.envelope.version, 1);
    assert_eq!(decoded, v1);
    Ok(())
}

#[tokio::test]
async fn registration_is_idempotent_and_sets_backward_transitive() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("register"));
    let first = registry::register_all(&registry_url(), &topics).await?;
    let second = registry::register_all(&registry_url(), &topics).await?;
    assert_eq!(first, second, "same ids the second time");
    let admin = RegistryAdmin::new(&registry_url());
    let mut subjects: Vec<_> = first.iter().map(|r| r.subject.clone()).collect();
    subjects.dedup();
    assert_eq!(subjects.len(), EventType::ALL.len(), "one subject per event type");
    for s in &subjects {
        assert_eq!(admin.compatibility(s).await?.as_deref(), Some("BACKWARD_TRANSITIVE"), "{s}");
    }
    let rc = subjects.iter().find(|s| s.ends_with(".RecordCreated")).unwrap();
    assert_eq!(admin.versions(rc).await?, vec![1, 2], "v1 and v2 share the RecordCreated subject");
    Ok(())
}

#[tokio::test]
async fn topics_ensure_creates_then_is_a_no_op() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("topics"));
    let specs: Vec<_> =
        topics.all_events().into_iter().map(|name| TopicSpec { name, partitions: 4, replication_factor: 1 }).collect();
    let first = ensure_topics(&bootstrap(), &specs).await?;
    assert!(first.iter().all(|(_, o)| *o == Ensured::Created), "{first:?}");
    let second = ensure_topics(&bootstrap(), &specs).await?;
    assert!(second.iter().all(|(_, o)| *o == Ensured::AlreadyExisted), "{second:?}");
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap()).create()?;
    use rdkafka::consumer::Consumer;
    let md = consumer.fetch_metadata(Some(&specs[0].name), Duration::from_secs(10))?;
    assert_eq!(md.topics()[0].partitions().len(), 4);
    Ok(())
}

/// `publish_batch` encodes every event before it sends any: one event over the codec's
/// size limit fails the whole batch, naming it, and none of the batch reaches Kafka; the
/// same batch within the limit is published with the headers the contract gives each event.
#[tokio::test]
async fn a_batch_with_an_event_too_large_sends_nothing_and_within_the_limit_sends_every_header() -> Result<()> {
    let topics = setup("batchlimit").await?;
    let events = examples::samples();
    let largest = events.iter().map(|e| ltf_schemas::codec::encode_body(e).map(|b| b.len())).collect::<Result<Vec<_>, _>>()?;
    let limit = ltf_schemas::codec::MESSAGE_OVERHEAD_BYTES + largest.iter().max().copied().unwrap_or(0);
    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?.with_max_message_bytes(limit));
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    let err = publisher.publish_batch(&events).await.expect_err("an event over the limit");
    assert!(err.to_string().contains("a Kafka message may hold"), "{err}");

    let codec = Arc::new(EventCodec::new(&registry_url(), topics.clone())?);
    let publisher = EventPublisher::new(&PublisherConfig::with_bootstrap(bootstrap()), codec)?;
    assert_eq!(publisher.publish_batch(&events).await?.len(), events.len());
    let msgs = read_n(&topics.all_events(), events.len(), Duration::from_secs(30))?;
    assert_eq!(msgs.len(), events.len());
    // Nothing more: the failed batch sent none of its events.
    let more = read_n(&topics.all_events(), events.len() + 1, Duration::from_secs(5)).expect_err("only the second batch");
    let n = events.len();
    assert!(more.to_string().contains(&format!("read {n} of {}", n + 1)), "{more}");
    let by_id: HashMap<_, _> = events.iter().map(|e| (e.event_id().to_string(), e)).collect();
    for m in &msgs {
        let h = headers(m);
        let id = &h.iter().find(|(k, _)| k == "event-id").expect("event-id").1;
        assert_eq!(h, ltf_schemas::codec::headers_for(by_id[id]), "the contract's headers, in order");
    }
    Ok(())
}

/// The registry URL of the stack with its host and port replaced by the proxy's.
fn through(proxy: &CountingProxy) -> Result<String> {
    let mut url = reqwest::Url::parse(&registry_url())?;
    url.set_host(Some("127.0.0.1"))?;
    url.set_port(Some(proxy.port())).map_err(|()| anyhow::anyhow!("the registry URL takes no port"))?;
    Ok(url.to_string())
}

/// The registry's host:port of the stack.
fn registry_address() -> Result<String> {
    let url = reqwest::Url::parse(&registry_url())?;
    Ok(format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port_or_known_default().unwrap_or(80)))
}

/// How many decodes of one value run at once: a worker's in-flight events at start, all
/// of a schema id its codec has not seen.
const CONCURRENT: usize = 64;

#[tokio::test]
async fn concurrent_decodes_of_an_unknown_schema_id_ask_the_registry_once() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("oneask"));
    registry::register_all(&registry_url(), &topics).await?;
    let event = &examples::samples()[2];
    let value = EventCodec::new(&registry_url(), topics.clone())?.encode(event).await?.value;
    let value: Arc<[u8]> = value.into();

    let proxy = CountingProxy::start(&registry_address()?).await?;
    let codec = EventCodec::new(&through(&proxy)?, topics)?;
    let decodes = (0..CONCURRENT).map(|_| codec.decode_shared(&value));
    let decoded = futures::future::join_all(decodes).await;
    for d in decoded {
        assert_eq!(&d?, event);
    }
    assert_eq!(proxy.requests(), 1, "{CONCURRENT} decodes of one unknown schema id: one registry call");
    // Known now: later decodes ask nothing.
    codec.decode_shared(&value).await?;
    assert_eq!(proxy.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_decodes_during_a_registry_outage_share_one_failed_call_and_the_next_decode_asks_again() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("oneoutage"));
    registry::register_all(&registry_url(), &topics).await?;
    let event = &examples::samples()[2];
    let value: Arc<[u8]> = EventCodec::new(&registry_url(), topics.clone())?.encode(event).await?.value.into();

    // A proxy to a port where nothing listens: every connection is closed unanswered.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let proxy = CountingProxy::start(&dead.to_string()).await?;
    let codec = EventCodec::new(&through(&proxy)?, topics)?;
    let decoded = futures::future::join_all((0..CONCURRENT).map(|_| codec.decode_shared(&value))).await;
    for d in decoded {
        let err = d.expect_err("the registry is down");
        assert!(err.is_retryable(), "an outage is retryable: {err}");
    }
    assert_eq!(proxy.connections(), 1, "{CONCURRENT} decodes during an outage: one registry call");
    // A failure is not remembered: the next decode asks again.
    assert!(codec.decode_shared(&value).await.is_err());
    assert_eq!(proxy.connections(), 2);
    Ok(())
}

#[tokio::test]
async fn concurrent_encodes_of_an_unregistered_schema_register_it_once() -> Result<()> {
    let topics = TopicNames::new(unique_prefix("oneregister"));
    let event = &examples::samples()[2];
    let proxy = CountingProxy::start(&registry_address()?).await?;
    let codec = EventCodec::new(&through(&proxy)?, topics.clone())?;
    let encoded = futures::future::join_all((0..CONCURRENT).map(|_| codec.encode(event))).await;
    let values: Vec<Vec<u8>> = encoded.into_iter().map(|e| e.map(|e| e.value)).collect::<Result<_, _>>()?;
    assert!(values.windows(2).all(|w| w[0] == w[1]), "one schema id for all");
    assert_eq!(proxy.requests(), 1, "{CONCURRENT} encodes of one unregistered schema: one registry call");
    // The id is the registry's: a codec of its own decodes the value.
    assert_eq!(&EventCodec::new(&registry_url(), topics)?.decode(&values[0]).await?, event);
    Ok(())
}
