//! Replays the `decode_event` fuzz corpus (`fuzz/corpus/decode_event/`, crashes found by
//! fuzzing included as named `regression-*` files) on stable: every file goes through the
//! function the fuzz target runs, which must return without panicking, under an allocator
//! capped at 256 MiB (an allocation past it aborts the test binary).
//!
//! The `seed-*` and hand-made `regression-*` files are written by
//! `cargo test -p ltf-schemas --test fuzz_corpus -- --ignored write_seeds`.

use std::alloc::System;
use std::fs;
use std::path::{Path, PathBuf};

use cap::Cap;
use ltf_schemas::catalog::EventType;
use ltf_schemas::codec::{encode_body, frame};
use ltf_schemas::examples::samples;
use ltf_schemas::fuzzing::decode_event;

mod common;
use common::*;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, 256 * 1024 * 1024);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_event")
}

#[test]
fn decode_event_corpus_replays_without_panicking() {
    let dir = corpus();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() > 10, "{} holds only {} files", dir.display(), files.len());
    let mut decoded = 0;
    for file in &files {
        let bytes = fs::read(file).unwrap();
        match std::panic::catch_unwind(|| decode_event(&bytes).is_ok()) {
            Ok(ok) => decoded += usize::from(ok),
            Err(_) => panic!("decode_event panicked on {}", file.display()),
        }
    }
    // The seeds include every sample event, framed: the corpus is not all garbage.
    assert!(decoded >= samples().len(), "only {decoded} of {} files decode", files.len());
}

/// Writes the seeds: every sample event framed with the id that picks its writer schema,
/// and the hostile values of the bounds check.
#[test]
#[ignore = "writes the fuzz corpus seeds"]
fn write_seeds() {
    let dir = corpus();
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| fs::write(dir.join(name), bytes).unwrap();
    for (i, e) in samples().iter().enumerate() {
        let (ty, v) = (e.event_type(), e.envelope.version);
        write(&format!("seed-{i}-{ty}-v{v}"), &frame(fuzz_id(ty, v), &encode_body(e).unwrap()));
    }
    write("regression-fields-map-claims-2-pow-29-entries", &fields_map_of_2_pow_29_entries());
    let created = fuzz_id(EventType::RecordCreated, 1);
    let mut body = record_created_v1_up_to_fields();
    body.extend(zigzag(-(1 << 29)));
    body.extend(zigzag(3));
    body.extend([2, b'a', 0, 0]);
    write("regression-fields-map-negative-count-2-pow-29", &frame(created, &body));
    let mut body = record_updated_up_to_changed_fields();
    body.extend(zigzag(1 << 29));
    body.extend([2, b'a', 0]);
    write("regression-changed-fields-claims-2-pow-29-items", &frame(fuzz_id(EventType::RecordUpdated, 1), &body));
    let mut body = record_created_v1_up_to_fields();
    body.extend([2, 2, b'a', 10]); // one entry, key "a", the JsonText branch
    body.extend(zigzag(1 << 28));
    body.extend(b"json");
    write("regression-json-text-claims-256-mib", &frame(created, &body));
}
