//! Hostile bodies shared by the hostile-input tests and the fuzz corpus seeds.

#![allow(dead_code)]

use ltf_schemas::catalog::{EventType, SCHEMAS};
use ltf_schemas::codec::{encode_body, frame};
use ltf_schemas::examples::samples;
use ltf_schemas::{DomainEvent, EventPayload};

/// Avro's zig-zag varint encoding of a long.
pub fn zigzag(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// The sample event of `ty` at `version`.
pub fn sample(ty: EventType, version: i32) -> DomainEvent {
    samples().into_iter().find(|e| e.event_type() == ty && e.envelope.version == version).unwrap()
}

/// The schema id whose writer schema is `ty` at `version` for `ltf_schemas::fuzzing`.
pub fn fuzz_id(ty: EventType, version: i32) -> u32 {
    SCHEMAS.iter().position(|s| s.event_type == ty && s.version == version).unwrap() as u32
}

/// RecordCreated v1 with an empty `fields` map: the body ends with the map's 0 terminator;
/// returns the bytes before it.
pub fn record_created_v1_up_to_fields() -> Vec<u8> {
    let mut e = sample(EventType::RecordCreated, 1);
    let EventPayload::RecordCreated(p) = &mut e.payload else { unreachable!() };
    p.fields.clear();
    let mut body = encode_body(&e).unwrap();
    assert_eq!(body.pop(), Some(0), "fields is the last field of RecordCreated v1");
    body
}

/// The production value: a RecordCreated v1 body whose fields map claims 2^29 entries, the
/// rest cut off (framed with the id of RecordCreated v1 for the fuzz target).
pub fn fields_map_of_2_pow_29_entries() -> Vec<u8> {
    let mut body = record_created_v1_up_to_fields();
    body.extend(zigzag(1 << 29));
    frame(fuzz_id(EventType::RecordCreated, 1), &body)
}

/// RecordUpdated v1 up to its changedFields array (the last field).
pub fn record_updated_up_to_changed_fields() -> Vec<u8> {
    let mut e = sample(EventType::RecordUpdated, 1);
    let EventPayload::RecordUpdated(p) = &mut e.payload else { unreachable!() };
    p.changed_fields.clear();
    let mut body = encode_body(&e).unwrap();
    assert_eq!(body.pop(), Some(0), "changedFields is the last field of RecordUpdated v1");
    body
}
