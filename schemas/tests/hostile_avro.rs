//! Hostile Avro bodies: counts and lengths that claim more than the bytes hold are
//! `SchemaError::BadAvro`, and decoding them allocates nothing in proportion to the claim.
//!
//! The test binary runs under an allocator capped at 64 MiB: an allocation past it aborts
//! the process (as `memory allocation of … bytes failed` did in production).

use std::alloc::System;

use cap::Cap;
use ltf_schemas::catalog::{schema_def, EventType};
use ltf_schemas::codec::{decode_with, encode_body, split_frame};
use ltf_schemas::examples::samples;
use ltf_schemas::{EventPayload, SchemaError};

mod common;
use common::*;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, 64 * 1024 * 1024);

fn assert_bad_avro(ty: EventType, version: i32, body: &[u8]) {
    let writer = schema_def(ty, version).unwrap().schema();
    match decode_with(9, writer, body) {
        Err(SchemaError::BadAvro { id: 9, .. }) => {}
        other => panic!("expected BadAvro for {} bytes, got {other:?}", body.len()),
    }
}

#[test]
fn fields_map_claiming_2_pow_29_entries_is_bad_avro() {
    // The production value: a valid RecordCreated v1 envelope whose fields map claims 2^29
    // entries, the rest cut off. apache-avro reserved ~87 GB for the entries and aborted.
    let value = fields_map_of_2_pow_29_entries();
    assert!(value.len() < 200, "{} bytes", value.len());
    let (_, body) = split_frame(&value).unwrap();
    assert_bad_avro(EventType::RecordCreated, 1, body);

    // The same claim followed by one real entry.
    let mut body = record_created_v1_up_to_fields();
    body.extend(zigzag(1 << 29));
    body.extend([2, b'a', 0]);
    assert_bad_avro(EventType::RecordCreated, 1, &body);
}

#[test]
fn negative_block_counts_are_bounded_too() {
    // A negative count is followed by the block's size in bytes.
    for (count, size) in [(-(1i64 << 29), 3i64), (-(1 << 29), 1 << 40), (-2, -1), (i64::MIN, 3), (-(1 << 62), 3)] {
        let mut body = record_created_v1_up_to_fields();
        body.extend(zigzag(count));
        body.extend(zigzag(size));
        body.extend([2, b'a', 0, 0]);
        assert_bad_avro(EventType::RecordCreated, 1, &body);
    }
}

#[test]
fn huge_array_counts_are_bad_avro() {
    // changedFields (array of string) is the last field of RecordUpdated.
    let prefix = record_updated_up_to_changed_fields();
    for count in [1i64 << 29, 1 << 40, i64::MAX, -(1 << 29)] {
        let mut body = prefix.clone();
        body.extend(zigzag(count));
        if count < 0 {
            body.extend(zigzag(2));
        }
        body.extend([2, b'a', 0]);
        assert_bad_avro(EventType::RecordUpdated, 1, &body);
    }
}

#[test]
fn huge_string_lengths_are_bad_avro_without_allocating_them() {
    // tableId is the first field of the payload; cut the body right after its length.
    let marker = "tbl_marker_for_the_test";
    let mut e = sample(EventType::RecordCreated, 1);
    let EventPayload::RecordCreated(p) = &mut e.payload else { unreachable!() };
    p.table_id = marker.into();
    let body = encode_body(&e).unwrap();
    let at = body.windows(marker.len()).rposition(|w| w == marker.as_bytes()).unwrap();
    let len_at = at - zigzag(marker.len() as i64).len();
    // 256 MiB is under apache-avro's own 512 MiB limit, so it used to allocate it.
    for len in [1i64 << 28, 1 << 40, i64::MAX, -1, marker.len() as i64 + 1] {
        let mut hostile = body[..len_at].to_vec();
        hostile.extend(zigzag(len));
        hostile.extend(marker.as_bytes());
        assert_bad_avro(EventType::RecordCreated, 1, &hostile);
    }
}

#[test]
fn every_truncation_of_every_sample_is_an_error_not_a_crash() {
    for e in samples() {
        let def = schema_def(e.event_type(), e.envelope.version).unwrap();
        let body = encode_body(&e).unwrap();
        for cut in 0..body.len() {
            assert!(decode_with(1, def.schema(), &body[..cut]).is_err(), "{} cut at {cut}", e.event_type());
        }
        assert_eq!(decode_with(1, def.schema(), &body).unwrap(), e);
    }
}
