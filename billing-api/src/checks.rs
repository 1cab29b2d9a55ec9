//! The ledger checks a server ran (`verify`, `reconcile`), as
//! `aggregator_state` reports them: the last outcome of each, and the
//! progress of one running now.

use serde::{Deserialize, Serialize};

/// Which check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The ledger against itself (`verify`, full depth).
    Verify,
    /// The ledger against the billing repo at its head (`reconcile`).
    Reconcile,
}

impl CheckKind {
    /// The check's name: its RPC method and `rpc-server` command.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Verify => "verify",
            CheckKind::Reconcile => "reconcile",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Consistent,
    /// It ran and found differences (`summary` names them).
    Differences,
    /// It could not run to the end (`summary` says why).
    Failed,
}

/// The last run of one check on this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub kind: CheckKind,
    pub result: CheckResult,
    /// One line: what was checked, or what differs, or why it failed.
    pub summary: String,
    pub finished_at: String,
    pub elapsed_ms: u64,
}

/// A check running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckProgress {
    pub kind: CheckKind,
    pub started_at: String,
    /// Steps done of `total` (for `reconcile`: nodes read; 0 of 0 until the
    /// repo is listed, and while the applied records are compared).
    pub done: u64,
    pub total: u64,
}
