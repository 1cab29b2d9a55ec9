//! The built-in scheduler: one aggregation pass every interval, serialized with
//! `aggregate_now` calls by the aggregator itself.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::aggregate::Aggregator;

/// Runs a pass every `interval` until the task is dropped. The first pass
/// runs one interval after start (the server runs one at start itself).
pub async fn run(aggregator: Aggregator, interval: Duration) {
    info!(?interval, "scheduler started");
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // A pass longer than the interval delays the next one instead of bunching them.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = aggregator.run_pass().await {
            warn!(error = %e, "scheduled aggregation pass failed; the next one runs in {interval:?}");
        }
    }
}
