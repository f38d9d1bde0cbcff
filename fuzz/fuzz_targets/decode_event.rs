//! A Kafka value as a consumer gets it: Confluent frame, Avro body, upcasting, event types.
//! Only `Err` or `Ok` may come out; a panic or an abort is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ltf_schemas::fuzzing::decode_event(data);
});
