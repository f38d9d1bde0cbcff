//! The Confluent wire-format codec with cached registry look-ups.
//!
//! Encoding: the schema of `(event type, envelope.version)` is registered under
//! `<topic>-<record full name>` (TopicRecordNameStrategy) through
//! schema_registry_converter on first use; the id is cached, so later encodes make no
//! HTTP call. Decoding: the writer schema is fetched by id once and cached; the body is
//! decoded with it and resolved to this build's newest reader schema of the event type.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::{from_avro_datum, Schema};
use arc_swap::ArcSwap;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, post_schema, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

use crate::binary_decode;
use crate::bounds;
use crate::catalog::{self, EventType, SchemaDef};
use crate::contract::{subject, Headers, TopicNames, CONTENT_TYPE};
use crate::event::DomainEvent;
use crate::single_flight::SingleFlight;
use crate::value;
use crate::SchemaError;

/// Magic byte of the Confluent wire format.
pub const MAGIC_BYTE: u8 = 0;

/// An event ready for Kafka: topic, key, framed value and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The topic to write to; for an event, `<prefix>.<aggregate>.events`.
    pub topic: String,
    /// The Kafka key: the event's aggregateId.
    pub key: String,
    /// The Confluent-framed value: magic byte 0, 4-byte big-endian schema id, Avro body.
    pub value: Vec<u8>,
    /// The headers as (name, value), names from [`Headers`].
    pub headers: Vec<(String, String)>,
}

impl EncodedEvent {
    /// Adds or replaces a header (e.g. `traceparent`).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|(k, _)| k == name) {
            Some(h) => h.1 = value,
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// A header's value, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The contract's headers for `event` (without `traceparent`, which the caller adds when a
/// trace is active).
pub fn headers_for(event: &DomainEvent) -> Vec<(String, String)> {
    let mut h = Vec::with_capacity(7);
    each_header(event, |name, value| h.push((name.to_owned(), value.to_owned())));
    h
}

/// The headers of [`headers_for`], handed to `add` one at a time as (name, value) without
/// allocating them (a publisher copies them into the message).
pub fn each_header(event: &DomainEvent, mut add: impl FnMut(&'static str, &str)) {
    let env = &event.envelope;
    let mut id = uuid::Uuid::encode_buffer();
    add(Headers::EVENT_ID, env.event_id.hyphenated().encode_lower(&mut id));
    add(Headers::EVENT_TYPE, event.event_type().as_str());
    let mut digits = itoa::Buffer::new();
    add(Headers::EVENT_VERSION, digits.format(env.version));
    add(Headers::CONTENT_TYPE, CONTENT_TYPE);
    add(Headers::CORRELATION_ID, &env.correlation_id);
    add(Headers::ORDERING_KEY, event.ordering_key());
    if let Some(c) = &env.causation_id {
        add(Headers::CAUSATION_ID, c);
    }
}

/// Splits a Confluent-framed value into schema id and Avro body.
pub fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), SchemaError> {
    match bytes {
        [] => Err(SchemaError::NotConfluentFramed { reason: "empty value".into() }),
        [m, ..] if *m != MAGIC_BYTE => {
            Err(SchemaError::NotConfluentFramed { reason: format!("magic byte is {m:#04x}, expected 0x00") })
        }
        [_, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err(SchemaError::NotConfluentFramed { reason: format!("{} bytes is shorter than the 5-byte header", bytes.len()) }),
    }
}

/// Frames an Avro body with the magic byte and schema id.
pub fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Encodes and decodes events; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EventCodec {
    sr: SrSettings,
    topics: TopicNames,
    /// (topic, event type, version) -> schema id.
    ids: RwLock<HashMap<IdKey, u32>>,
    /// schema id -> writer schema: an immutable snapshot, replaced whole when an id is
    /// first seen, so decoding reads it without a lock or a reference count that the
    /// worker's threads would contend for.
    writers: ArcSwap<HashMap<u32, Writer>>,
    /// Writer schemas being fetched: the decodes that miss one id wait for one call.
    fetching: SingleFlight<u32, Result<Writer, SchemaError>>,
    /// Schemas being registered: the encodes that miss one id wait for one call.
    registering: SingleFlight<IdKey, Result<u32, SchemaError>>,
    /// The largest Kafka message an encoded event may make.
    max_message_bytes: usize,
}

/// The key of a registered schema's id: (topic, event type, version).
type IdKey = (String, EventType, i32);

/// The default of [`EventCodec::max_message_bytes`]: librdkafka's `message.max.bytes`,
/// below the broker's default `max.message.bytes` (1048588).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// What a Kafka message costs besides its key, value and header bytes: a record batch
/// of one record (61 bytes of batch header, at most 21 of record framing), with room for
/// a `traceparent` header added after encoding (66 bytes).
pub const MESSAGE_OVERHEAD_BYTES: usize = 256;

/// The framing of each header (two length varints).
const HEADER_OVERHEAD_BYTES: usize = 8;

impl EncodedEvent {
    /// Its size as a Kafka message: key, value, headers and framing
    /// ([`MESSAGE_OVERHEAD_BYTES`]).
    pub fn message_bytes(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| header_bytes(k, v)).sum();
        message_bytes(self.key.len(), self.value.len(), headers)
    }
}

/// A header's size as [`EncodedEvent::message_bytes`] counts it.
fn header_bytes(name: &str, value: &str) -> usize {
    name.len() + value.len() + HEADER_OVERHEAD_BYTES
}

/// A message's size from its key's, value's and headers' sizes, with its framing.
fn message_bytes(key: usize, value: usize, headers: usize) -> usize {
    MESSAGE_OVERHEAD_BYTES + key + value + headers
}

/// The field of `event` (of its record or form field maps) whose value is the largest
/// part of its size, when dropping that value would bring `bytes` under `limit`.
fn culprit(event: &DomainEvent, bytes: usize, limit: usize) -> Option<String> {
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for map in event.payload.field_maps() {
        for (name, value) in map {
            *sizes.entry(name.as_str()).or_default() += value.to_string().len();
        }
    }
    let (name, size) = sizes.into_iter().max_by_key(|(_, size)| *size)?;
    (bytes.saturating_sub(size) <= limit).then(|| name.to_owned())
}

pub(crate) fn sr_settings(registry_url: &str) -> Result<SrSettings, SchemaError> {
    SrSettings::new_builder(registry_url.trim_end_matches('/').to_owned())
        .set_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| registry_error(registry_url, e))
}

