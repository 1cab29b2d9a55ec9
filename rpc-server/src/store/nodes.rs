//! Per-node state: what the aggregator remembers about each node (its tree id,
//! last commit, totals and status) and the files of it already consumed.

use std::collections::HashMap;

use billing_api::NodeStatus;
use redb::ReadableTable;

use super::codec::{self, NodeRow};
use super::ledger::{LedgerTxn, Rows};
use super::{RedbStore, StoreError, tables};

/// Consumed files looked at, newest name first, for a node's newest real
/// hour (names that are not hours sort among them; they are skipped).
pub(crate) const NEWEST_HOUR_LOOKBACK: usize = 64;

/// The file name of a consumed path when it names a real usage hour.
pub(crate) fn newest_hour_name(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    billing_api::otoml::usage_hour_start_ms(name).map(|_| name)
}

/// What the aggregator remembers about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub node_name: String,
    /// Id of the node's subtree at `last_commit_sha`; unchanged means nothing to read.
    pub tree_id: Option<String>,
    pub last_commit_sha: Option<String>,
    pub last_run_at_ms: Option<u64>,
    pub records_consumed_total: u64,
    pub status: billing_api::NodeStatus,
    pub last_error: Option<String>,
}

impl NodeRecord {
    pub fn to_api(&self) -> billing_api::NodeState {
        billing_api::NodeState {
            node_name: self.node_name.clone(),
            last_commit_sha: self.last_commit_sha.clone(),
            last_run_at: self.last_run_at_ms.map(billing_api::millis_to_rfc3339),
            records_consumed_total: self.records_consumed_total,
            status: self.status,
            last_error: self.last_error.clone(),
            newest_hour: None,
            stale: false,
        }
    }
}

impl NodeRecord {
    pub(crate) fn of(name: &str, row: NodeRow) -> NodeRecord {
        NodeRecord {
            node_name: name.to_string(),
            tree_id: row.tree_id,
            last_commit_sha: row.last_commit_sha,
            last_run_at_ms: row.last_run_at_ms,
            records_consumed_total: row.records_consumed_total,
            status: row.status,
            last_error: row.last_error,
        }
    }
}

impl<R: Rows> LedgerTxn<R> {
    /// Writes the node's state after a pass (its total is added in `finish`).
    pub fn set_node_state(
        &mut self,
        node: &str,
        update: impl FnOnce(&mut NodeRow),
    ) -> Result<(), StoreError> {
        let mut row = self.rows.node(node)?.unwrap_or_default();
        update(&mut row);
        self.rows.put_node(node, &row)?;
        Ok(())
    }
}

impl RedbStore {
    pub fn node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.read("read a node", |txn| {
            let nodes = txn.open_table(tables::NODES)?;
            match nodes.get(node_name)? {
                Some(bytes) => Ok(Some(NodeRecord::of(
                    node_name,
                    codec::decode_owned(bytes.value(), "node")?,
                ))),
                None => Ok(None),
            }
        })
    }

    /// Every known node, sorted by name.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read("list nodes", |txn| {
            let nodes = txn.open_table(tables::NODES)?;
            let mut out = Vec::new();
            for entry in nodes.range::<&str>(..)? {
                let (name, bytes) = entry?;
                out.push(NodeRecord::of(
                    name.value(),
                    codec::decode_owned(bytes.value(), "node")?,
                ));
            }
            Ok(out)
        })
    }

    /// Path -> blob id of every file of the node already consumed.
    pub fn consumed_files(&self, node_name: &str) -> Result<HashMap<String, String>, StoreError> {
        self.read("list consumed files", |txn| {
            let files = txn.open_table(tables::CONSUMED_FILES)?;
            let mut out = HashMap::new();
            for entry in files.range((node_name, "")..)? {
                let (k, v) = entry?;
                let (node, path) = k.value();
                if node != node_name {
                    break;
                }
                out.insert(path.to_string(), v.value().to_string());
            }
            Ok(out)
        })
    }

    /// Node -> the newest usage hour consumed from it (file name), for every
    /// node that has one: a reverse range read per node, not a scan.
    pub fn newest_hours(&self) -> Result<HashMap<String, String>, StoreError> {
        self.read("read the newest hour of every node", |txn| {
            let nodes = txn.open_table(tables::NODES)?;
            let files = txn.open_table(tables::CONSUMED_FILES)?;
            let mut out = HashMap::new();
            for entry in nodes.range::<&str>(..)? {
                let (name, _) = entry?;
                let name = name.value();
                let newest = files
                    .range((name, "")..=(name, "\u{10FFFF}"))?
                    .rev()
                    .take(NEWEST_HOUR_LOOKBACK);
                for file in newest {
                    let (key, _) = file?;
                    if let Some(hour) = newest_hour_name(key.value().1) {
                        out.insert(name.to_string(), hour.to_string());
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Records that a pass failed on this node; its consumed position is kept.
    pub fn node_failed(&self, node_name: &str, error: &str, now_ms: u64) -> Result<(), StoreError> {
        self.write(
            &format!("record the failure of node `{node_name}`"),
            |txn| {
                let mut nodes = txn.open_table(tables::NODES)?;
                let mut row: NodeRow = match nodes.get(node_name)? {
                    Some(bytes) => codec::decode_owned(bytes.value(), "node")?,
                    None => NodeRow::default(),
                };
                row.status = NodeStatus::Error;
                row.last_error = Some(error.to_string());
                row.last_run_at_ms = Some(now_ms);
                nodes.insert(node_name, codec::to_bytes(&row)?.as_slice())?;
                Ok(())
            },
        )
    }
}
