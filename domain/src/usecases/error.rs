use ltf_schemas::SchemaError;
use thiserror::Error;
use uuid::Uuid;

use crate::connections::CredentialsError;
use crate::outbox::OutboxError;
use crate::store::tables::FieldType;

/// Why a use case refused or failed. Whatever the variant, nothing it was asked to write
/// was written: its rows and its events are rolled back together.
#[derive(Debug, Error)]
pub enum UseCaseError {
    /// The table does not exist.
    #[error("table {0} does not exist")]
    UnknownTable(String),

    /// A record names a field its table does not define.
    #[error("table {table} has no field `{field}` (record {index} of the request)")]
    UnknownField {
        /// The table id.
        table: String,
        /// The unknown field name.
        field: String,
        /// Position of the record in the request (0 for single-record use cases).
        index: usize,
    },

    /// A field value does not have the field's type.
    #[error("field `{field}` is of type {expected}, got {got} (record {index} of the request)")]
    WrongFieldType {
        /// The field name.
        field: String,
        /// The type the table defines for it.
        expected: FieldType,
        /// What the value is instead (`string`, `number`, `a string that is not a date`, …).
        got: String,
        /// Position of the record in the request (0 for single-record use cases).
        index: usize,
    },

    /// A batch use case got no records.
    #[error("the batch is empty")]
    EmptyBatch,

    /// A batch use case got more records than the configured limit.
    #[error("the batch holds {size} records, more than the limit of {limit}")]
    BatchTooLarge {
        /// Records in the request.
        size: usize,
        /// [`RecordLimits::max_batch`](crate::usecases::RecordLimits::max_batch).
        limit: usize,
    },

    /// The record does not exist in the table.
    #[error("record {record_id} does not exist in table {table}")]
    RecordNotFound {
        /// The table id.
        table: String,
        /// The record id.
        record_id: String,
    },

    /// The change expected another version of the record (optimistic concurrency); a
    /// 409-class error: the client should re-read the record and decide again.
    #[error("record {record_id} is at version {actual}, the change expected version {expected}")]
    StaleVersion {
        /// The record id.
        record_id: String,
        /// The version the request expected.
        expected: i64,
        /// The version stored.
        actual: i64,
    },