pub(crate) fn registry_error(subject: &str, e: SRCError) -> SchemaError {
    SchemaError::Registry {
        subject: subject.to_owned(),
        reason: match &e.cause {
            Some(c) => format!("{}: {c}", e.error),
            None => e.error.clone(),
        },
        retryable: e.retriable || is_server_error(&e.error),
    }
}

/// Whether schema_registry_converter's error text reports an HTTP 5xx answer (it marks
/// only 502 and 503 retryable; any 5xx is the registry failing, not the request).
fn is_server_error(error: &str) -> bool {
    error
        .strip_prefix("HTTP request to schema registry failed with status ")
        .and_then(|status| status.split_whitespace().next())
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (500..600).contains(&code))
}

pub(crate) fn supplied(def: &SchemaDef) -> SuppliedSchema {
    supplied_text(def.event_type, def.text)
}

pub(crate) fn supplied_text(ty: EventType, text: &str) -> SuppliedSchema {
    SuppliedSchema {
        name: Some(ty.full_name()),
        schema_type: SchemaType::Avro,
        schema: text.to_owned(),
        references: vec![],
        properties: None,
        tags: None,
    }
}

impl EventCodec {
    /// A codec against the Confluent-compatible API at `registry_url`
    /// (for Apicurio: `http://host:port/apis/ccompat/v7`).
    pub fn new(registry_url: &str, topics: TopicNames) -> Result<EventCodec, SchemaError> {
        Ok(EventCodec {
            sr: sr_settings(registry_url)?,
            topics,
            ids: RwLock::default(),
            writers: ArcSwap::default(),
            fetching: SingleFlight::default(),
            registering: SingleFlight::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        })
    }

