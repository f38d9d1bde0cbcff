//! Replays the `decode_event` fuzz corpus (`fuzz/corpus/decode_event/`, crashes found by
//! fuzzing included as named `regression-*` files) on stable: every file goes through the
//! function the fuzz target runs, which must return without panicking, under an allocator
//! capped at 256 MiB (an allocation past it aborts the test binary).
//!
//! The `seed-*` files are the sample events framed with the id that picks their writer
//! schema; the hand-made `regression-*` files are the hostile values of
//! `schemas/tests/hostile_avro.rs`.

use std::alloc::System;
use std::fs;
use std::path::{Path, PathBuf};

use cap::Cap;
use ltf_schemas::examples::samples;
use ltf_schemas::fuzzing::decode_event;

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
