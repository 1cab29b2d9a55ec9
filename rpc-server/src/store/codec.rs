//! Row encodings. Rows are postcard-encoded serde structs owned by the store:
//! enums are stored as explicit codes and API structs through rows of their
//! own, so a change to an API type cannot change what stored rows mean (see
//! `format.rs`). The hot consumed row borrows its strings so encoding and
//! decoding it allocates nothing.

use billing_api::{ConsumedRecord, NodeStatus, RejectReason, millis_to_rfc3339};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{LedgerCounts, StoreError};

mod tail;

use tail::{decode_with_tail, encode_tail};

/// Key of the single `MetaRow` in the `META` table.
pub(crate) const META_KEY: &str = "ledger";

/// Appends `value`'s postcard bytes to `buf`.
fn append<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    *buf = postcard::to_extend(value, std::mem::take(buf))
        .map_err(|e| StoreError::Storage(format!("cannot encode a row: {e}")))?;
    Ok(())
}

/// The error of a stored row that does not decode.
fn undecodable(what: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!(
        "a stored {what} row cannot be decoded ({why}); the database is damaged or was written \
         by an incompatible version"
    ))
}

pub(crate) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    buf.clear();
    append(value, buf)
}

pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    encode(value, &mut buf)?;
    Ok(buf)
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| undecodable(what, e))
}

pub(crate) fn decode_owned<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    decode(bytes, what)
}

/// Counters and sequence numbers, kept in one row so a transaction reads and writes it once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MetaRow {
    pub counts: LedgerCounts,
    /// Last allocated sequence numbers (0 = none yet).
    pub consumed_seq: u64,
    pub payment_seq: u64,
    pub rejected_seq: u64,
    pub run_seq: u64,
    pub user_seq: u64,
    pub group_seq: u64,
    pub source_seq: u64,
    pub clean_head: Option<String>,
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The consumed seqs one transaction applied to one user (ascending), and the
/// user's previous group (0 = none). Encoded as varints, seqs as deltas.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConsumedGroup {
    pub user_id: u64,
    pub prev: u64,
    pub seqs: Vec<u64>,
}