    /// The codec with `bytes` as the largest Kafka message an encoded event may make:
    /// min(the topics' `max.message.bytes`, the producers' `message.max.bytes`).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> EventCodec {
        self.max_message_bytes = bytes;
        self
    }

    /// The largest Kafka message an encoded event may make; [`encode`](Self::encode)
    /// refuses a larger one with [`SchemaError::TooLarge`]. Default
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The topic names events are encoded for.
    pub fn topics(&self) -> &TopicNames {
        &self.topics
    }

    /// The registry id of `def` under `topic`; registers it on first use (the registry
    /// returns the existing id when it already has the schema). Encodes that need one
    /// unregistered schema at once make one registry call.
    pub async fn schema_id(&self, topic: &str, def: &SchemaDef) -> Result<u32, SchemaError> {
        let key = (topic.to_owned(), def.event_type, def.version);
        let known = || self.ids.read().expect("codec cache poisoned").get(&key).copied();
        if let Some(id) = known() {
            return Ok(id);
        }
        let (sr, subj, schema) = (self.sr.clone(), subject(topic, &def.event_type.full_name()), supplied(def));
        let register =
            || async move { post_schema(&sr, subj.clone(), schema).await.map(|r| r.id).map_err(|e| registry_error(&subj, e)) };
        let keep = |r: &Result<u32, SchemaError>| {
            if let Ok(id) = r {
                self.ids.write().expect("codec cache poisoned").insert(key.clone(), *id);
                self.remember(*id, || Writer::of(def), false);
            }
        };
        self.registering.run(key.clone(), || known().map(Ok), register, keep).await
    }

    /// Encodes `event` for its topic: key = aggregateId, Confluent-framed Avro value, and
    /// the contract's headers. An event whose message would exceed
    /// [`max_message_bytes`](Self::max_message_bytes) is [`SchemaError::TooLarge`], naming
    /// the field that makes it too large when one does.
    pub async fn encode(&self, event: &DomainEvent) -> Result<EncodedEvent, SchemaError> {
        let mut value = Vec::with_capacity(5 + BODY_CAPACITY);
        let topic = self.encode_value_into(event, &mut value).await?;
        Ok(EncodedEvent { topic, key: event.aggregate_id().to_owned(), value, headers: headers_for(event) })
    }

    /// [`encode`](Self::encode) without its allocations, for a batch written into one
    /// buffer: appends the Confluent-framed value of `event` to `buf` and returns its
    /// topic; the key is `event.aggregate_id()` and the headers are [`each_header`]'s. On
    /// an error (the same as `encode`'s, sizes included) `buf` is left as it was.
    pub async fn encode_value_into(&self, event: &DomainEvent, buf: &mut Vec<u8>) -> Result<String, SchemaError> {
        let ty = event.event_type();
        let def = catalog::schema_def(ty, event.envelope.version)?;
        let topic = event.topic(&self.topics);
        let id = self.schema_id(&topic, def).await?;
        let start = buf.len();
        encode_framed_into(id, event, buf)?;
        let mut headers = 0;
        each_header(event, |name, value| headers += header_bytes(name, value));
        let (bytes, limit) = (message_bytes(event.aggregate_id().len(), buf.len() - start, headers), self.max_message_bytes);
        if bytes > limit {
            buf.truncate(start);
            return Err(SchemaError::TooLarge {
                event_type: ty.as_str(),
                event_id: event.event_id().to_string(),
                bytes,
                limit,
                field: culprit(event, bytes, limit),
            });
        }
        Ok(topic)
    }

    /// Makes `def`'s schema the writer schema of `id` without asking the registry: for a
    /// reader that knows its schemas' ids, and for decoding in tests without a registry.
    pub fn remember_writer(&self, id: u32, def: &SchemaDef) {
        self.remember(id, || Writer::of(def), true);
    }

    /// The writer schema of `id`, fetched once.
    pub async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, SchemaError> {
        Ok(self.writer(id).await?.schema)
    }

    /// The writer schema of `id` and its catalog layout, fetched once (decodes that miss
    /// it at once wait for one registry call).
    async fn writer(&self, id: u32) -> Result<Writer, SchemaError> {
        let known = || self.writers.load().get(&id).cloned();
        if let Some(w) = known() {
            return Ok(w);
        }
        let sr = self.sr.clone();
        let fetch = || async move { fetch_writer(&sr, id).await };
        let keep = |r: &Result<Writer, SchemaError>| {
            if let Ok(w) = r {
                self.remember(id, || w.clone(), true);
            }
        };
        self.fetching.run(id, || known().map(Ok), fetch, keep).await
    }

    /// Adds the writer schema of `id` to the cache (replacing one there when `replace`).
    fn remember(&self, id: u32, writer: impl Fn() -> Writer, replace: bool) {
        self.writers.rcu(|old| {
            let mut new = HashMap::clone(old);
            if replace || !new.contains_key(&id) {
                new.insert(id, writer());
            }
            new
        });
    }

    /// Decodes a Confluent-framed value into an event, resolving older versions to this
    /// build's newest reader schema.
    pub async fn decode(&self, bytes: &[u8]) -> Result<DomainEvent, SchemaError> {
        let (id, body) = split_frame(bytes)?;
        if let Some(writer) = self.writers.load().get(&id) {
            return writer.decode(id, body);
        }
        self.writer(id).await?.decode(id, body)
    }

    /// [`EventCodec::decode`] of a shared value: the event's field maps keep a share of
    /// `value` (built from it when first read) instead of a copy of their bytes.
    pub async fn decode_shared(&self, value: &Arc<[u8]>) -> Result<DomainEvent, SchemaError> {
        let (id, body) = split_frame(value)?;
        if let Some(writer) = self.writers.load().get(&id) {
            return writer.decode_shared(id, body, value);
        }
        self.writer(id).await?.decode_shared(id, body, value)
    }
}

