//! OTOML v1: the TOML usage batches compute nodes commit to the billing repo
//! (`nodes/<node>/usage_<YYYY-MM-DD-HH>.otoml`). See `docs/otoml.md`.
//!
//! Decoding is two-speed: a strict pass decodes a well-formed file in one go;
//! when it fails, a lenient pass decodes record by record so one bad record is
//! rejected with a reason while the rest of its file still applies.

mod fast;
mod groups;
mod names;
mod walk;

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use toml::value::Datetime;

pub use groups::{DecodeLimits, DecodedGroup, check_file, decode_groups};
pub use names::{
    check_usage_hour, is_usage_file_name, is_valid_node_name, parse_usage_path, usage_hour_stamp,
    usage_hour_start_ms, usage_path,
};
pub use walk::MAX_OTHER_VALUE_BYTES;

/// The only wire-format version this build understands.
pub const OTOML_VERSION: i64 = 1;
/// Largest accepted `idempotency_key`, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest accepted `user_sid`, in bytes.
pub const MAX_SID_BYTES: usize = 128;
/// Largest accepted node name, in bytes.
pub const MAX_NODE_NAME_BYTES: usize = 128;
/// Longest `resource` accepted, in bytes (it is stored with every applied record).
pub const MAX_RESOURCE_BYTES: usize = 128;
/// Default limit on the size of one usage file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Default limit on the number of records in one usage file.
pub const DEFAULT_MAX_RECORDS_PER_FILE: u64 = 1_000_000;
/// Default ceiling of one record's `cost_cents` (1,000,000.00).
pub const DEFAULT_MAX_RECORD_CENTS: i64 = 100_000_000;
/// How much of an invalid record's text is kept to show the operator.
pub const MAX_RAW_BYTES: usize = 256;

/// One file of usage records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageBatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default)]
    pub records: Vec<UsageRecord>,
}

/// One charge for one user, produced by one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub idempotency_key: String,
    pub user_sid: String,
    pub node_name: String,
    pub cost_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<Datetime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<Datetime>,
}

/// A record of a file that could not be accepted, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRecord {
    /// Position of the record in the file's `records` array.
    pub index: usize,
    /// The key, when the record had a readable one.
    pub idempotency_key: Option<String>,
    /// The user, when the record had a readable one.
    pub user_sid: Option<String>,
    /// What is wrong, phrased for an operator.
    pub reason: String,
    /// The record as written, rendered back to TOML (bounded in size).
    pub raw: String,
}

/// A decoded file: each record either valid or rejected, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedBatch {
    pub records: Vec<Result<UsageRecord, InvalidRecord>>,
}

/// Why a whole file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("file is not valid UTF-8 (byte {valid_up_to}); nodes must write UTF-8 TOML")]
    NotUtf8 { valid_up_to: usize },
    #[error("file is not valid TOML: {0}")]
    Toml(String),
    #[error("`records` must be an array of tables, found {0}")]
    RecordsNotArray(String),
    #[error("unsupported OTOML version {0}; this aggregator reads version {OTOML_VERSION}")]
    UnsupportedVersion(String),
    #[error(
        "file holds more than {limit} records, the per-file limit; split it into smaller files \
         on the node, or raise --max-records-per-file"
    )]
    TooManyRecords { limit: u64 },
    #[error(
        "file is a Git LFS pointer, not usage data: the repo stores this path with Git LFS; \
         usage files must be plain files (take nodes/**/*.otoml out of the LFS patterns in \
         .gitattributes on the node and commit the file again)"
    )]
    LfsPointer,
}

/// Serializes a batch as OTOML text.
pub fn encode_batch(batch: &UsageBatch) -> String {
    toml::to_string(batch).expect("a UsageBatch always serializes to TOML")
}

/// Decodes one usage file that lives in the directory of `node_name`, with
/// no limit on its record count or costs (the aggregator uses [`decode_groups`]).
///
/// Records whose `node_name` differs from the directory are rejected, so a
/// node cannot charge on behalf of another.
pub fn decode_batch(bytes: &[u8], node_name: &str) -> Result<DecodedBatch, BatchError> {
    let mut records = Vec::new();
    decode_groups(bytes, node_name, &DecodeLimits::UNLIMITED, &mut |group| {
        records.extend(group.records);
        ControlFlow::Continue(())
    })?;
    Ok(DecodedBatch { records })
}