impl ConsumedGroup {
    pub fn encode(user_id: u64, prev: u64, seqs: &[u64], buf: &mut Vec<u8>) {
        buf.clear();
        put_varint(buf, user_id);
        put_varint(buf, prev);
        let mut last = 0;
        for &seq in seqs {
            put_varint(buf, seq - last);
            last = seq;
        }
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Self, StoreError> {
        let damaged = || StoreError::Storage("a per-user consumed index row is damaged".into());
        let user_id = take_varint(&mut bytes).ok_or_else(damaged)?;
        let prev = take_varint(&mut bytes).ok_or_else(damaged)?;
        let mut seqs = Vec::new();
        let mut last = 0u64;
        while !bytes.is_empty() {
            last = last
                .checked_add(take_varint(&mut bytes).ok_or_else(damaged)?)
                .ok_or_else(damaged)?;
            seqs.push(last);
        }
        Ok(ConsumedGroup {
            user_id,
            prev,
            seqs,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRow {
    /// Internal number of the user, checked against index rows.
    pub id: u64,
    /// Newest `USER_CONSUMED` group of this user (0 = none).
    pub last_group: u64,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub created_at_ms: u64,
    pub balance_cents: i64,
    pub paid_cents: i64,
    pub consumed_cents: i64,
}

impl UserRow {
    pub fn to_api(&self, sid: &str) -> billing_api::UserBilling {
        billing_api::UserBilling {
            user_sid: sid.to_string(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            created_at: millis_to_rfc3339(self.created_at_ms),
            credit_balance_cents: self.balance_cents,
            total_paid_cents: self.paid_cents,
            total_consumed_cents: self.consumed_cents,
        }
    }

    pub fn to_balance(&self, sid: &str) -> billing_api::Balance {
        billing_api::Balance {
            user_sid: sid.to_string(),
            credit_balance_cents: self.balance_cents,
            total_paid_cents: self.paid_cents,
            total_consumed_cents: self.consumed_cents,
            overdrawn: self.balance_cents < 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PaymentRow {
    pub seq: u64,
    pub user_sid: String,
    pub amount_cents: i64,
    pub kind: String,
    pub reference: Option<String>,
    pub created_at_ms: u64,
}

impl PaymentRow {
    pub fn to_api(&self, payment_id: &str) -> billing_api::Payment {
        billing_api::Payment {
            payment_id: payment_id.to_string(),
            user_sid: self.user_sid.clone(),
            amount_cents: self.amount_cents,
            kind: self.kind.clone(),
            reference: self.reference.clone(),
            created_at: millis_to_rfc3339(self.created_at_ms),
        }
    }
}

/// An applied record. Borrowed so the hot path encodes straight from the
/// input; its provenance is shared with the other records applied from the
/// same file in the same transaction (`SourceRow`), which keeps rows small.
/// Stored with [`ConsumedRow::encode`] and read with [`ConsumedRow::decode`]:
/// `resource` is a tail, not a serde field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumedRow<'a> {
    pub key: &'a str,
    pub user_sid: &'a str,
    pub cost_cents: i64,
    /// Id of the `SourceRow` in `CONSUMED_SOURCES`.
    pub source: u64,
    /// The record's optional `resource` (added after format 2, as a tail).
    #[serde(skip)]
    pub resource: Option<&'a str>,
}

impl<'a> ConsumedRow<'a> {
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        encode(self, buf)?;
        encode_tail(self.resource, buf)
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let (mut row, resource): (Self, _) = decode_with_tail(bytes, "consumed record")?;
        row.resource = resource;
        Ok(row)
    }

    pub fn to_api(&self, source: &SourceRow) -> ConsumedRecord {
        ConsumedRecord {
            idempotency_key: self.key.to_string(),
            user_sid: self.user_sid.to_string(),
            node_name: source.node_name.clone(),
            cost_cents: self.cost_cents,
            resource: self.resource.map(str::to_string),
            applied_at: millis_to_rfc3339(source.applied_at_ms),
            commit_sha: source.commit_sha.clone(),
            file_path: source.file_path.clone(),
        }
    }
}

/// Where and when a run of consumed records was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SourceRow {
    pub node_name: String,
    pub commit_sha: String,
    pub file_path: String,
    pub applied_at_ms: u64,
}

/// A record held because its user is not registered yet. Stored with
/// [`PendingRow::encode`] and read with [`PendingRow::decode`]: `resource` is a
/// tail, not a serde field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingRow {
    pub user_sid: String,
    pub node_name: String,
    pub cost_cents: i64,
    pub commit_sha: String,
    pub file_path: String,
    pub blob_id: String,
    pub record_index: u32,
    pub first_seen_ms: u64,
    /// The `unknown_user` rejected item that makes this record visible; removed on apply.
    pub rejected_id: u64,
    /// The record's optional `resource` (added after format 2, as a tail).
    #[serde(skip)]
    pub resource: Option<String>,
}

impl PendingRow {
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        encode(self, buf)?;
        encode_tail(self.resource.as_deref(), buf)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (mut row, resource): (Self, _) = decode_with_tail(bytes, "held record")?;
        row.resource = resource.map(str::to_string);
        Ok(row)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RejectedRow {
    #[serde(with = "reason_code")]
    pub reason: RejectReason,
    pub node_name: String,
    pub file_path: String,
    pub blob_id: String,
    pub commit_sha: String,
    pub record_index: Option<u32>,
    pub idempotency_key: Option<String>,
    pub user_sid: Option<String>,
    pub cost_cents: Option<i64>,
    pub detail: String,
    #[serde(with = "existing_row")]
    pub existing: Option<ConsumedRecord>,
    pub first_seen_ms: u64,
    /// Dedup fingerprint, if this item has one (held records dedup by key instead).
    pub fingerprint: Option<String>,
}

impl RejectedRow {
    pub fn to_api(&self, id: u64) -> billing_api::RejectedItem {
        billing_api::RejectedItem {
            id: id.to_string(),
            reason: self.reason,
            node_name: self.node_name.clone(),
            file_path: self.file_path.clone(),
            blob_id: self.blob_id.clone(),
            commit_sha: self.commit_sha.clone(),
            record_index: self.record_index,
            idempotency_key: self.idempotency_key.clone(),
            user_sid: self.user_sid.clone(),
            cost_cents: self.cost_cents,
            detail: self.detail.clone(),
            existing: self.existing.clone(),
            first_seen_at: millis_to_rfc3339(self.first_seen_ms),
            record_count: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRow {
    pub tree_id: Option<String>,
    pub last_commit_sha: Option<String>,
    pub last_run_at_ms: Option<u64>,
    pub records_consumed_total: u64,
    #[serde(with = "status_code")]
    pub status: NodeStatus,
    pub last_error: Option<String>,
}

impl Default for NodeRow {
    fn default() -> Self {
        Self {
            tree_id: None,
            last_commit_sha: None,
            last_run_at_ms: None,
            records_consumed_total: 0,
            status: NodeStatus::Ok,
            last_error: None,
        }
    }
}

/// Per-record rejections (invalid records, conflicts) of one read of one file.
/// The first `chunks::REJECTION_SAMPLE` are stored one by one; the rest are
/// counted by kind into one summary item (`summary_id`, 0 = none yet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TallyRow {
    /// Records before this index were tallied already (by an interrupted read).
    pub next_index: u64,
    pub stored: u64,
    pub omitted: u64,
    /// Omitted records by kind of reason, at most `chunks::MAX_KINDS` kinds.
    pub by_kind: Vec<(String, u64)>,
    pub summary_id: u64,
}
/// Key of the `runs::RunTotals` row in the `META` table: figures over every
/// recorded run, pruned ones included.
pub(crate) const RUN_TOTALS_KEY: &str = "run_totals";

/// Reject reasons as stored: explicit codes, never reused.
pub(crate) mod reason_code {
    use super::*;

    /// The stored code of `reason`.
    pub fn of(reason: RejectReason) -> Option<u8> {
        CODES.iter().find(|(r, _)| *r == reason).map(|&(_, c)| c)
    }

    /// The reason stored as `code`.
    pub fn reason(code: u8) -> Option<RejectReason> {
        CODES.iter().find(|&&(_, c)| c == code).map(|&(r, _)| r)
    }

    const CODES: [(RejectReason, u8); 8] = [
        (RejectReason::Conflict, 1),
        (RejectReason::Invalid, 2),
        (RejectReason::UnknownUser, 3),
        (RejectReason::Unparseable, 4),
        (RejectReason::TooLarge, 5),
        (RejectReason::TooManyRecords, 6),
        (RejectReason::InvalidName, 7),
        (RejectReason::LfsPointer, 8),
    ];

    pub fn serialize<S: serde::Serializer>(reason: &RejectReason, s: S) -> Result<S::Ok, S::Error> {
        let code = CODES.iter().find(|(r, _)| r == reason).map(|&(_, c)| c);
        // Every reason has a code: a new one without would fail here, not store garbage.
        s.serialize_u8(code.ok_or_else(|| {
            serde::ser::Error::custom(format!("reject reason {reason:?} has no stored code"))
        })?)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RejectReason, D::Error> {
        let code = u8::deserialize(d)?;
        CODES
            .iter()
            .find(|&&(_, c)| c == code)
            .map(|&(r, _)| r)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reject reason code {code}")))
    }
}

/// Node status as stored: explicit codes.
pub(crate) mod status_code {
    use super::*;

    pub fn of(status: NodeStatus) -> u8 {
        match status {
            NodeStatus::Ok => 0,
            NodeStatus::Error => 1,
        }
    }

    pub fn status(code: u8) -> Option<NodeStatus> {
        match code {
            0 => Some(NodeStatus::Ok),
            1 => Some(NodeStatus::Error),
            _ => None,
        }
    }

    pub fn serialize<S: serde::Serializer>(status: &NodeStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match status {
            NodeStatus::Ok => 0,
            NodeStatus::Error => 1,
        })
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NodeStatus, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(NodeStatus::Ok),
            1 => Ok(NodeStatus::Error),
            code => Err(serde::de::Error::custom(format!(
                "unknown node status code {code}"
            ))),
        }
    }
}

/// The applied version of a conflicting record, as stored.
#[derive(Serialize, Deserialize)]
struct ExistingRow {
    key: String,
    user_sid: String,
    node_name: String,
    cost_cents: i64,
    applied_at: String,
    commit_sha: String,
    file_path: String,
}

pub(crate) mod existing_row {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        existing: &Option<ConsumedRecord>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        existing
            .as_ref()
            .map(|c| ExistingRow {
                key: c.idempotency_key.clone(),
                user_sid: c.user_sid.clone(),
                node_name: c.node_name.clone(),
                cost_cents: c.cost_cents,
                applied_at: c.applied_at.clone(),
                commit_sha: c.commit_sha.clone(),
                file_path: c.file_path.clone(),
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ConsumedRecord>, D::Error> {
        Ok(
            Option::<ExistingRow>::deserialize(d)?.map(|e| ConsumedRecord {
                idempotency_key: e.key,
                user_sid: e.user_sid,
                node_name: e.node_name,
                cost_cents: e.cost_cents,
                resource: None,
                applied_at: e.applied_at,
                commit_sha: e.commit_sha,
                file_path: e.file_path,
            }),
        )
    }
}

/// One aggregation pass, as stored in the runs table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunRow {
    pub run_id: u64,
    pub started_at: String,
    pub finished_at: String,
    pub head_commit: Option<String>,
    pub nodes_total: u64,
    pub nodes_skipped: u64,
    pub files_read: u64,
    pub files_rejected: u64,
    pub records_applied: u64,
    pub records_duplicate: u64,
    pub records_conflict: u64,
    pub records_pending: u64,
    pub records_invalid: u64,
    pub cents_debited: i64,
    /// (node, message) of each error; no node for an error of the whole pass.
    pub errors: Vec<(Option<String>, String)>,
}

impl RunRow {
    pub fn from_api(s: &billing_api::AggregateSummary) -> Self {
        RunRow {
            run_id: s.run_id,
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
            head_commit: s.head_commit.clone(),
            nodes_total: s.nodes_total,
            nodes_skipped: s.nodes_skipped,
            files_read: s.files_read,
            files_rejected: s.files_rejected,
            records_applied: s.records_applied,
            records_duplicate: s.records_duplicate,
            records_conflict: s.records_conflict,
            records_pending: s.records_pending,
            records_invalid: s.records_invalid,
            cents_debited: s.cents_debited,
            errors: s
                .errors
                .iter()
                .map(|e| (e.node_name.clone(), e.message.clone()))
                .collect(),
        }
    }

    pub fn to_api(&self) -> billing_api::AggregateSummary {
        billing_api::AggregateSummary {
            run_id: self.run_id,
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            head_commit: self.head_commit.clone(),
            nodes_total: self.nodes_total,
            nodes_skipped: self.nodes_skipped,
            files_read: self.files_read,
            files_rejected: self.files_rejected,
            records_applied: self.records_applied,
            records_duplicate: self.records_duplicate,
            records_conflict: self.records_conflict,
            records_pending: self.records_pending,
            records_invalid: self.records_invalid,
            cents_debited: self.cents_debited,
            errors: self
                .errors
                .iter()
                .map(|(node, message)| billing_api::NodeError {
                    node_name: node.clone(),
                    message: message.clone(),
                })
                .collect(),
        }
    }
}