/// The writer schema of `id` from the registry.
async fn fetch_writer(sr: &SrSettings, id: u32) -> Result<Writer, SchemaError> {
    let registered = get_schema_by_id(id, sr).await.map_err(|e| {
        if e.retriable || is_server_error(&e.error) {
            registry_error(&format!("schema id {id}"), e)
        } else {
            SchemaError::UnknownSchemaId { id, reason: e.to_string() }
        }
    })?;
    let schema = Schema::parse_str(&registered.schema)
        .map_err(|e| SchemaError::UnknownSchemaId { id, reason: format!("unparsable schema: {e}") })?;
    Ok(Writer { layout: binary_decode::layout_of(&schema), schema: Arc::new(schema) })
}

/// A writer schema as the codec keeps it: the schema, and the catalog schema whose binary
/// layout it has (decoded directly), if any.
#[derive(Debug, Clone)]
struct Writer {
    schema: Arc<Schema>,
    layout: Option<&'static SchemaDef>,
}

impl Writer {
    /// The event of Avro body `body` written with this schema (of id `id`).
    fn decode(&self, id: u32, body: &[u8]) -> Result<DomainEvent, SchemaError> {
        match self.layout {
            Some(def) => binary_decode::read_event(id, def, body),
            None => decode_with_apache(id, &self.schema, body),
        }
    }

    /// [`Writer::decode`] of `body`, a part of the message value `whole`.
    fn decode_shared(&self, id: u32, body: &[u8], whole: &Arc<[u8]>) -> Result<DomainEvent, SchemaError> {
        match self.layout {
            Some(def) => binary_decode::read_shared_event(id, def, body, whole),
            None => decode_with_apache(id, &self.schema, body),
        }
    }

    /// The writer of a catalog schema: its layout is its own.
    fn of(def: &SchemaDef) -> Writer {
        Writer { schema: Arc::new(def.schema().clone()), layout: catalog::schema_def(def.event_type, def.version).ok() }
    }
}

/// The capacity an encoding starts with: a typical event fits (a RecordUpdated with ten
/// field values before and after is ~530 bytes), so the buffer is not grown mid-write.
const BODY_CAPACITY: usize = 1024;

/// The Avro body of `event` with its schema at `envelope.version` (no framing).
pub fn encode_body(event: &DomainEvent) -> Result<Vec<u8>, SchemaError> {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    encode_body_into(event, &mut body)?;
    Ok(body)
}

/// [`encode_body`] appended to `buf` (e.g. a buffer reused from event to event, cleared
/// by the caller, or after a frame header); on an error `buf` is left as it was.
pub fn encode_body_into(event: &DomainEvent, buf: &mut Vec<u8>) -> Result<(), SchemaError> {
    catalog::schema_def(event.event_type(), event.envelope.version)?;
    value::check_encodable(event)?;
    crate::binary::write_event(event, buf);
    Ok(())
}

