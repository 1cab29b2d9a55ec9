//! The ledger checks this server ran (`verify`, `reconcile`): the last
//! outcome of each and the progress of one running, for `aggregator_state`
//! and the dashboard. Kept in memory: a restarted server has run none.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use billing_api::{
    CheckKind, CheckOutcome, CheckProgress, CheckResult, ReconcileReport, now_rfc3339,
};

use crate::store::VerifyReport;

#[derive(Default)]
pub struct Checks {
    state: Mutex<State>,
}

#[derive(Default, Clone)]
pub struct ChecksView {
    pub last_verify: Option<CheckOutcome>,
    pub last_reconcile: Option<CheckOutcome>,
    pub running: Option<CheckProgress>,
}

type State = ChecksView;

/// A check under way: records its outcome with [`Running::finish`]; dropped
/// unfinished (a cancelled call), it only clears the progress.
pub struct Running<'a> {
    checks: &'a Checks,
    kind: CheckKind,
    started: Instant,
}

impl Checks {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn view(&self) -> ChecksView {
        self.with(|s| s.clone())
    }

    pub fn start(&self, kind: CheckKind) -> Running<'_> {
        self.with(|s| {
            s.running = Some(CheckProgress {
                kind,
                started_at: now_rfc3339(),
                done: 0,
                total: 0,
            })
        });
        Running {
            checks: self,
            kind,
            started: Instant::now(),
        }
    }
}

impl Running<'_> {
    /// `done` of `total` steps are behind.
    pub fn progress(&self, done: u64, total: u64) {
        self.checks.with(|s| {
            if let Some(p) = s.running.as_mut().filter(|p| p.kind == self.kind) {
                (p.done, p.total) = (done, total);
            }
        });
    }

    /// Records how the check ended, and returns that.
    pub fn finish(self, result: CheckResult, summary: String) -> CheckOutcome {
        let outcome = CheckOutcome {
            kind: self.kind,
            result,
            summary,
            finished_at: now_rfc3339(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        };
        self.checks.with(|s| match self.kind {
            CheckKind::Verify => s.last_verify = Some(outcome.clone()),
            CheckKind::Reconcile => s.last_reconcile = Some(outcome.clone()),
        });
        outcome
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.checks.with(|s| {
            if s.running.as_ref().is_some_and(|p| p.kind == self.kind) {
                s.running = None;
            }
        });
    }
}

/// How a reconcile report reads in one line.
pub fn reconcile_outcome(report: &ReconcileReport) -> (CheckResult, String) {
    if report.consistent {
        return (
            CheckResult::Consistent,
            format!(
                "{} records in {} files agree with the ledger",
                report.repo.records, report.repo.files
            ),
        );
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (report.unapplied.len(), "unapplied"),
        (report.orphaned.len(), "orphaned"),
        (report.rewritten.len(), "rewritten"),
        (report.balances.len(), "ledger figures differ"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if report.more_differences > 0 {
        parts.push(format!("{} more", report.more_differences));
    }
    (
        CheckResult::Differences,
        format!("{}; see `rpc-server reconcile`", parts.join(", ")),
    )
}

/// How a verify report reads in one line.
pub fn verify_outcome(report: &VerifyReport) -> (CheckResult, String) {
    if report.consistent {
        (
            CheckResult::Consistent,
            format!(
                "{} users checked: counters and balances agree with the rows",
                report.users_checked
            ),
        )
    } else {
        (CheckResult::Differences, report.summary())
    }
}
