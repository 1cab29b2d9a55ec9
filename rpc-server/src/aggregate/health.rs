//! The aggregator's health, as `aggregator_state` and the dashboard show it.

use billing_api::{AggregateSummary, Health};

use crate::store::Store;

/// The ledger failing (storage error, counters that disagree with the rows)
/// → failing, whatever the last pass did; `GET /health` gives the reason.
pub fn overall_health(store: &Store, last_run: Option<&AggregateSummary>) -> Health {
    match store.problem() {
        Some(_) => Health::Failing,
        None => health_of(last_run),
    }
}

/// Health from the last pass: no pass yet → idle; whole-pass error → failing;
/// node errors → degraded.
pub fn health_of(last_run: Option<&AggregateSummary>) -> Health {
    match last_run {
        None => Health::Idle,
        Some(run) if run.errors.iter().any(|e| e.node_name.is_none()) => Health::Failing,
        Some(run) if !run.errors.is_empty() => Health::Degraded,
        Some(_) => Health::Ok,
    }
}