/// Appends the Confluent-framed value of `event` under schema id `id` to `buf`:
/// `frame(id, &encode_body(event)?)` written in place. On an error `buf` is left as it was.
fn encode_framed_into(id: u32, event: &DomainEvent, buf: &mut Vec<u8>) -> Result<(), SchemaError> {
    let start = buf.len();
    buf.push(MAGIC_BYTE);
    buf.extend_from_slice(&id.to_be_bytes());
    encode_body_into(event, buf).inspect_err(|_| buf.truncate(start))
}

/// Decodes an Avro body written with `writer` (schema id `id`), resolved to the newest
/// version of its type. Never panics. A writer schema with a catalog schema's layout is
/// read directly (`binary_decode`); any other goes through [`decode_with_apache`].
pub fn decode_with(id: u32, writer: &Schema, body: &[u8]) -> Result<DomainEvent, SchemaError> {
    match binary_decode::layout_of(writer) {
        Some(def) => binary_decode::read_event(id, def, body),
        None => decode_with_apache(id, writer, body),
    }
}

/// Decodes an Avro body written with `writer` (schema id `id`) through apache-avro's
/// `Value` and its schema resolution: any writer schema of a known event type, and the
/// reference the direct decoder is tested against. Never panics; the body's counts and
/// lengths are checked against its size ([`crate::bounds`]) before apache-avro allocates
/// for them.
pub fn decode_with_apache(id: u32, writer: &Schema, body: &[u8]) -> Result<DomainEvent, SchemaError> {
    let name = match writer {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
    };
    let ty = EventType::from_full_name(&name).ok_or_else(|| SchemaError::UnknownEventType { id, record_name: name.clone() })?;
    bounds::check(id, writer, body)?;
    let mut cursor = Cursor::new(body);
    let value = from_avro_datum(writer, &mut cursor, None).map_err(|e| SchemaError::BadAvro { id, reason: e.to_string() })?;
    let rest = body.len() as u64 - cursor.position();
    if rest != 0 {
        return Err(SchemaError::BadAvro { id, reason: format!("{rest} bytes left after the record") });
    }
    let version = value::version_of(ty, &value)?;
    let supported = ty.versions();
    if !supported.contains(&version) {
        return Err(SchemaError::UnsupportedVersion { event_type: ty.as_str(), version, supported });
    }
    let reader = catalog::latest(ty);
    let value = if reader.version == version {
        value
    } else {
        value
            .resolve(reader.schema())
            .map_err(|e| SchemaError::BadAvro { id, reason: format!("cannot resolve to v{}: {e}", reader.version) })?
    };
    value::from_avro(ty, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::examples::samples;
    use crate::EventPayload;

    fn encode_local(e: &DomainEvent) -> Vec<u8> {
        encode_body(e).unwrap()
    }

    #[test]
    fn any_5xx_of_the_registry_is_retryable_other_statuses_are_not() {
        assert!(is_server_error("HTTP request to schema registry failed with status 500 Internal Server Error"));
        assert!(is_server_error("HTTP request to schema registry failed with status 504"));
        assert!(!is_server_error("HTTP request to schema registry failed with status 404 Not Found"));
        assert!(!is_server_error("Could not get id from response"));
    }

    #[test]
    fn the_culprit_of_an_oversized_event_is_the_one_field_without_which_it_fits() {
        let mut e = samples().swap_remove(1);
        let EventPayload::RecordCreated(p) = &mut e.payload else { panic!("a RecordCreated") };
        p.fields.insert("notes".into(), serde_json::Value::String("x".repeat(5000)));
        p.fields.insert("title".into(), serde_json::Value::String("y".repeat(3000)));
        let bytes = 9000;
        assert_eq!(culprit(&e, bytes, 4500).as_deref(), Some("notes"), "9000 - 5002 fits 4500");
        assert_eq!(culprit(&e, bytes, 3000), None, "no single field makes it fit");
        let encoded =
            EncodedEvent { topic: "t".into(), key: "k".into(), value: vec![0; 100], headers: vec![("a".into(), "bc".into())] };
        assert_eq!(encoded.message_bytes(), MESSAGE_OVERHEAD_BYTES + 1 + 100 + 3 + 8);
    }

    #[test]
    fn every_event_type_round_trips_through_avro() {
        for e in samples() {
            let def = catalog::schema_def(e.event_type(), e.envelope.version).unwrap();
            let back = decode_with(7, def.schema(), &encode_local(&e)).unwrap();
            assert_eq!(back, e, "{}", e.event_type());
        }
    }

    #[test]
    fn encoding_into_a_reused_buffer_or_behind_a_frame_gives_the_same_bytes() {
        let mut buf = Vec::new();
        for e in samples() {
            let body = encode_local(&e);
            buf.clear();
            encode_body_into(&e, &mut buf).unwrap();
            assert_eq!(buf, body, "{}", e.event_type());
            let mut framed = vec![7];
            encode_framed_into(258, &e, &mut framed).unwrap();
            assert_eq!(framed[1..], frame(258, &body), "{}", e.event_type());
        }
        // Appended after what the buffer holds; an event that cannot be encoded leaves it.
        let mut bad = samples().remove(1);
        bad.envelope.version = 1;
        buf = vec![9];
        assert!(encode_body_into(&bad, &mut buf).is_err());
        assert_eq!(buf, [9]);
        let e = samples().remove(2);
        encode_body_into(&e, &mut buf).unwrap();
        assert_eq!(buf[1..], encode_local(&e)[..]);
    }

    #[test]
    fn v1_record_created_is_read_with_the_v2_reader() {
        let v1 = samples().remove(0);
        assert_eq!(v1.envelope.version, 1);
        let writer = catalog::schema_def(EventType::RecordCreated, 1).unwrap().schema();
        let back = decode_with(1, writer, &encode_local(&v1)).unwrap();
        let EventPayload::RecordCreated(p) = &back.payload else { panic!() };
        assert_eq!(p.created_by, None);
        assert_eq!(back.envelope.version, 1);
        assert_eq!(back, v1);
    }

    #[test]
    fn created_by_on_v1_is_refused() {
        let mut e = samples().remove(1);
        e.envelope.version = 1;
        assert!(matches!(value::to_avro(&e), Err(SchemaError::InvalidEvent { version: 1, .. })));
    }

    #[test]
    fn framing_errors_are_typed() {
        assert!(matches!(split_frame(&[]), Err(SchemaError::NotConfluentFramed { .. })));
        assert!(matches!(split_frame(&[1, 0, 0, 0, 1, 2]), Err(SchemaError::NotConfluentFramed { .. })));
        assert!(matches!(split_frame(&[0, 0, 1]), Err(SchemaError::NotConfluentFramed { .. })));
        assert_eq!(split_frame(&[0, 0, 0, 1, 2, 9]).unwrap(), (258, &[9u8][..]));
        assert_eq!(frame(258, &[9]), vec![0, 0, 0, 1, 2, 9]);
    }

    #[test]
    fn truncated_and_trailing_bodies_are_bad_avro() {
        let e = samples().remove(2);
        let writer = catalog::schema_def(e.event_type(), 1).unwrap().schema();
        let body = encode_local(&e);
        let cut = decode_with(3, writer, &body[..body.len() / 2]).unwrap_err();
        assert!(matches!(cut, SchemaError::BadAvro { id: 3, .. }), "{cut}");
        let mut long = body.clone();
        long.push(0);
        assert!(matches!(decode_with(3, writer, &long), Err(SchemaError::BadAvro { .. })));
    }

    #[test]
    fn headers_carry_the_contract() {
        let e = samples().remove(1);
        let h = headers_for(&e);
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("event-id"), Some(e.event_id().to_string().as_str()));
        assert_eq!(get("event-type"), Some("record-created"));
        assert_eq!(get("event-version"), Some("2"));
        assert_eq!(get("content-type"), Some(CONTENT_TYPE));
        assert_eq!(get("ordering-key"), Some("rec_1"));
        assert_eq!(get("causation-id"), e.envelope.causation_id.as_deref());
        assert_eq!(get("correlation-id"), Some(e.envelope.correlation_id.as_str()));
    }
}
