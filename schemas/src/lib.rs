//! The LaTeChforce event contract.
//!
//! This crate owns everything other teams depend on byte for byte:
//!
//! * the Avro schemas in `schemas/avro/*.avsc` (embedded at build time, see [`catalog`]);
//! * the topic, subject, header and consumer-group naming of DESIGN.md ([`contract`]);
//! * the Rust event types ([`event`]) and the lossless JSON-in-Avro field encoding
//!   ([`fields`]), field maps built when first read ([`LazyFields`]);
//! * the Confluent wire-format codec ([`codec`]): byte 0 = 0, a 4-byte big-endian schema
//!   id, then Avro binary; subjects by TopicRecordNameStrategy;
//! * schema registration, compatibility setting and compatibility checking ([`registry`]).
//!
//! Guarantees:
//! * an encoded value is readable by the stock Confluent deserializers (Java, Python);
//! * every event type string, aggregate type and header name comes from one place;
//! * decoding never panics: a wrong magic byte, an unknown schema id, a truncated body,
//!   an unknown record name or a version no reader supports is a typed [`SchemaError`];
//! * decoding allocates nothing a hostile count or length claims: [`bounds`] checks every
//!   array/map block count and string length against the bytes left before apache-avro
//!   decodes the body (the direct decoder checks each as it reads it);
//! * decoding validates the whole body, field maps included (UTF-8, union branches, a
//!   value without a JSON form names its field), before it returns an event; the direct
//!   decoder keeps a field map as its Avro bytes and builds it on first read
//!   ([`LazyFields`]), which cannot fail, so a handler that never reads the fields never
//!   pays for them;
//! * a value written with an older schema version is read with the newest reader schema
//!   (e.g. RecordCreated v1 read as v2 gets `createdBy = null`);
//! * registry look-ups are cached: one HTTP call per (subject, schema) and per schema id,
//!   also when many encodes or decodes need it at once (they wait for the one call and
//!   share its answer; a failed call is not remembered, the next caller asks again).

#![warn(missing_docs)]

mod binary;
mod binary_decode;
pub mod bounds;
pub mod catalog;
pub mod codec;
pub mod contract;
mod error;
pub mod event;
pub mod examples;
pub mod fields;
pub mod fuzzing;
mod json_check;
pub mod registry;
mod single_flight;
mod value;

pub use catalog::{EventType, SchemaDef};
pub use codec::{EncodedEvent, EventCodec};
pub use contract::{AggregateType, Headers, TopicNames};
pub use error::SchemaError;
pub use event::{
    ActionExecuted, ActionResult, AutomationTriggered, ConnectionEstablished, DomainEvent, Envelope, EventPayload, FormSubmitted,
    RecordCreated, RecordDeleted, RecordUpdated,
};
pub use fields::{Fields, LazyFields};
