//! The properties the fuzz targets in `fuzz/` check on any input, as plain
//! functions: the targets call them under libFuzzer (nightly), and the corpus
//! replay tests call them on every committed input (stable, in the test
//! command). Each panics, naming the property, when one fails.

use std::ops::ControlFlow;
use std::path::Path;

use crate::otoml::{
    self, DecodeLimits, InvalidRecord, MAX_KEY_BYTES, MAX_RAW_BYTES, UsageBatch, UsageRecord,
};

/// The `fuzz/` project at the workspace's root, whichever crate's test asks.
pub fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

/// Replays the committed inputs of fuzz target `target` through `check`: the
/// seeds in `fuzz/corpus/<target>/` and the crash regressions in
/// `fuzz/regressions/<target>/`, in name order. Fails naming the input
/// that breaks a property, or when the seed corpus is missing.
pub fn replay_corpus(target: &str, check: &mut dyn FnMut(&[u8])) {
    let fuzz_dir = fuzz_dir();
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir.join(dir).join(target)) else {
            continue;
        };
        inputs.extend(entries.map(|e| e.expect("a readable corpus directory").path()));
    }
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "{}/corpus/{target} holds {} inputs; the seed corpus is committed with the tree",
        fuzz_dir.display(),
        inputs.len()
    );
    for path in inputs {
        let data = std::fs::read(&path).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(
            outcome.is_ok(),
            "fuzz target {target}: {} breaks a property (its panic is printed above); \
             replay it with `cargo +nightly fuzz run {target} <file>` in fuzz/",
            path.display()
        );
    }
}

/// The node whose directory fuzzed files live in.
pub const FUZZ_NODE: &str = "node-1";

/// OTOML decoding of any bytes:
/// - the whole-file check and the grouped decoding agree on whether the file
///   can be read, and on its record count; groups come in file order;
/// - every accepted record obeys the documented rules (`otoml::validate`),
///   and encoding it then decoding the text gives the same record back;
/// - every rejected record says why, and what it keeps of the input is bounded.
pub fn otoml_decode(data: &[u8]) {
    let limits = DecodeLimits::UNLIMITED;
    let checked = otoml::check_file(data, &limits);
    let mut records = Vec::new();
    let decoded = otoml::decode_groups(data, FUZZ_NODE, &limits, &mut |group| {
        assert_eq!(
            group.first_index,
            records.len() as u64,
            "groups are handed out in file order, without gaps"
        );
        records.extend(group.records);
        ControlFlow::Continue(())
    });
    match (&checked, &decoded) {
        (Ok(count), Ok(decoded_count)) => {
            assert_eq!(
                count, decoded_count,
                "check_file and decode_groups count alike"
            );
            assert_eq!(*count, records.len() as u64, "every record is handed out");
        }
        (Err(_), Err(_)) => return,
        _ => panic!(
            "check_file ({checked:?}) and decode_groups ({decoded:?}) disagree on whether the \
             file can be read"
        ),
    }
    for (index, record) in records.iter().enumerate() {
        match record {
            Ok(record) => accepted_record(record),
            Err(invalid) => rejected_record(index, invalid),
        }
    }
}

fn accepted_record(record: &UsageRecord) {
    if let Err(reason) = otoml::validate(record, FUZZ_NODE) {
        panic!("an accepted record breaks a rule ({reason}): {record:?}");
    }
    let text = otoml::encode_batch(&UsageBatch {
        version: Some(otoml::OTOML_VERSION),
        records: vec![record.clone()],
    });
    let again = match otoml::decode_batch(text.as_bytes(), FUZZ_NODE) {
        Ok(batch) => batch,
        Err(e) => panic!("an accepted record, encoded, does not decode ({e}): {text}"),
    };
    let [Ok(back)] = again.records.as_slice() else {
        panic!("an accepted record, encoded, decodes as {again:?}: {text}");
    };
    // Compared as text: a quantity of NaN is not equal to itself.
    let text_back = otoml::encode_batch(&UsageBatch {
        version: Some(otoml::OTOML_VERSION),
        records: vec![back.clone()],
    });
    assert_eq!(text, text_back, "encode then decode changes the record");
}

fn rejected_record(index: usize, invalid: &InvalidRecord) {
    assert_eq!(
        invalid.index, index,
        "a rejected record names its own position"
    );
    assert!(!invalid.reason.is_empty(), "a rejected record says why");
    // The kept text is cut at MAX_RAW_BYTES and marked with an ellipsis (3 bytes).
    assert!(
        invalid.raw.len() <= MAX_RAW_BYTES + 3,
        "a rejected record keeps {} bytes of raw text",
        invalid.raw.len()
    );
    for kept in [&invalid.idempotency_key, &invalid.user_sid]
        .into_iter()
        .flatten()
    {
        assert!(kept.len() <= MAX_KEY_BYTES, "a kept key or sid is bounded");
    }
}

/// Usage path parsing of any text:
/// - a path the aggregator reads names a valid node and a usage file name, and
///   is rebuilt exactly from them;
/// - a file's hour has a start time exactly when it is a real calendar hour,
///   and that start is on the hour.
pub fn usage_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((node, file)) = otoml::parse_usage_path(path) {
        assert!(otoml::is_valid_node_name(node), "node {node:?} of {path:?}");
        assert!(otoml::is_usage_file_name(file), "file {file:?} of {path:?}");
        let stamp = otoml::usage_hour_stamp(file)
            .unwrap_or_else(|| panic!("a usage file name {file:?} has an hour stamp"));
        assert_eq!(otoml::usage_path(node, stamp), path, "the path round-trips");
    }
    // Any last path segment, as a file name.
    let file = path.rsplit('/').next().unwrap_or(path);
    let real = otoml::check_usage_hour(file).is_ok();
    let start = otoml::usage_hour_start_ms(file);
    assert_eq!(
        real,
        start.is_some(),
        "{file:?}: check_usage_hour and usage_hour_start_ms agree"
    );
    if let Some(ms) = start {
        assert_eq!(ms % 3_600_000, 0, "{file:?} starts on the hour");
        assert!(otoml::is_usage_file_name(file));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_properties_hold_for_ordinary_inputs() {
        otoml_decode(
            b"version = 1\nrecords = [\n{idempotency_key = \"k1\", user_sid = \"u1\", \
              node_name = \"node-1\", cost_cents = 5},\n{cost_cents = 1},\n]\n",
        );
        otoml_decode(b"not toml at all [[[");
        otoml_decode(&[0xff, 0xfe]);
        usage_path(b"nodes/node-1/usage_2026-02-28-23.otoml");
        usage_path(b"nodes/node-1/usage_2026-02-30-23.otoml");
        usage_path(b"nodes/../usage_2026-02-28-23.otoml");
    }

    #[test]
    #[should_panic(expected = "a rejected record names its own position")]
    fn a_broken_property_panics() {
        rejected_record(
            3,
            &InvalidRecord {
                index: 2,
                idempotency_key: None,
                user_sid: None,
                reason: "bad".into(),
                raw: String::new(),
            },
        );
    }
}
