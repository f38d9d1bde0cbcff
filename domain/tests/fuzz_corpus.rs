//! Replays the `automation` fuzz corpus (`fuzz/corpus/automation/`, crashes found by fuzzing
//! included as named `regression-*` files) on stable: every file goes through the function
//! the fuzz target runs, which must return without panicking.

use std::fs;
use std::path::Path;

use ltf_domain::fuzzing::automation;

#[test]
fn automation_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/automation");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() > 5, "{} holds only {} files", dir.display(), files.len());
    let mut rendered = 0;
    for file in &files {
        let bytes = fs::read(file).unwrap();
        match std::panic::catch_unwind(|| automation(&bytes)) {
            Ok(n) => rendered += n,
            Err(_) => panic!("automation panicked on {}", file.display()),
        }
    }
    // The seeds are valid definitions whose templates render: the corpus is not all garbage.
    assert!(rendered > 0, "no template of {} files rendered", files.len());
}
