//! Replays the committed fuzz inputs (`fuzz/corpus/<target>/` and the crash
//! regressions in `fuzz/regressions/<target>/`) through the properties the
//! fuzz targets check, on stable, as part of the test command.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        found.extend(entries.map(|e| e.expect("readable corpus directory").path()));
    }
    found.sort();
    assert!(
        found.len() >= 10,
        "fuzz/corpus/{target} holds {} inputs; the seed corpus is committed with the tree",
        found.len()
    );
    found
}

fn replay(target: &str, check: fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} breaks a property (replay it with scripts/fuzz.sh or this test)",
            path.display()
        );
    }
}

#[test]
fn otoml_decode_corpus() {
    replay("otoml_decode", billing_api::fuzzing::otoml_decode);
}

#[test]
fn usage_path_corpus() {
    replay("usage_path", billing_api::fuzzing::usage_path);
}
