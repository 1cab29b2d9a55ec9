//! Request and response types of the JSON-RPC API. Amounts are integer cents;
//! timestamps are RFC 3339 strings in UTC.

use serde::{Deserialize, Serialize};

/// Default page size of every `list_*` method.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size a `list_*` method returns.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// One page of a list. `next_cursor` is opaque; pass it back to get the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A prepaid user with its billing figures.
/// Invariant: `credit_balance_cents == total_paid_cents - total_consumed_cents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserBilling {
    pub user_sid: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub created_at: String,
    pub credit_balance_cents: i64,
    pub total_paid_cents: i64,
    pub total_consumed_cents: i64,
}

/// `list_users` order. Ties are broken by `user_sid`: ascending for `sid` and
/// `balance_asc`; the `_desc` orders are the exact reverse of ascending
/// `(key, user_sid)`, so ties come in descending `user_sid` order there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserSort {
    /// By `user_sid` (byte order).
    #[default]
    Sid,
    /// Lowest balance first.
    BalanceAsc,
    /// Highest balance first.
    BalanceDesc,
    /// Largest total consumed first.
    ConsumedDesc,
}

impl UserSort {
    /// The sort's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sid => "sid",
            Self::BalanceAsc => "balance_asc",
            Self::BalanceDesc => "balance_desc",
            Self::ConsumedDesc => "consumed_desc",
        }
    }
}

/// `list_users` filter: a user is listed when it meets every condition given.
/// An unknown condition is refused rather than ignored: a misspelt one would
/// otherwise list every user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// `user_sid` starts with this (byte for byte).
    #[serde(default)]
    pub sid_prefix: Option<String>,
    /// Found, ignoring case, in `user_sid`, `display_name` or `email`.
    #[serde(default)]
    pub text: Option<String>,
    /// Balance strictly below this many cents.
    #[serde(default)]
    pub below_cents: Option<i64>,
    /// `true`: balance below zero; `false`: balance zero or more.
    #[serde(default)]
    pub overdrawn: Option<bool>,
}

/// `register_user` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterUser {
    pub user_sid: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `record_payment` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordPayment {
    pub payment_id: String,
    pub user_sid: String,
    pub amount_cents: i64,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
}

/// A credit to a user's balance, as stored in the payment audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub user_sid: String,
    pub amount_cents: i64,
    /// `topup` unless the caller said otherwise (e.g. `refund`, `adjustment`).
    pub kind: String,
    pub reference: Option<String>,
    pub created_at: String,
}

/// `get_balance` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    pub user_sid: String,
    pub credit_balance_cents: i64,
    pub total_paid_cents: i64,
    pub total_consumed_cents: i64,
    pub overdrawn: bool,
}

/// A usage record applied to a balance, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumedRecord {
    pub idempotency_key: String,
    pub user_sid: String,
    pub node_name: String,
    pub cost_cents: i64,
    /// The record's `resource`, when its file gave one.
    #[serde(default)]
    pub resource: Option<String>,
    pub applied_at: String,
    pub commit_sha: String,
    pub file_path: String,
}

/// Why an item is held or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The key was already applied with other values; neither version was changed.
    Conflict,
    /// The record breaks a rule of the wire format.
    Invalid,
    /// The user is not registered yet; the record is held and applied once they are.
    UnknownUser,
    /// The whole file could not be decoded.
    Unparseable,
    /// The whole file is over the size limit and was not read.
    TooLarge,
    /// The whole file holds more records than the per-file limit and was not applied.
    TooManyRecords,
    /// The file's name is not a real hour (`usage_<YYYY-MM-DD-HH>.otoml`); it was not read.
    InvalidName,
    /// The file is a Git LFS pointer, not usage data.
    LfsPointer,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::UnknownUser => "unknown_user",
            Self::Unparseable => "unparseable",
            Self::TooLarge => "too_large",
            Self::TooManyRecords => "too_many_records",
            Self::InvalidName => "invalid_name",
            Self::LfsPointer => "lfs_pointer",
        }
    }
}

