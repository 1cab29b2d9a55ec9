//! Rows as the column arrays of an `INSERT … SELECT * FROM unnest`, filled
//! the same way for the store's batched writes (`flush.rs`) and for
//! `migrate-ledger`.

use std::borrow::Cow;

use postgres::types::ToSql;

use super::super::StoreError;
use super::super::codec::{
    PaymentRow, PendingRow, RejectedRow, SourceRow, TallyRow, UserRow, existing_row, reason_code,
};
use super::rows::FileKey;
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

/// The array types of user rows, in the order of `USER_COLUMNS`.
pub(crate) const USER_UNNEST: &str = "$1::text[], $2::int8[], $3::text[], $4::text[], \
     $5::int8[], $6::int8[], $7::int8[], $8::int8[]";

/// User rows as the column arrays of [`USER_UNNEST`].
#[derive(Default)]
pub(crate) struct UserColumns<'a> {
    sids: Vec<&'a str>,
    ids: Vec<i64>,
    names: Vec<Option<&'a str>>,
    emails: Vec<Option<&'a str>>,
    created: Vec<i64>,
    balance: Vec<i64>,
    paid: Vec<i64>,
    consumed: Vec<i64>,
}

impl<'a> UserColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (&'a str, &'a UserRow)>) -> Self {
        let mut c = UserColumns::default();
        for (sid, u) in rows {
            c.sids.push(sid);
            c.ids.push(to_db(u.id));
            c.names.push(u.display_name.as_deref());
            c.emails.push(u.email.as_deref());
            c.created.push(to_db(u.created_at_ms));
            c.balance.push(u.balance_cents);
            c.paid.push(u.paid_cents);
            c.consumed.push(u.consumed_cents);
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.sids.is_empty()
    }

    /// The parameters `$1` to `$8`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.sids,
            &self.ids,
            &self.names,
            &self.emails,
            &self.created,
            &self.balance,
            &self.paid,
            &self.consumed,
        ]
    }
}

/// The array types of payment rows, in the order of `PAYMENT_COLUMNS`.
pub(crate) const PAYMENT_UNNEST: &str =
    "$1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[]";

/// Payment rows as the column arrays of [`PAYMENT_UNNEST`].
#[derive(Default)]
pub(crate) struct PaymentColumns<'a> {
    ids: Vec<&'a str>,
    seqs: Vec<i64>,
    sids: Vec<&'a str>,
    amounts: Vec<i64>,
    kinds: Vec<&'a str>,
    refs: Vec<Option<&'a str>>,
    at: Vec<i64>,
}

impl<'a> PaymentColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (&'a str, &'a PaymentRow)>) -> Self {
        let mut c = PaymentColumns::default();
        for (id, p) in rows {
            c.ids.push(id);
            c.seqs.push(to_db(p.seq));
            c.sids.push(p.user_sid.as_str());
            c.amounts.push(p.amount_cents);
            c.kinds.push(p.kind.as_str());
            c.refs.push(p.reference.as_deref());
            c.at.push(to_db(p.created_at_ms));
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The parameters `$1` to `$7`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids,
            &self.seqs,
            &self.sids,
            &self.amounts,
            &self.kinds,
            &self.refs,
            &self.at,
        ]
    }
}

/// The columns [`SourceColumns`] fills, and their array types.
pub(crate) const SOURCE_INSERT_COLUMNS: &str =
    "source_id, node_name, commit_sha, file_path, applied_at_ms";
pub(crate) const SOURCE_UNNEST: &str = "$1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[]";

/// Source rows as the column arrays of [`SOURCE_UNNEST`].
#[derive(Default)]
pub(crate) struct SourceColumns<'a> {
    ids: Vec<i64>,
    nodes: Vec<&'a str>,
    commits: Vec<&'a str>,
    paths: Vec<&'a str>,
    at: Vec<i64>,
}

impl<'a> SourceColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (u64, &'a SourceRow)>) -> Self {
        let mut c = SourceColumns::default();
        for (id, s) in rows {
            c.ids.push(to_db(id));
            c.nodes.push(s.node_name.as_str());
            c.commits.push(s.commit_sha.as_str());
            c.paths.push(s.file_path.as_str());
            c.at.push(to_db(s.applied_at_ms));
        }
        c
    }

    /// The parameters `$1` to `$5`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.ids, &self.nodes, &self.commits, &self.paths, &self.at]
    }
}

/// The columns [`ConsumedColumns`] fills, and their array types.
pub(crate) const CONSUMED_INSERT_COLUMNS: &str =
    "idempotency_key, seq, user_sid, cost_cents, source_id, resource";
pub(crate) const CONSUMED_UNNEST: &str =
    "$1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[]";

