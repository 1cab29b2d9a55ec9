//! `R` and `V`: a ledger check (`reconcile`, `verify`) run on the server from
//! the dashboard. The call returns when the check ends; meanwhile the
//! aggregator state is polled every second, so the Aggregator view shows the
//! server's progress.

use billing_api::CheckKind;

use super::{App, Fetched, Popup, RpcCall};

/// How often the aggregator state is fetched while a check runs, for its progress.
pub const CHECK_POLL_MILLIS: u64 = 1_000;

/// A check this dashboard asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCheck {
    pub kind: CheckKind,
    pub started_millis: u64,
}

impl App {
    /// Asks the server for a check, unless one asked for here still runs.
    pub(super) fn run_check(&mut self, kind: CheckKind) -> Vec<RpcCall> {
        if self.check.is_some() || self.popup.is_some() {
            return vec![];
        }
        self.check = Some(LocalCheck {
            kind,
            started_millis: self.now_millis,
        });
        self.check_error = None;
        self.last_check_poll_millis = self.now_millis;
        vec![RpcCall::Check(kind)]
    }

    /// While a check runs: the aggregator state every second, for its progress.
    pub(super) fn poll_check_progress(&mut self) -> Vec<RpcCall> {
        let running = self.check.is_some()
            || self
                .aggregator_state
                .data
                .as_ref()
                .is_some_and(|s| s.check_running.is_some());
        if !running
            || self.aggregator_state.loading
            || self.now_millis.saturating_sub(self.last_check_poll_millis) < CHECK_POLL_MILLIS
        {
            return vec![];
        }
        self.last_check_poll_millis = self.now_millis;
        self.aggregator_state.loading = true;
        vec![RpcCall::AggregatorState]
    }

    pub(super) fn check_returned(&mut self, kind: CheckKind, result: Fetched<()>) -> Vec<RpcCall> {
        self.note_result(&result);
        if self.check.is_some_and(|c| c.kind == kind) {
            self.check = None;
        }
        if let Err(err) = result {
            // A timeout leaves the check running on the server: its outcome
            // still shows here when it ends.
            self.check_error = Some(format!("{}: {}", kind.name(), err.message));
        }
        // The outcome is in the aggregator state: fetch it now (and the rest of the view).
        if self.popup == Some(Popup::Help) {
            return vec![];
        }
        self.refresh()
    }
}
