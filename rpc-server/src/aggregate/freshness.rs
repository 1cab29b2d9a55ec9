//! Which nodes stopped reporting. A node is stale when the end of the newest
//! usage hour consumed from it is longer ago than `--stale-after`: its users
//! are about to be billed late.

use std::time::Duration;

use billing_api::NodeState;
use billing_api::otoml::{usage_hour_stamp, usage_hour_start_ms};

use crate::store::{NodeRecord, Store, StoreError};

/// `--stale-after` when not given.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3 * 3600);

const HOUR_MS: u64 = 3_600_000;

/// One node, with the newest hour it reported.
#[derive(Debug, Clone)]
pub struct NodeFreshness {
    pub record: NodeRecord,
    /// File name of the newest usage hour consumed (`usage_<YYYY-MM-DD-HH>.otoml`).
    pub newest_file: Option<String>,
    /// When that hour ended, in unix milliseconds.
    pub newest_hour_end_ms: Option<u64>,
    pub stale: bool,
}

impl NodeFreshness {
    /// How long ago the newest hour ended (0 for an hour not over yet).
    pub fn age(&self, now_ms: u64) -> Option<Duration> {
        self.newest_hour_end_ms
            .map(|end| Duration::from_millis(now_ms.saturating_sub(end)))
    }

    pub fn to_api(&self) -> NodeState {
        NodeState {
            newest_hour: self
                .newest_file
                .as_deref()
                .and_then(usage_hour_stamp)
                .map(str::to_string),
            stale: self.stale,
            ..self.record.to_api()
        }
    }
}

/// Every known node with its freshness at `now_ms`. Nodes that never
/// reported a real hour are not stale: there is nothing to be late against.
pub fn node_freshness(
    store: &Store,
    now_ms: u64,
    stale_after: Duration,
) -> Result<Vec<NodeFreshness>, StoreError> {
    let mut newest = store.newest_hours()?;
    let nodes = store.nodes()?;
    Ok(nodes
        .into_iter()
        .map(|record| {
            let newest_file = newest.remove(&record.node_name);
            let newest_hour_end_ms = newest_file
                .as_deref()
                .and_then(usage_hour_start_ms)
                .map(|start| start + HOUR_MS);
            let stale = newest_hour_end_ms.is_some_and(|end| {
                now_ms.saturating_sub(end)
                    > u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX)
            });
            NodeFreshness {
                record,
                newest_file,
                newest_hour_end_ms,
                stale,
            }
        })
        .collect())
}
