//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' checks
//! (`fuzz/src/lib.rs`), on stable, as ordinary tests. Fuzzing itself needs nightly and
//! `cargo fuzz`; see `fuzz/Cargo.toml`.

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

/// The corpus files of `target`, sorted. A target without a corpus is a failure.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn replay(target: &str) {
    for path in corpus(target) {
        let data = std::fs::read(&path).expect("a corpus file");
        let result = std::panic::catch_unwind(|| fuzz::run(target, &data));
        assert!(
            result.is_ok(),
            "{target}: {} fails its check (input {:?})",
            path.display(),
            String::from_utf8_lossy(&data)
        );
    }
}

#[test]
fn every_target_has_a_corpus() {
    for target in fuzz::TARGETS {
        corpus(target);
    }
}

#[test]
fn session_header_corpus() {
    replay("session_header");
}

#[test]
fn classify_corpus() {
    replay("classify");
}

#[test]
fn codec_corpus() {
    replay("codec");
}

#[test]
#[cfg(feature = "jwt")]
fn jwt_corpus() {
    replay("jwt");
}

#[test]
#[cfg(feature = "jwt")]
fn dpop_corpus() {
    replay("dpop");
    // The seeds made by npm `dpop` for the target's request (ES256, PS256, RS256) are accepted:
    // the fuzzer starts from proofs that reach every check.
    let accepted = corpus("dpop")
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            mcp_session_binding::__private::check_dpop_proof(&data, "fuzz-token", 1_700_000_000)
                .is_ok()
        })
        .count();
    assert!(accepted >= 3, "{accepted} accepted seeds");
}

#[test]
#[cfg(feature = "jwt")]
fn jwks_corpus() {
    replay("jwks");
}

#[test]
#[cfg(feature = "jwt")]
fn discovery_corpus() {
    replay("discovery");
}

#[test]
fn scan_corpus() {
    replay("scan");
}

#[test]
#[cfg(feature = "jwt")]
fn introspection_corpus() {
    replay("introspection");
}
