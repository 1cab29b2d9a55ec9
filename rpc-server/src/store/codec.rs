//! Row encodings. Rows are postcard-encoded serde structs; the hot consumed row
//! borrows its strings so encoding and decoding it allocates nothing.

use billing_api::{ConsumedRecord, NodeStatus, RejectReason, millis_to_rfc3339};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{LedgerCounts, StoreError};

/// Key of the single `MetaRow` in the `META` table.
pub(crate) const META_KEY: &str = "ledger";

pub(crate) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    buf.clear();
    let out = postcard::to_extend(value, std::mem::take(buf))
        .map_err(|e| StoreError::Storage(format!("cannot encode a row: {e}")))?;
    *buf = out;
    Ok(())
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
    postcard::from_bytes(bytes).map_err(|e| {
        StoreError::Storage(format!(
            "a stored {what} row cannot be decoded ({e}); the database is damaged or was written \
             by an incompatible version"
        ))
    })
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumedRow<'a> {
    pub key: &'a str,
    pub user_sid: &'a str,
    pub cost_cents: i64,
    /// Id of the `SourceRow` in `CONSUMED_SOURCES`.
    pub source: u64,
}

impl ConsumedRow<'_> {
    pub fn to_api(&self, source: &SourceRow) -> ConsumedRecord {
        ConsumedRecord {
            idempotency_key: self.key.to_string(),
            user_sid: self.user_sid.to_string(),
            node_name: source.node_name.clone(),
            cost_cents: self.cost_cents,
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

/// A record held because its user is not registered yet.
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RejectedRow {
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