/// Decodes a well-formed region of records (a whole `records` array) in one go;
/// when that fails, record by record, so one bad record is rejected with a
/// reason while the rest still apply. Indexes are relative to the region.
fn decode_region(
    text: &str,
    node_name: &str,
) -> Result<Vec<Result<UsageRecord, InvalidRecord>>, BatchError> {
    match decode_strict(text, node_name) {
        Some(decoded) => decoded,
        None => decode_lenient(text, node_name).map(|batch| batch.records),
    }
}

/// The fast path: the whole text is a well-typed batch (`None` when it is not).
fn decode_strict(
    text: &str,
    node_name: &str,
) -> Option<Result<Vec<Result<UsageRecord, InvalidRecord>>, BatchError>> {
    let batch = fast::parse_batch(text).or_else(|| toml::from_str::<UsageBatch>(text).ok())?;
    if let Err(e) = check_version(batch.version.map(toml::Value::Integer).as_ref()) {
        return Some(Err(e));
    }
    let records = batch
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| match validate(&record, node_name) {
            Ok(()) => Ok(record),
            Err(reason) => {
                let fields = toml::Table::try_from(&record).unwrap_or_default();
                Err(invalid(index, &fields, reason))
            }
        })
        .collect();
    Some(Ok(records))
}

fn decode_lenient(text: &str, node_name: &str) -> Result<DecodedBatch, BatchError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        BatchError::Toml(e.to_string().trim_end().replace('\n', " | "))
    })?;
    check_version(table.get("version"))?;
    let records = match table.remove("records") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(other) => return Err(BatchError::RecordsNotArray(other.type_str().to_string())),
    };
    let records = records
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let toml::Value::Table(fields) = value else {
                let mut t = toml::Table::new();
                t.insert("value".into(), value.clone());
                return Err(invalid(
                    index,
                    &t,
                    format!("record is a {}, not a table", value.type_str()),
                ));
            };
            match toml::Value::Table(fields.clone()).try_into::<UsageRecord>() {
                Ok(record) => match validate(&record, node_name) {
                    Ok(()) => Ok(record),
                    Err(reason) => Err(invalid(index, &fields, reason)),
                },
                Err(e) => Err(invalid(index, &fields, e.message().to_string())),
            }
        })
        .collect();
    Ok(DecodedBatch { records })
}

fn check_version(version: Option<&toml::Value>) -> Result<(), BatchError> {
    match version {
        None => Ok(()),
        Some(toml::Value::Integer(OTOML_VERSION)) => Ok(()),
        Some(other) => Err(BatchError::UnsupportedVersion(other.to_string())),
    }
}