    /// An id given for a table, form or connection, or a connection's user id, is unusable
    /// (empty, too long, control characters).
    #[error("the {entity} id is invalid: it {reason}")]
    InvalidId {
        /// `table`, `form`, `connection` or `user`.
        entity: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A table or form name is unusable (empty or too long).
    #[error("the {entity} name {reason}")]
    InvalidName {
        /// `table` or `form`.
        entity: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A field definition's name is unusable (empty or too long).
    #[error("field {index} of the definition: its name {reason}")]
    InvalidFieldName {
        /// Position of the field definition in the request.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Two field definitions share a name.
    #[error("field `{0}` is defined twice")]
    DuplicateField(String),

    /// A table or form defines more fields than
    /// [`MAX_FIELDS`](crate::usecases::MAX_FIELDS).
    #[error("the definition has {count} fields, more than the limit of {limit}")]
    TooManyFields {
        /// Field definitions in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },

    /// A table, form or connection with this id exists already; a 409-class error.
    #[error("{entity} {id} already exists")]
    AlreadyExists {
        /// `table`, `form` or `connection`.
        entity: &'static str,
        /// The id.
        id: String,
    },

    /// An automation definition is invalid; names the bad key.
    #[error(transparent)]
    InvalidAutomation(#[from] crate::automations::DefinitionError),

    /// The form does not exist.
    #[error("form {0} does not exist")]
    UnknownForm(String),

    /// A submission names a field its form does not define.
    #[error("form {form} has no field `{field}`")]
    UnknownFormField {
        /// The form id.
        form: String,
        /// The unknown field name.
        field: String,
    },

    /// An entry of a form's field mapping cannot be used.
    #[error("field mapping `{form_field}` -> `{table_field}`: {fault}")]
    InvalidMapping {
        /// The form field (the mapping's key).
        form_field: String,
        /// The table field it maps to.
        table_field: String,
        /// What is wrong.
        fault: MappingFault,
    },

    /// No OAuth2 service of this name is configured
    /// ([`ConnectionsConfig::services`](crate::connections::ConnectionsConfig::services)).
    /// 404, like an unknown table: the thing named does not exist in this deployment.
    #[error("no service `{0}` is configured for connections")]
    UnknownService(String),

    /// The submitted credentials are malformed (e.g. `redirectUri` is not a URL); nothing
    /// was sent to the service. The message never holds the credentials.
    #[error("the submitted credentials are malformed: {0}")]
    MalformedCredentials(&'static str),

    /// The connection exists for another service or another user; a 409-class error.
    /// Checked before the credentials are exchanged, so an authorization code is not spent.
    #[error("connection {connection_id} belongs to another service or user")]
    ConnectionMismatch {
        /// The connection id.
        connection_id: String,
    },

    /// The service's token endpoint refused the credentials (RFC 6749 §5.2). Carries the
    /// HTTP status and the OAuth2 `error` code only, never the response body, the
    /// credentials or the tokens. Nothing was written.
    ///
    /// Maps to 422, not 401: the caller's own authentication to this API is fine, what
    /// failed is the grant it carried (an expired or reused code, a revoked refresh
    /// token), and a 401 would make API clients drop their session. `invalid_client` and
    /// `unauthorized_client` map to 502 instead: the deployment's client id or secret is
    /// wrong, which an operator must fix and the end user cannot.
    #[error("{service} refused the credentials (HTTP {status}, error {})", .error.as_deref().unwrap_or("not given"))]
    ExchangeRefused {
        /// The service name.
        service: String,
        /// The token endpoint's HTTP status.
        status: u16,
        /// The OAuth2 `error` code (`invalid_grant`, …): one of RFC 6749's codes or a short
        /// lowercase extension code; anything else is reported as `unrecognised`.
        error: Option<String>,
    },

    /// The token endpoint could not be reached, timed out, or answered 5xx or 429; nothing
    /// was written and a retry may succeed (with a fresh authorization code: the service
    /// may have spent the one sent).
    #[error("the token endpoint of {service} is unavailable: {reason}")]
    TokenEndpointUnavailable {
        /// The service name.
        service: String,
        /// `timed out`, `could not connect`, `HTTP 503`, … (never a URL or a body).
        reason: String,
    },

    /// The token endpoint answered something that is neither a token response nor an
    /// OAuth2 error (unparseable JSON, a redirect, an oversized body); nothing was written.
    #[error("the token endpoint of {service} answered HTTP {status} with no usable token or error response")]
    TokenEndpointInvalidResponse {
        /// The service name.
        service: String,
        /// The HTTP status it answered.
        status: u16,
    },

    /// Encrypting the credentials failed.
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),

    /// An event of the change is larger than a Kafka message may be (the topics'
    /// `max.message.bytes`, the producers' `message.max.bytes`): the change is refused
    /// whole, nothing written (413 `event_too_large`).
    #[error(
        "the {event_type} event of this change would be {bytes} bytes, more than the {limit} a Kafka message may hold{}",
        .field.as_ref().map(|f| format!("; field `{f}` alone makes it too large")).unwrap_or_default()
    )]
    EventTooLarge {
        /// Its event type string.
        event_type: &'static str,
        /// Its size as a Kafka message.
        bytes: usize,
        /// The largest message the topics and producers take.
        limit: usize,
        /// The field without which it would fit, when one is.
        field: Option<String>,
    },

    /// An event could not be encoded (registry unreachable, invalid event, …).
    #[error("encoding event {event_id} ({event_type}) failed: {source}")]
    Encode {
        /// The event's eventId.
        event_id: Uuid,
        /// Its event type string.
        event_type: &'static str,
        /// What the codec reported.
        #[source]
        source: Box<SchemaError>,
    },

    /// A database statement failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What is wrong with one entry of a form's field mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MappingFault {
    /// The form does not define the mapped field.
    #[error("the form has no such field")]
    UnknownFormField,
    /// The target table does not define the field mapped to.
    #[error("the table has no such field")]
    UnknownTableField,
    /// Values of the form field cannot be stored in the table field.
    #[error("values of type {from} cannot be stored in a field of type {to}")]
    IncompatibleTypes {
        /// The form field's type.
        from: FieldType,
        /// The table field's type.
        to: FieldType,
    },
    /// The form has a mapping but no target table.
    #[error("the form has no target table")]
    NoTargetTable,
    /// Another form field maps to the same table field.
    #[error("another form field maps to the same table field")]
    TargetMappedTwice,
}

impl From<OutboxError> for UseCaseError {
    fn from(e: OutboxError) -> UseCaseError {
        match e {
            OutboxError::Db(e) => UseCaseError::Db(e),
            OutboxError::Encode { event_id, event_type, source } => match *source {
                SchemaError::TooLarge { bytes, limit, field, .. } => {
                    UseCaseError::EventTooLarge { event_type, bytes, limit, field }
                }
                other => UseCaseError::Encode { event_id, event_type, source: Box::new(other) },
            },
        }
    }
}

impl UseCaseError {
    /// Whether the request conflicts with the current state: a stale record version,
    /// an id that exists already, a connection of another service or user.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            UseCaseError::StaleVersion { .. } | UseCaseError::AlreadyExists { .. } | UseCaseError::ConnectionMismatch { .. }
        )
    }

    /// Whether running the same request again may succeed: the registry, the database or a
    /// service's token endpoint was unreachable or failing, or PostgreSQL aborted the
    /// transaction in a race with another one (see [`ltf_pg::classify`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            UseCaseError::TokenEndpointUnavailable { .. } => true,
            UseCaseError::Encode { source, .. } => source.is_retryable(),
            UseCaseError::Db(e) => ltf_pg::classify(e).is_retryable(),
            _ => false,
        }
    }

    /// Whether PostgreSQL aborted the transaction in a race with another one (deadlock,
    /// serialization failure, lock or statement timeout): running it again at once may
    /// succeed.
    pub fn is_conflict_failure(&self) -> bool {
        matches!(self, UseCaseError::Db(e) if ltf_pg::classify(e) == ltf_pg::PgFailure::Conflict)
    }
}
