//! An automation definition as POST /automations receives it, validated, its trigger
//! evaluated and its `{{path}}` templates rendered (ltf-domain's pure functions only).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ltf_domain::fuzzing::automation(data);
});