fn invalid(index: usize, fields: &toml::Table, reason: String) -> InvalidRecord {
    let text_field = |name: &str| {
        fields
            .get(name)
            .and_then(toml::Value::as_str)
            .map(|s| truncate(s, MAX_KEY_BYTES).to_string())
    };
    let mut raw = toml::to_string(fields).unwrap_or_default();
    if raw.len() > MAX_RAW_BYTES {
        raw = format!("{}…", truncate(&raw, MAX_RAW_BYTES));
    }
    InvalidRecord {
        index,
        idempotency_key: text_field("idempotency_key"),
        user_sid: text_field("user_sid"),
        reason,
        raw,
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Checks the rules the types cannot express; on failure says why.
pub fn validate(record: &UsageRecord, node_name: &str) -> Result<(), String> {
    let reason =
        if record.idempotency_key.is_empty() || record.idempotency_key.len() > MAX_KEY_BYTES {
            Some(format!(
                "idempotency_key must be 1..={MAX_KEY_BYTES} bytes, got {}",
                record.idempotency_key.len()
            ))
        } else if record.user_sid.is_empty() || record.user_sid.len() > MAX_SID_BYTES {
            Some(format!(
                "user_sid must be 1..={MAX_SID_BYTES} bytes, got {}",
                record.user_sid.len()
            ))
        } else if let Some(resource) = record
            .resource
            .as_ref()
            .filter(|r| r.len() > MAX_RESOURCE_BYTES)
        {
            Some(format!(
                "resource must be at most {MAX_RESOURCE_BYTES} bytes, got {}",
                resource.len()
            ))
        } else if let Some(field) = [
            ("idempotency_key", Some(&record.idempotency_key)),
            ("user_sid", Some(&record.user_sid)),
            ("resource", record.resource.as_ref()),
        ]
        .iter()
        .find(|(_, value)| value.is_some_and(|v| v.chars().any(crate::text::is_unsafe_char)))
        .map(|(field, _)| field)
        {
            // Control characters would hide in logs and terminals and blur stored identities;
            // the same rule as the API's ids, so a held sid can always be registered.
            Some(format!(
                "{field} must not contain control characters or bidirectional overrides"
            ))
        } else if record.cost_cents < 0 {
            Some(format!(
                "cost_cents must be >= 0, got {}",
                record.cost_cents
            ))
        } else if record.node_name != node_name {
            Some(format!(
                "node_name {:?} does not match the directory nodes/{node_name}/",
                truncate(&record.node_name, MAX_NODE_NAME_BYTES)
            ))
        } else {
            None
        };
    match reason {
        None => Ok(()),
        Some(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_hour_start_is_the_utc_hour() {
        // 2026-12-02T13:00:00Z
        assert_eq!(
            usage_hour_start_ms("usage_2026-12-02-13.otoml"),
            Some(1_796_216_400_000)
        );
        assert_eq!(
            usage_hour_start_ms("usage_2024-02-29-00.otoml"),
            Some(1_709_164_800_000)
        );
        assert_eq!(usage_hour_start_ms("usage_2026-02-29-00.otoml"), None);
        assert_eq!(usage_hour_start_ms("usage_2026-12-02-24.otoml"), None);
        assert_eq!(usage_hour_start_ms("notes.txt"), None);
    }

    fn record(key: &str) -> UsageRecord {
        UsageRecord {
            idempotency_key: key.into(),
            user_sid: "u-1".into(),
            node_name: "node-a".into(),
            cost_cents: 42,
            resource: Some("vm.cpu".into()),
            quantity: Some(3600.0),
            unit: Some("core-seconds".into()),
            period_start: Some("2026-11-27T10:00:00Z".parse().unwrap()),
            period_end: None,
        }
    }

    #[test]
    fn round_trips_a_batch() {
        let batch = UsageBatch {
            version: Some(1),
            records: vec![record("k1"), record("k2")],
        };
        let decoded = decode_batch(encode_batch(&batch).as_bytes(), "node-a").unwrap();
        let got: Vec<_> = decoded.records.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, batch.records);
    }

    #[test]
    fn rejects_bad_records_but_keeps_the_rest() {
        let text = r#"
[[records]]
idempotency_key = "ok"
user_sid = "u-1"
node_name = "node-a"
cost_cents = 5
future_field = "ignored"

[[records]]
idempotency_key = "neg"
user_sid = "u-1"
node_name = "node-a"
cost_cents = -1

[[records]]
idempotency_key = "str"
user_sid = "u-1"
node_name = "node-a"
cost_cents = "12"

[[records]]
idempotency_key = "other-node"
user_sid = "u-1"
node_name = "node-b"
cost_cents = 1

[[records]]
user_sid = "u-1"
node_name = "node-a"
cost_cents = 1

[[records]]
idempotency_key = "nul\u0000key"
user_sid = "u-1"
node_name = "node-a"
cost_cents = 1
"#;
        let decoded = decode_batch(text.as_bytes(), "node-a").unwrap();
        assert_eq!(decoded.records.len(), 6);
        assert_eq!(decoded.records[0].as_ref().unwrap().cost_cents, 5);
        let errs: Vec<_> = decoded.records[1..]
            .iter()
            .map(|r| r.as_ref().unwrap_err())
            .collect();
        assert!(
            errs[0].reason.contains("cost_cents must be >= 0"),
            "{errs:?}"
        );
        assert_eq!(errs[0].idempotency_key.as_deref(), Some("neg"));
        assert!(
            errs[1].reason.contains("invalid type"),
            "{}",
            errs[1].reason
        );
        assert!(
            errs[2].reason.contains("does not match"),
            "{}",
            errs[2].reason
        );
        assert!(
            errs[3].reason.contains("idempotency_key"),
            "{}",
            errs[3].reason
        );
        assert_eq!(errs[3].index, 4);
        assert!(
            errs[4].reason.contains("control characters"),
            "{}",
            errs[4].reason
        );
    }

    #[test]
    fn resource_is_bounded_and_printable() {
        let record = |resource: &str| {
            format!(
                "[[records]]\nidempotency_key = \"k\"\nuser_sid = \"u-1\"\nnode_name = \"n\"\n\
                 cost_cents = 1\nresource = \"{resource}\"\n"
            )
        };
        let ok = "r".repeat(MAX_RESOURCE_BYTES);
        let decoded = decode_batch(record(&ok).as_bytes(), "n").unwrap();
        assert_eq!(
            decoded.records[0].as_ref().unwrap().resource.as_deref(),
            Some(ok.as_str())
        );
        let long = "r".repeat(MAX_RESOURCE_BYTES + 1);
        let decoded = decode_batch(record(&long).as_bytes(), "n").unwrap();
        let err = decoded.records[0].as_ref().unwrap_err();
        assert!(
            err.reason
                .contains("resource must be at most 128 bytes, got 129"),
            "{err:?}"
        );
        let decoded = decode_batch(record("gpu\\u001b[31m").as_bytes(), "n").unwrap();
        let err = decoded.records[0].as_ref().unwrap_err();
        assert!(
            err.reason.contains("resource must not contain control"),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_whole_files_with_a_reason() {
        assert!(matches!(
            decode_batch(b"records = [", "n"),
            Err(BatchError::Toml(_))
        ));
        assert!(matches!(
            decode_batch(b"\xff\xfe", "n"),
            Err(BatchError::NotUtf8 { .. })
        ));
        assert!(matches!(
            decode_batch(b"records = 3", "n"),
            Err(BatchError::RecordsNotArray(_))
        ));
        assert!(matches!(
            decode_batch(b"version = 2\nrecords = []", "n"),
            Err(BatchError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn huge_cost_is_an_invalid_record_not_a_wrap() {
        let text = "[[records]]\nidempotency_key='ok'\nuser_sid='u'\nnode_name='n'\ncost_cents=1\n\
                    [[records]]\nidempotency_key='k'\nuser_sid='u'\nnode_name='n'\ncost_cents=99999999999999999999\n";
        // TOML integers are i64: an out-of-range literal makes that record unreadable, not the file.
        let decoded = decode_batch(text.as_bytes(), "n").unwrap();
        assert_eq!(decoded.records[0].as_ref().unwrap().cost_cents, 1);
        let bad = decoded.records[1].as_ref().unwrap_err();
        assert_eq!(bad.index, 1);
        assert!(bad.reason.contains("not valid TOML"), "{}", bad.reason);
        assert!(bad.raw.contains("99999999999999999999"), "{}", bad.raw);
    }

    #[test]
    fn a_git_lfs_pointer_is_named_not_parsed() {
        let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12\n";
        assert_eq!(decode_batch(pointer, "node-a"), Err(BatchError::LfsPointer));
        assert_eq!(
            check_file(pointer, &DecodeLimits::default()),
            Err(BatchError::LfsPointer)
        );
        assert!(
            BatchError::LfsPointer
                .to_string()
                .contains(".gitattributes")
        );
    }

    #[test]
    fn recognizes_usage_paths_only() {
        assert_eq!(
            parse_usage_path("nodes/node-a/usage_2026-11-27-10.otoml"),
            Some(("node-a", "usage_2026-11-27-10.otoml"))
        );
        for bad in [
            "nodes/../usage_2026-11-27-10.otoml",
            "nodes/a/b/usage_2026-11-27-10.otoml",
            "nodes/a/usage_2026-11-27.otoml",
            "nodes/a/usage_2026-11-27-10.toml",
            "README.md",
            "nodes/a b/usage_2026-11-27-10.otoml",
        ] {
            assert_eq!(parse_usage_path(bad), None, "{bad}");
        }
        assert!(!is_valid_node_name(&"x".repeat(129)));
        assert_eq!(check_usage_hour("usage_2024-02-29-23.otoml"), Ok(()));
        for (bad, says) in [
            ("usage_9999-99-99-99.otoml", "month 99"),
            ("usage_2026-02-29-10.otoml", "day 29"),
            ("usage_2026-04-31-10.otoml", "day 31"),
            ("usage_2026-11-27-24.otoml", "hour 24"),
            ("usage_2026-00-01-00.otoml", "month 00"),
            ("usage_0000-01-01-00.otoml", "year 0000"),
            ("usage_1969-12-31-23.otoml", "before 1970"),
        ] {
            let err = check_usage_hour(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
