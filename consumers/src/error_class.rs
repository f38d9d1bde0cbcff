//! [`ErrorClass`]: the bounded set of failure classes. Its string form is the one value of
//! both the `dlq-error-class` header and the `class` label of the retry and dead-letter
//! metrics, so dashboards, `ltf dlq --class` and alert rules all speak of the same names.

use std::fmt;

use ltf_schemas::SchemaError;

macro_rules! classes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why an event failed, as a bounded class (see the module docs).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorClass {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorClass {
            /// Every class, in declaration order.
            pub const ALL: &'static [ErrorClass] = &[$(ErrorClass::$variant,)*];

            /// The class's name in headers, labels and `ltf dlq --class`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorClass::$variant => $name,)*
                }
            }
        }
    };
}

classes! {
    /// The event is not valid for the handler (a field missing or of the wrong type).
    Validation => "validation",
    /// The worker is not configured for what the event needs (no dedup store, no SMTP server).
    Config => "config",
    /// A call did not answer in time.
    Timeout => "timeout",
    /// A connection to a dependency could not be made.
    Connect => "connect",
    /// PostgreSQL failed the statement (deadlock, serialization failure, constraint).
    Database => "database",
    /// Redis failed the command.
    Redis => "redis",
    /// An event could not be encoded (the registry unreachable or refusing).
    Encode => "encode",
    /// A value could not be serialized for storage.
    Serialize => "serialize",
    /// A use case the handler ran refused the change.
    UseCase => "use_case",
    /// An automation action's external call failed (retried, then recorded on the run).
    ActionFailed => "action_failed",
    /// An automation event names an action its run does not have.
    UnknownAction => "unknown_action",
    /// An automation event names a run the run tracker does not have.
    UnknownRun => "unknown_run",
    /// An automation event's runId is not a UUID.
    BadRunId => "bad_run_id",
    /// A form submission names a form that does not exist.
    UnknownForm => "unknown_form",
    /// A stored cache entry cannot be read.
    CorruptCacheEntry => "corrupt_cache_entry",
    /// The value is not in the Confluent wire format.
    NotConfluentFramed => "not_confluent_framed",
    /// The value's schema id is not in the registry.
    UnknownSchemaId => "unknown_schema_id",
    /// The Avro body does not match its schema.
    BadAvro => "bad_avro",
    /// The record is not one of the contract's event types.
    UnknownEventType => "unknown_event_type",
    /// The event's version is one this build cannot read.
    UnsupportedVersion => "unsupported_version",
    /// The event decoded but breaks the contract (a bad envelope or payload).
    MalformedEvent => "malformed_event",
    /// The value could not be decoded for another reason.
    DecodeError => "decode_error",
    /// A handler panicked: an error of that event, retried, then dead-lettered.
    Panic => "panic",
    /// A call was not made: the dependency's circuit is open (the event is parked).
    CircuitOpen => "circuit_open",
    /// A dependency stayed unavailable for longer than the worker's `max_park`.
    DependencyUnavailable => "dependency_unavailable",
}

impl ErrorClass {
    /// The class of a value that does not decode.
    pub fn of_decode(e: &SchemaError) -> ErrorClass {
        match e {
            SchemaError::NotConfluentFramed { .. } => ErrorClass::NotConfluentFramed,
            SchemaError::UnknownSchemaId { .. } => ErrorClass::UnknownSchemaId,
            SchemaError::BadAvro { .. } => ErrorClass::BadAvro,
            SchemaError::UnknownEventType { .. } => ErrorClass::UnknownEventType,
            SchemaError::UnsupportedVersion { .. } => ErrorClass::UnsupportedVersion,
            SchemaError::Malformed { .. } | SchemaError::InvalidEvent { .. } => ErrorClass::MalformedEvent,
            _ => ErrorClass::DecodeError,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorClass> for String {
    fn from(c: ErrorClass) -> String {
        c.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_labels() {
        let mut names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')), "{names:?}");
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "no two classes share a name");
    }
}
