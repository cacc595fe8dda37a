//! CI's fuzzing regression step, on stable Rust: every committed seed and finding under
//! `fuzz/corpus/TARGET/` goes through the same checks the libFuzzer targets run
//! (`fuzz/checks/`), so an input that once broke an invariant keeps being tried.
//! `scripts/fuzz.sh` runs the fuzzers themselves (nightly).

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no seeds for {target} in {}",
            dir.display()
        );
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks its checks",
                file.display()
            );
            replayed += 1;
        }
    }
    checks::remove_config_file();
    eprintln!("replayed {replayed} corpus files");
}
