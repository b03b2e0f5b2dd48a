//! Every committed fuzz input replayed through its target in `make test`:
//! the seed corpus (`fuzz/corpus/<target>/`) and the inputs that once
//! crashed a target (`fuzz/regressions/<target>/`, kept forever). A panic
//! fails the test and names the file.

use std::path::{Path, PathBuf};

use akv_fuzz_checks::TARGETS;

/// The repository's `fuzz/` directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Replays every input under `fuzz/<kind>/<target>/`; how many.
fn replay(kind: &str) -> usize {
    let root = fuzz_dir().join(kind);
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for file in inputs(&root.join(name)) {
            let data = std::fs::read(&file).expect("readable input");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} panics on {}", file.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn seed_corpus_replays_without_a_panic() {
    let replayed = replay("corpus");
    // Every target has seeds (fuzz/seeds.py writes them).
    assert!(replayed >= TARGETS.len() * 3, "only {replayed} inputs");
}

#[test]
fn crash_regressions_replay_without_a_panic() {
    let root = fuzz_dir().join("regressions");
    for entry in std::fs::read_dir(&root).expect("fuzz/regressions exists") {
        let dir = entry.expect("entry").path();
        if dir.is_dir() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/regressions/{name} is not a target"
            );
        }
    }
    replay("regressions");
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = fuzz_dir().join("fuzz_targets");
    for (name, _) in TARGETS {
        let file = dir.join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.contains(&format!("akv_fuzz_checks::{name}(data)")),
            "{} must call akv_fuzz_checks::{name}",
            file.display()
        );
    }
}
