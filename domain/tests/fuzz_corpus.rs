//! Replays the `automation` and `api_bodies` fuzz corpora (`fuzz/corpus/<target>/`, crashes
//! found by fuzzing included as named `regression-*` files) on stable: every file goes
//! through the function the fuzz target runs, which must return without panicking.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ltf_domain::fuzzing::{api_body, automation, BodyKind, BodyVerdict};

/// The files of `fuzz/corpus/<target>/`, sorted; at least `min` of them.
fn corpus(target: &str, min: usize) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= min, "{} holds only {} files", dir.display(), files.len());
    files
}

#[test]
fn automation_corpus_replays_without_panicking() {
    let files = corpus("automation", 6);
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

#[test]
fn api_bodies_corpus_replays_without_panicking() {
    let files = corpus("api_bodies", 100);
    // Per body kind: how many files were malformed, refused, accepted.
    let mut seen: BTreeMap<BodyKind, [usize; 3]> = BTreeMap::new();
    for file in &files {
        let bytes = fs::read(file).unwrap();
        match std::panic::catch_unwind(|| api_body(&bytes)) {
            Ok(Some((kind, verdict))) => {
                let slot = match verdict {
                    BodyVerdict::Malformed => 0,
                    BodyVerdict::Refused(_) => 1,
                    BodyVerdict::Accepted => 2,
                };
                seen.entry(kind).or_default()[slot] += 1;
            }
            Ok(None) => {}
            Err(_) => panic!("api_body panicked on {}", file.display()),
        }
    }
    // The seeds hold, for every route, bodies the checks accept and bodies they refuse: the
    // corpus reaches past the parser everywhere.
    for kind in BodyKind::ALL {
        let [malformed, refused, accepted] = seen.get(&kind).copied().unwrap_or_default();
        assert!(
            accepted > 0 && refused + malformed > 0,
            "{kind:?}: {malformed} malformed, {refused} refused, {accepted} accepted"
        );
    }
    let refused: usize = seen.values().map(|counts| counts[1]).sum();
    assert!(refused >= BodyKind::ALL.len(), "only {refused} bodies refused by a check: {seen:?}");
}
