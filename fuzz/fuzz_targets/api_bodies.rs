//! The HTTP API's JSON request bodies: the first byte picks the route, the rest is parsed as
//! its body, turned into the use case's input and checked as the use case checks it before
//! the database (ltf-domain's pure functions only; ltf-producers and its Kafka client are
//! not linked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ltf_domain::fuzzing::api_body(data);
});
