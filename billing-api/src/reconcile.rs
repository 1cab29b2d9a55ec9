//! What `reconcile` reports: the ledger compared with the billing repo at its
//! head, record by record, and every balance recomputed from its rows.

use serde::{Deserialize, Serialize};

use crate::types::ConsumedRecord;

/// The `reconcile` result. `consistent` is true when every list is empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub consistent: bool,
    /// The commit the repo was read at (`None`: the branch has no commit yet).
    pub head_commit: Option<String>,
    /// Records in a usage file at head that are neither applied, held nor
    /// rejected: lost, or committed after the last pass (a pass applies them).
    pub unapplied: Vec<RecordAtHead>,
    /// Applied records whose file at head no longer has them (the file or the
    /// record was removed or the history rewritten after they were charged).
    pub orphaned: Vec<ConsumedRecord>,
    /// Applied records whose file at head has them with other values.
    pub rewritten: Vec<Rewritten>,
    /// Balances (and counters) that differ from what the rows add up to.
    pub balances: Vec<LedgerFinding>,
    /// Differences found beyond those listed (each list holds at most 1,000).
    pub more_differences: u64,
    pub repo: RepoTotals,
    pub ledger: LedgerTotals,
    pub elapsed_ms: u64,
}

/// A record as the file at head has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordAtHead {
    pub node_name: String,
    pub file_path: String,
    pub idempotency_key: String,
    pub user_sid: String,
    pub cost_cents: i64,
}

/// An applied record, and what its file at head says instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rewritten {
    pub applied: ConsumedRecord,
    pub at_head: RecordAtHead,
}

/// Something of the ledger that does not add up, from a full `verify` in one
/// snapshot: a user's balance against their payments minus their applied
/// records, or a stored counter against the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerFinding {
    /// What was compared, e.g. ``user `u-0001` total consumed``.
    pub what: String,
    pub stored: String,
    /// What the rows add up to.
    pub actual: String,
}

/// What the repo holds at head.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RepoTotals {
    pub files: u64,
    /// Well-formed records (invalid ones are the aggregator's to reject).
    pub records: u64,
    pub cents: i128,
    /// Files not compared: over the size limit, or not a usage file as a whole.
    pub files_unread: u64,
}

/// What the ledger holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LedgerTotals {
    pub users: u64,
    pub applied_records: u64,
    pub applied_cents: i128,
    /// Records of the repo found held (their user is unknown).
    pub held_records: u64,
    /// Records of the repo found rejected (alone, or with their file).
    pub rejected_records: u64,
}
