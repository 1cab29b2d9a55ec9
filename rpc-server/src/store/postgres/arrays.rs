//! Rows as the column arrays of an `INSERT … SELECT * FROM unnest`, filled
//! the same way for the store's batched writes (`flush.rs`) and for
//! `migrate-ledger`.

use std::borrow::Cow;

use postgres::types::ToSql;

use super::super::StoreError;
use super::super::codec::{RejectedRow, existing_row, reason_code};
use super::{clean, to_db};

/// Rejected rows as the column arrays of an `INSERT … SELECT * FROM unnest`,
/// in the order of [`REJECTED_INSERT_COLUMNS`]; free text without NULs.
pub(crate) struct RejectedColumns<'a> {
    ids: Vec<i64>,
    reasons: Vec<i16>,
    nodes: Vec<Cow<'a, str>>,
    paths: Vec<Cow<'a, str>>,
    blobs: Vec<Cow<'a, str>>,
    commits: Vec<Cow<'a, str>>,
    index: Vec<Option<i64>>,
    keys: Vec<Option<Cow<'a, str>>>,
    sids: Vec<Option<Cow<'a, str>>>,
    costs: Vec<Option<i64>>,
    details: Vec<Cow<'a, str>>,
    existing: Vec<Option<serde_json::Value>>,
    seen: Vec<i64>,
    fps: Vec<Option<&'a [u8]>>,
}

/// The columns [`RejectedColumns`] fills, and their array types.
pub(crate) const REJECTED_INSERT_COLUMNS: &str = "rejected_id, reason, node_name, file_path, \
     blob_id, commit_sha, record_index, idempotency_key, user_sid, cost_cents, detail, existing, \
     first_seen_ms, fingerprint";
pub(crate) const REJECTED_UNNEST: &str = "$1::int8[], $2::int2[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::text[], \
     $12::jsonb[], $13::int8[], $14::bytea[]";

impl<'a> RejectedColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (u64, &'a RejectedRow)>) -> Result<Self, StoreError> {
        let mut c = RejectedColumns {
            ids: Vec::new(),
            reasons: Vec::new(),
            nodes: Vec::new(),
            paths: Vec::new(),
            blobs: Vec::new(),
            commits: Vec::new(),
            index: Vec::new(),
            keys: Vec::new(),
            sids: Vec::new(),
            costs: Vec::new(),
            details: Vec::new(),
            existing: Vec::new(),
            seen: Vec::new(),
            fps: Vec::new(),
        };
        for (id, r) in rows {
            c.ids.push(to_db(id));
            let code = reason_code::of(r.reason).ok_or_else(|| {
                StoreError::Storage(format!("reject reason {:?} has no stored code", r.reason))
            })?;
            c.reasons.push(i16::from(code));
            c.nodes.push(clean(&r.node_name));
            c.paths.push(clean(&r.file_path));
            c.blobs.push(clean(&r.blob_id));
            c.commits.push(clean(&r.commit_sha));
            c.index.push(r.record_index.map(i64::from));
            c.keys.push(r.idempotency_key.as_deref().map(clean));
            c.sids.push(r.user_sid.as_deref().map(clean));
            c.costs.push(r.cost_cents);
            c.details.push(clean(&r.detail));
            let json = existing_row::serialize(&r.existing, serde_json::value::Serializer)
                .map_err(|e| StoreError::Storage(format!("cannot encode a row: {e}")))?;
            c.existing.push((!json.is_null()).then_some(json));
            c.seen.push(to_db(r.first_seen_ms));
            c.fps.push(r.fingerprint.as_deref().map(str::as_bytes));
        }
        Ok(c)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The parameters `$1` to `$14`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 14] {
        [
            &self.ids,
            &self.reasons,
            &self.nodes,
            &self.paths,
            &self.blobs,
            &self.commits,
            &self.index,
            &self.keys,
            &self.sids,
            &self.costs,
            &self.details,
            &self.existing,
            &self.seen,
            &self.fps,
        ]
    }
}
