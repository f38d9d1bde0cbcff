use thiserror::Error;

/// Everything that can go wrong with the event contract: encoding, decoding, the registry.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// The value is not in the Confluent wire format (empty, shorter than 5 bytes, or
    /// byte 0 is not the magic byte 0).
    #[error("not a Confluent-framed Avro value: {reason}")]
    NotConfluentFramed { reason: String },

    /// The registry does not know the schema id carried by the value.
    #[error("schema id {id} is unknown to the registry: {reason}")]
    UnknownSchemaId { id: u32, reason: String },

    /// The Avro body does not decode with the writer schema named by its id.
    #[error("Avro body does not decode with schema id {id}: {reason}")]
    BadAvro { id: u32, reason: String },

    /// The record full name is not one of our event types.
    #[error("record {record_name} (schema id {id}) is not a LaTeChforce event type")]
    UnknownEventType { id: u32, record_name: String },

    /// A known event type in a version that no reader here supports.
    #[error("{event_type} version {version} is not supported (this reader knows versions {supported:?})")]
    UnsupportedVersion { event_type: &'static str, version: i32, supported: Vec<i32> },

    /// The decoded value does not have the shape of the event type.
    #[error("{event_type}: field `{field}` is missing or has the wrong type")]
    Malformed { event_type: &'static str, field: String },

    /// The event cannot be encoded as given (e.g. `createdBy` set on a v1 RecordCreated).
    #[error("event {event_id} ({event_type} v{version}) cannot be encoded: {reason}")]
    InvalidEvent { event_id: uuid::Uuid, event_type: &'static str, version: i32, reason: String },

    /// apache-avro refused to encode the value with the schema.
    #[error("encoding {event_type} with subject {subject} failed: {reason}")]
    Encode { event_type: &'static str, subject: String, reason: String },

    /// A registry call failed (network, HTTP status, refusal).
    #[error("schema registry, subject {subject}: {reason}")]
    Registry { subject: String, reason: String, retryable: bool },

    /// A local .avsc does not parse.
    #[error("schema file {file} does not parse: {reason}")]
    Parse { file: String, reason: String },

    /// A changed schema is not compatible with a registered version.
    #[error("subject {subject}: the schema in {file} is not compatible with registered version {version}: {reason}")]
    Incompatible { subject: String, file: String, version: u32, reason: String },
}

impl SchemaError {
    /// Whether trying again later may succeed (registry unreachable, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SchemaError::Registry { retryable: true, .. })
    }
}
