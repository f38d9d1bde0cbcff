use ltf_schemas::SchemaError;
use thiserror::Error;
use uuid::Uuid;

use crate::store::outbox::OutboxError;
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

impl From<OutboxError> for UseCaseError {
    fn from(e: OutboxError) -> UseCaseError {
        match e {
            OutboxError::Db(e) => UseCaseError::Db(e),
            OutboxError::Encode { event_id, event_type, source } => UseCaseError::Encode { event_id, event_type, source },
        }
    }
}

/// PostgreSQL error codes a retry may get past: serialization failure, deadlock.
const TRANSIENT_SQLSTATES: [&str; 2] = ["40001", "40P01"];

impl UseCaseError {
    /// The HTTP status this error maps to: 400 for invalid input, 404 for a missing table
    /// or record, 409 for a stale version, 413 for an oversized batch, 503 when a retry may
    /// succeed, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            UseCaseError::UnknownField { .. } | UseCaseError::WrongFieldType { .. } | UseCaseError::EmptyBatch => 400,
            UseCaseError::UnknownTable(_) | UseCaseError::RecordNotFound { .. } => 404,
            UseCaseError::StaleVersion { .. } => 409,
            UseCaseError::BatchTooLarge { .. } => 413,
            _ if self.is_retryable() => 503,
            UseCaseError::Encode { .. } | UseCaseError::Db(_) => 500,
        }
    }

    /// Whether the request conflicts with the record's current state (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self, UseCaseError::StaleVersion { .. })
    }

    /// Whether running the same request again may succeed: the registry or the database
    /// was unreachable, or PostgreSQL aborted the transaction for a deadlock or a
    /// serialization failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            UseCaseError::Encode { source, .. } => source.is_retryable(),
            UseCaseError::Db(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| TRANSIENT_SQLSTATES.contains(&c.as_ref()))
            }
            UseCaseError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_http_classes() {
        let stale = UseCaseError::StaleVersion { record_id: "r".into(), expected: 1, actual: 2 };
        assert!(stale.is_conflict());
        assert_eq!(stale.status(), 409);
        assert_eq!(UseCaseError::UnknownTable("t".into()).status(), 404);
        assert_eq!(UseCaseError::EmptyBatch.status(), 400);
        assert_eq!(UseCaseError::BatchTooLarge { size: 2, limit: 1 }.status(), 413);
        assert_eq!(UseCaseError::Db(sqlx::Error::PoolTimedOut).status(), 503);
        assert_eq!(UseCaseError::Db(sqlx::Error::RowNotFound).status(), 500);
        assert!(!UseCaseError::EmptyBatch.is_conflict());
        let e = UseCaseError::WrongFieldType { field: "age".into(), expected: FieldType::Integer, got: "string".into(), index: 3 };
        assert_eq!(e.to_string(), "field `age` is of type integer, got string (record 3 of the request)");
    }
}