/// Applied records as the column arrays of [`CONSUMED_UNNEST`].
pub(crate) struct ConsumedColumns<'a> {
    keys: Vec<&'a str>,
    seqs: Vec<i64>,
    sids: Vec<&'a str>,
    costs: Vec<i64>,
    sources: Vec<i64>,
    resources: Vec<Option<&'a str>>,
}

impl<'a> ConsumedColumns<'a> {
    pub fn with_capacity(n: usize) -> Self {
        ConsumedColumns {
            keys: Vec::with_capacity(n),
            seqs: Vec::with_capacity(n),
            sids: Vec::with_capacity(n),
            costs: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
            resources: Vec::with_capacity(n),
        }
    }

    pub fn push(
        &mut self,
        key: &'a str,
        seq: u64,
        user_sid: &'a str,
        cost_cents: i64,
        source: u64,
        resource: Option<&'a str>,
    ) {
        self.keys.push(key);
        self.seqs.push(to_db(seq));
        self.sids.push(user_sid);
        self.costs.push(cost_cents);
        self.sources.push(to_db(source));
        self.resources.push(resource);
    }

    /// The parameters `$1` to `$6`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.keys,
            &self.seqs,
            &self.sids,
            &self.costs,
            &self.sources,
            &self.resources,
        ]
    }
}

/// The array types of held records, in the order of `PENDING_COLUMNS`.
pub(crate) const PENDING_UNNEST: &str = "$1::text[], $2::text[], $3::text[], $4::int8[], \
     $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::text[]";

/// Held records as the column arrays of [`PENDING_UNNEST`].
#[derive(Default)]
pub(crate) struct PendingColumns<'a> {
    keys: Vec<&'a str>,
    sids: Vec<&'a str>,
    nodes: Vec<&'a str>,
    costs: Vec<i64>,
    commits: Vec<&'a str>,
    paths: Vec<&'a str>,
    blobs: Vec<&'a str>,
    index: Vec<i64>,
    seen: Vec<i64>,
    rejected: Vec<i64>,
    resources: Vec<Option<&'a str>>,
}

impl<'a> PendingColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (&'a str, &'a PendingRow)>) -> Self {
        let mut c = PendingColumns::default();
        for (key, p) in rows {
            c.keys.push(key);
            c.sids.push(p.user_sid.as_str());
            c.nodes.push(p.node_name.as_str());
            c.costs.push(p.cost_cents);
            c.commits.push(p.commit_sha.as_str());
            c.paths.push(p.file_path.as_str());
            c.blobs.push(p.blob_id.as_str());
            c.index.push(i64::from(p.record_index));
            c.seen.push(to_db(p.first_seen_ms));
            c.rejected.push(to_db(p.rejected_id));
            c.resources.push(p.resource.as_deref());
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The parameters `$1` to `$11`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.keys,
            &self.sids,
            &self.nodes,
            &self.costs,
            &self.commits,
            &self.paths,
            &self.blobs,
            &self.index,
            &self.seen,
            &self.rejected,
            &self.resources,
        ]
    }
}

/// The array types of file tallies, in the order of `TALLY_COLUMNS`.
pub(crate) const TALLY_UNNEST: &str = "$1::text[], $2::text[], $3::text[], $4::int8[], \
     $5::int8[], $6::int8[], $7::jsonb[], $8::int8[]";

/// File tallies as the column arrays of [`TALLY_UNNEST`]; rejection kinds
/// without NULs.
#[derive(Default)]
pub(crate) struct TallyColumns<'a> {
    nodes: Vec<&'a str>,
    paths: Vec<&'a str>,
    blobs: Vec<&'a str>,
    next: Vec<i64>,
    stored: Vec<i64>,
    omitted: Vec<i64>,
    kinds: Vec<serde_json::Value>,
    summary: Vec<i64>,
}

impl<'a> TallyColumns<'a> {
    pub fn of(rows: impl IntoIterator<Item = (&'a FileKey, &'a TallyRow)>) -> Self {
        let mut c = TallyColumns::default();
        for ((node, path, blob), t) in rows {
            c.nodes.push(node.as_str());
            c.paths.push(path.as_str());
            c.blobs.push(blob.as_str());
            c.next.push(to_db(t.next_index));
            c.stored.push(to_db(t.stored));
            c.omitted.push(to_db(t.omitted));
            c.kinds.push(serde_json::Value::Array(
                t.by_kind
                    .iter()
                    .map(|(k, n)| serde_json::json!([clean(k), n]))
                    .collect(),
            ));
            c.summary.push(to_db(t.summary_id));
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The parameters `$1` to `$8`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.nodes,
            &self.paths,
            &self.blobs,
            &self.next,
            &self.stored,
            &self.omitted,
            &self.kinds,
            &self.summary,
        ]
    }
}