/// A held or rejected record or file, with provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedItem {
    /// Stable id of this entry.
    pub id: String,
    pub reason: RejectReason,
    pub node_name: String,
    pub file_path: String,
    pub blob_id: String,
    pub commit_sha: String,
    /// Record position in its file; `None` for a whole-file rejection.
    pub record_index: Option<u32>,
    pub idempotency_key: Option<String>,
    pub user_sid: Option<String>,
    pub cost_cents: Option<i64>,
    /// What is wrong and what to do, for an operator.
    pub detail: String,
    /// For a conflict: the values already applied under this key.
    pub existing: Option<ConsumedRecord>,
    pub first_seen_at: String,
    /// For a file's summary of rejected records beyond those listed one by one:
    /// how many records it stands for (absent for an item of one record or file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
}

/// Per-node error of one aggregation pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    /// The node, or `None` for an error of the whole pass (e.g. the repo is unreachable).
    pub node_name: Option<String>,
    pub message: String,
}

/// What one aggregation pass did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AggregateSummary {
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
    pub errors: Vec<NodeError>,
}

/// State of one node as seen by the aggregator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node_name: String,
    /// Branch head at which this node was last consumed.
    pub last_commit_sha: Option<String>,
    pub last_run_at: Option<String>,
    pub records_consumed_total: u64,
    pub status: NodeStatus,
    pub last_error: Option<String>,
    /// The newest usage hour consumed from this node (`YYYY-MM-DD-HH`, UTC).
    #[serde(default)]
    pub newest_hour: Option<String>,
    /// True when the end of `newest_hour` is longer ago than the server's
    /// `--stale-after`: the node stopped reporting.
    #[serde(default)]
    pub stale: bool,
}

/// Outcome of the last pass over a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Ok,
    Error,
}

/// Health of the aggregator as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No pass has run yet.
    Idle,
    /// The last pass finished without errors.
    Ok,
    /// The last pass finished, but some nodes failed.
    Degraded,
    /// The last pass failed as a whole (e.g. the repo was unreachable).
    Failing,
}

/// `aggregator_state` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatorState {
    pub health: Health,
    pub last_run: Option<AggregateSummary>,
    /// The server that ran the last pass: `--replica-name`, or HOSTNAME:PID.
    /// Several servers share a PostgreSQL ledger; one at a time runs a pass.
    #[serde(default)]
    pub last_run_replica: Option<String>,
    /// The server that answered.
    #[serde(default)]
    pub replica: String,
    pub nodes: Vec<NodeState>,
    /// The last `verify` and `reconcile` this server ran (not kept across restarts).
    #[serde(default)]
    pub last_verify: Option<crate::checks::CheckOutcome>,
    #[serde(default)]
    pub last_reconcile: Option<crate::checks::CheckOutcome>,
    /// A check running on this server now.
    #[serde(default)]
    pub check_running: Option<crate::checks::CheckProgress>,
}

/// `overview` result: the dashboard's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub total_users: u64,
    /// Sum of all balances: 128-bit, so no user's amounts can make it overflow.
    pub total_balance_cents: i128,
    pub overdrawn_users: u64,
    pub consumed_records: u64,
    /// Records held because their user is not registered yet; they apply when it is.
    pub pending_records: u64,
    /// Every item `list_rejected` lists: the held records (`pending_records`)
    /// and the ones rejected for good (conflicts, invalid records, whole files).
    pub rejected_items: u64,
    pub health: Health,
    pub last_run_at: Option<String>,
    /// Nodes whose newest usage hour is older than the server's `--stale-after`.
    #[serde(default)]
    pub stale_nodes: u64,
}

/// Current time as RFC 3339 (UTC, millisecond precision).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Formats unix milliseconds as RFC 3339.
pub fn millis_to_rfc3339(millis: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 timestamp into unix milliseconds.
pub fn rfc3339_to_millis(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}
