//! Decoding a usage file in groups of records, so that memory stays bounded
//! whatever the file's size or record count.
//!
//! [`check_file`] reads the whole file once without decoding a record and
//! says whether it can be read at all; [`decode_groups`] then hands out the
//! decoded records group by group. A caller that must not apply part of a file
//! that turns out unreadable calls `check_file` first (or collects the groups
//! of a small file before using them).

use std::ops::ControlFlow;

use super::walk::{self, RecordText};
use super::{
    BatchError, InvalidRecord, MAX_RAW_BYTES, UsageRecord, decode_region, decode_strict, truncate,
};

/// Most records decoded together.
pub const GROUP_RECORDS: usize = 256;
/// Most bytes of record text decoded together (a single larger record is decoded alone).
const GROUP_BYTES: usize = 256 * 1024;
/// A well-formed file up to this size is decoded in one go (the common case, and
/// the fastest); a larger one, or one with a bad record, is walked and decoded in groups.
const WHOLE_FILE_BYTES: usize = 256 * 1024;

/// Limits the aggregator applies besides the format's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most records one file may hold; a file with more is rejected whole.
    pub max_records: u64,
    /// Largest `cost_cents` of one record; a larger one is an invalid record.
    pub max_record_cents: i64,
}

impl DecodeLimits {
    /// No limit beyond the format's own rules.
    pub const UNLIMITED: DecodeLimits = DecodeLimits {
        max_records: u64::MAX,
        max_record_cents: i64::MAX,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_records: super::DEFAULT_MAX_RECORDS_PER_FILE,
            max_record_cents: super::DEFAULT_MAX_RECORD_CENTS,
        }
    }
}

/// Consecutive records of a file: record `first_index + i` is `records[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedGroup {
    pub first_index: u64,
    pub records: Vec<Result<UsageRecord, InvalidRecord>>,
}

/// How a Git LFS pointer file starts (the LFS specification's first line).
const LFS_POINTER_START: &[u8] = b"version https://git-lfs.github.com/spec/";

