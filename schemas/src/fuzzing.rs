//! What the fuzz targets in `fuzz/` run, callable from stable tests too: the corpora under
//! `fuzz/corpus/` are replayed by `cargo test -p ltf-schemas` (`tests/fuzz_corpus.rs`).

use crate::catalog::{self, SCHEMAS};
use crate::codec::{decode_with, encode_body, split_frame};
use crate::event::DomainEvent;
use crate::SchemaError;

/// The embedded schema a fuzzed schema id stands for: `SCHEMAS[id % SCHEMAS.len()]`, so every
/// writer schema of the contract is reachable from the 4 id bytes of the frame.
pub fn writer_for(id: u32) -> &'static catalog::SchemaDef {
    &SCHEMAS[id as usize % SCHEMAS.len()]
}

/// The `decode_event` target: a Kafka value as a consumer gets it. Splits the Confluent
/// frame, decodes the body with the writer schema [`writer_for`] the id (bounds check,
/// apache-avro, upcasting to the newest reader schema, conversion to [`DomainEvent`]).
///
/// Panics only if the decoder is wrong: a decoded event that encodes again must decode to
/// itself (an encoding error is allowed: e.g. a v2 body whose envelope says version 1 and
/// carries `createdBy` decodes, and v1 cannot carry it).
pub fn decode_event(data: &[u8]) -> Result<DomainEvent, SchemaError> {
    let (id, body) = split_frame(data)?;
    let event = decode_with(id, writer_for(id).schema(), body)?;
    if let Ok(again) = encode_body(&event) {
        let def = catalog::schema_def(event.event_type(), event.envelope.version).expect("encode_body found this schema");
        match decode_with(id, def.schema(), &again) {
            Ok(back) => assert_eq!(back, event, "a decoded event does not survive encoding and decoding again"),
            Err(e) => panic!("a decoded event encodes to a body that does not decode: {e}"),
        }
    }
    Ok(event)
}
