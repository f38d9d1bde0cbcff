use thiserror::Error;

/// Everything that can go wrong with the event contract: encoding, decoding, the registry.
#[derive(Debug, Clone, Error)]
pub enum SchemaError {
    /// The value is not in the Confluent wire format (empty, shorter than 5 bytes, or
    /// byte 0 is not the magic byte 0).
    #[error("not a Confluent-framed Avro value: {reason}")]
    NotConfluentFramed {
        /// What is wrong: an empty value, the byte found instead of 0, or the length.
        reason: String,
    },

    /// The registry does not know the schema id carried by the value.
    #[error("schema id {id} is unknown to the registry: {reason}")]
    UnknownSchemaId {
        /// The schema id carried by the value (bytes 1-4).
        id: u32,
        /// The registry's answer, or why the schema it returned does not parse.
        reason: String,
    },

    /// The Avro body does not decode with the writer schema named by its id.
    #[error("Avro body does not decode with schema id {id}: {reason}")]
    BadAvro {
        /// The writer schema's id, as carried by the value.
        id: u32,
        /// apache-avro's error, bytes left over after the record, or why the value does not
        /// resolve to the newest reader schema.
        reason: String,
    },

    /// The record full name is not one of our event types.
    #[error("record {record_name} (schema id {id}) is not a LaTeChforce event type")]
    UnknownEventType {
        /// The writer schema's id, as carried by the value.
        id: u32,
        /// The writer schema's record full name (its kind when it is not a record).
        record_name: String,
    },

    /// A known event type in a version that no reader here supports.
    #[error("{event_type} version {version} is not supported (this reader knows versions {supported:?})")]
    UnsupportedVersion {
        /// The spec's event type string (`record-created`, …).
        event_type: &'static str,
        /// The version found in the value's envelope, or asked for when encoding.
        version: i32,
        /// The versions this build knows, oldest first.
        supported: Vec<i32>,
    },

    /// The decoded value does not have the shape of the event type.
    #[error("{event_type}: field `{field}` is missing or has the wrong type")]
    Malformed {
        /// The spec's event type string (`record-created`, …).
        event_type: &'static str,
        /// The Avro field at fault (e.g. `version`, `recordId`).
        field: String,
    },

    /// The event cannot be encoded as given (e.g. `createdBy` set on a v1 RecordCreated).
    #[error("event {event_id} ({event_type} v{version}) cannot be encoded: {reason}")]
    InvalidEvent {
        /// The event's eventId.
        event_id: uuid::Uuid,
        /// The spec's event type string (`record-created`, …).
        event_type: &'static str,
        /// The schema version it was to be written with.
        version: i32,
        /// What that version cannot carry.
        reason: String,
    },

    /// The encoded event is larger than the topics and producers take
    /// ([`EventCodec::max_message_bytes`](crate::EventCodec::max_message_bytes)).
    #[error(
        "{event_type} {event_id} is {bytes} bytes encoded, more than the {limit} a Kafka message may hold{}",
        .field.as_ref().map(|f| format!(" (field `{f}` alone makes it too large)")).unwrap_or_default()
    )]
    TooLarge {
        /// The event type.
        event_type: &'static str,
        /// The eventId.
        event_id: String,
        /// Its size as a Kafka message (key, value, headers and framing).
        bytes: usize,
        /// The largest message the topics and producers take.
        limit: usize,
        /// The record or form field without which the event would fit, when one is.
        field: Option<String>,
    },

    /// apache-avro refused to encode the value with the schema.
    #[error("encoding {event_type} with subject {subject} failed: {reason}")]
    Encode {
        /// The spec's event type string (`record-created`, …).
        event_type: &'static str,
        /// The registry subject of the schema (`<topic>-<record full name>`).
        subject: String,
        /// apache-avro's error.
        reason: String,
    },

    /// A registry call failed (network, HTTP status, refusal).
    #[error("schema registry, subject {subject}: {reason}")]
    Registry {
        /// What the call was about: a subject, `schema id <n>`, the registry URL, or `*` for
        /// the list of subjects.
        subject: String,
        /// The client's error, or the HTTP status and body of the answer.
        reason: String,
        /// Whether trying again later may succeed (registry unreachable, 5xx); see
        /// [`SchemaError::is_retryable`].
        retryable: bool,
    },

    /// A local .avsc does not parse.
    #[error("schema file {file} does not parse: {reason}")]
    Parse {
        /// The file's path (or the folder's, when it cannot be read).
        file: String,
        /// The I/O or parse error, or why its record is not one of our event types.
        reason: String,
    },

    /// A changed schema is not compatible with a registered version.
    #[error("subject {subject}: the schema in {file} is not compatible with registered version {version}: {reason}")]
    Incompatible {
        /// The subject checked (`<topic>-<record full name>`).
        subject: String,
        /// The file holding the changed schema.
        file: String,
        /// The registered version it cannot read (the latest one when only the registry
        /// refused it).
        version: u32,
        /// apache-avro's explanation, naming the field when there is one.
        reason: String,
    },
}

impl SchemaError {
    /// Whether trying again later may succeed (registry unreachable, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SchemaError::Registry { retryable: true, .. })
    }
}