/// The file as text; a Git LFS pointer is named as such, not as bad TOML.
fn utf8(bytes: &[u8]) -> Result<&str, BatchError> {
    if bytes.starts_with(LFS_POINTER_START) {
        return Err(BatchError::LfsPointer);
    }
    std::str::from_utf8(bytes).map_err(|e| BatchError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// Checks that the whole file can be read (UTF-8, TOML structure, `version`,
/// `records` an array, at most `limits.max_records` records) without decoding
/// its records. Returns the number of records.
pub fn check_file(bytes: &[u8], limits: &DecodeLimits) -> Result<u64, BatchError> {
    let text = utf8(bytes)?;
    let mut seen = 0u64;
    let count = walk::walk(text, &mut |_| {
        seen += 1;
        if seen > limits.max_records {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if count > limits.max_records {
        return Err(BatchError::TooManyRecords {
            limit: limits.max_records,
        });
    }
    Ok(count)
}

/// Decodes the records of a file that lives in the directory of `node_name`,
/// in file order, handing them to `on_group` in groups of at most
/// [`GROUP_RECORDS`], until it returns `Break`. A record that breaks a rule is
/// an `Err` with its reason, and the rest of the file still decodes. Returns the
/// number of records, or why the file as a whole cannot be read; such an error
/// may come after groups were handed out (see [`check_file`]).
pub fn decode_groups(
    bytes: &[u8],
    node_name: &str,
    limits: &DecodeLimits,
    on_group: &mut dyn FnMut(DecodedGroup) -> ControlFlow<()>,
) -> Result<u64, BatchError> {
    let text = utf8(bytes)?;
    if text.len() <= WHOLE_FILE_BYTES
        && let Some(decoded) = decode_strict(text, node_name)
    {
        let decoded = decoded?;
        let count = decoded.len() as u64;
        if count > limits.max_records {
            return Err(BatchError::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let mut records = decoded
            .into_iter()
            .enumerate()
            .map(|(i, r)| ceiling(r, i as u64, limits));
        let mut first_index = 0;
        loop {
            let group: Vec<_> = records.by_ref().take(GROUP_RECORDS).collect();
            if group.is_empty() {
                return Ok(count);
            }
            let len = group.len() as u64;
            let flow = on_group(DecodedGroup {
                first_index,
                records: group,
            });
            if flow.is_break() {
                return Ok(count);
            }
            first_index += len;
        }
    }
    let mut pending: Vec<RecordText> = Vec::with_capacity(GROUP_RECORDS);
    let mut next_index = 0u64;
    let mut broke = false;
    let mut too_many = false;
    let mut flush = |pending: &mut Vec<RecordText>, next_index: &mut u64| -> ControlFlow<()> {
        if pending.is_empty() {
            return ControlFlow::Continue(());
        }
        let records = decode_texts(text, pending, *next_index, node_name, limits);
        let group = DecodedGroup {
            first_index: *next_index,
            records,
        };
        *next_index += pending.len() as u64;
        pending.clear();
        on_group(group)
    };
    let count = walk::walk(text, &mut |record| {
        if next_index + pending.len() as u64 >= limits.max_records {
            too_many = true;
            return ControlFlow::Break(());
        }
        let span = pending
            .first()
            .map_or(0, |first| record.span.end.saturating_sub(first.span.start));
        let same_form = pending
            .first()
            .is_none_or(|first| first.inline == record.inline);
        if !pending.is_empty() && (span > GROUP_BYTES || !same_form) {
            broke = flush(&mut pending, &mut next_index).is_break();
            if broke {
                return ControlFlow::Break(());
            }
        }
        pending.push(record);
        if pending.len() >= GROUP_RECORDS {
            broke = flush(&mut pending, &mut next_index).is_break();
            if broke {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if too_many {
        return Err(BatchError::TooManyRecords {
            limit: limits.max_records,
        });
    }
    if !broke {
        let _ = flush(&mut pending, &mut next_index);
    }
    Ok(count)
}

/// Decodes consecutive records, together when they are well-formed, else one by one.
fn decode_texts(
    text: &str,
    records: &[RecordText],
    first_index: u64,
    node_name: &str,
    limits: &DecodeLimits,
) -> Vec<Result<UsageRecord, InvalidRecord>> {
    let region = records[0].span.start..records[records.len() - 1].span.end;
    let decoded = match decode_region(&as_document(text, region, records[0].inline), node_name) {
        Ok(decoded) if decoded.len() == records.len() => decoded,
        // Some record is not valid TOML by itself: decode each alone to find it.
        _ if records.len() > 1 => {
            return records
                .iter()
                .enumerate()
                .flat_map(|(i, record)| {
                    decode_texts(
                        text,
                        std::slice::from_ref(record),
                        first_index + i as u64,
                        node_name,
                        limits,
                    )
                })
                .collect();
        }
        Ok(_) => vec![Err(not_toml(
            text,
            &records[0],
            first_index,
            "it does not hold exactly one record",
        ))],
        Err(e) => vec![Err(not_toml(
            text,
            &records[0],
            first_index,
            &e.to_string(),
        ))],
    };
    decoded
        .into_iter()
        .enumerate()
        .map(|(i, record)| ceiling(record, first_index + i as u64, limits))
        .collect()
}

/// Sets a decoded record's index in its file, and refuses a cost above the ceiling.
fn ceiling(
    record: Result<UsageRecord, InvalidRecord>,
    index: u64,
    limits: &DecodeLimits,
) -> Result<UsageRecord, InvalidRecord> {
    match record {
        Ok(record) if record.cost_cents > limits.max_record_cents => Err(InvalidRecord {
            index: index as usize,
            idempotency_key: Some(truncate(&record.idempotency_key, 256).to_string()),
            user_sid: Some(truncate(&record.user_sid, 128).to_string()),
            reason: format!(
                "cost_cents {} is above the ceiling of {} cents for one record \
                 (--max-record-cents)",
                record.cost_cents, limits.max_record_cents
            ),
            raw: String::new(),
        }),
        Ok(record) => Ok(record),
        Err(mut invalid) => {
            invalid.index = index as usize;
            Err(invalid)
        }
    }
}

/// The records' text as a document of their own with one `records` array.
fn as_document(text: &str, region: std::ops::Range<usize>, inline: bool) -> String {
    let body = &text[region];
    if inline {
        let mut doc = String::with_capacity(body.len() + 14);
        doc.push_str("records = [");
        doc.push_str(body);
        doc.push_str("\n]");
        doc
    } else {
        body.to_string()
    }
}

fn not_toml(text: &str, record: &RecordText, index: u64, error: &str) -> InvalidRecord {
    let raw = &text[record.span.clone()];
    let mut shown = truncate(raw, MAX_RAW_BYTES).to_string();
    if shown.len() < raw.len() {
        shown.push('…');
    }
    InvalidRecord {
        index: index as usize,
        idempotency_key: None,
        user_sid: None,
        reason: format!(
            "the record is not valid TOML: {}",
            error.trim_end().replace('\n', " | ")
        ),
        raw: shown,
    }
}
