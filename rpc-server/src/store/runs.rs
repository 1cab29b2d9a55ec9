//! Per-node state and the record of aggregation passes.

use std::collections::HashMap;

use billing_api::{AggregateSummary, NodeStatus, Page};
use redb::{ReadableTable, WriteTransaction};

use super::codec::{self, META_KEY, MetaRow, NodeRow};
use super::{NodeRecord, Store, StoreError, clamp_limit, page, seq_cursor, tables};

fn node_record(name: &str, row: NodeRow) -> NodeRecord {
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

fn meta_load(txn: &WriteTransaction) -> Result<MetaRow, StoreError> {
    let table = txn.open_table(tables::META)?;
    match table.get(META_KEY)? {
        Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
        None => Ok(MetaRow::default()),
    }
}

fn meta_store(txn: &WriteTransaction, meta: &MetaRow) -> Result<(), StoreError> {
    txn.open_table(tables::META)?
        .insert(META_KEY, codec::to_bytes(meta)?.as_slice())?;
    Ok(())
}

impl Store {
    pub fn node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.read("read a node", |txn| {
            let nodes = txn.open_table(tables::NODES)?;
            match nodes.get(node_name)? {
                Some(bytes) => Ok(Some(node_record(
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
                out.push(node_record(
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

    /// Head commit of the last pass that had no errors.
    pub fn clean_head(&self) -> Result<Option<String>, StoreError> {
        self.read("read the clean head", |txn| {
            Ok(Self::meta_read(txn)?.clean_head)
        })
    }

    /// Stores a pass summary under a newly allocated run id (1, 2, 3…), and
    /// `clean_head` if given; returns the run id.
    pub fn record_run(
        &self,
        summary: &AggregateSummary,
        clean_head: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.write("record an aggregation run", |txn| {
            let mut meta = meta_load(txn)?;
            meta.run_seq += 1;
            let run_id = meta.run_seq;
            if let Some(head) = clean_head {
                meta.clean_head = Some(head.to_string());
            }
            let mut stored = summary.clone();
            stored.run_id = run_id;
            txn.open_table(tables::RUNS)?
                .insert(run_id, codec::to_bytes(&stored)?.as_slice())?;
            meta_store(txn, &meta)?;
            Ok(run_id)
        })
    }

    /// The run id the next `record_run` will allocate.
    pub fn next_run_id(&self) -> Result<u64, StoreError> {
        self.read("read the run counter", |txn| {
            Ok(Self::meta_read(txn)?.run_seq + 1)
        })
    }

    pub fn last_run(&self) -> Result<Option<AggregateSummary>, StoreError> {
        self.read("read the last run", |txn| {
            let runs = txn.open_table(tables::RUNS)?;
            match runs.last()? {
                Some((_, bytes)) => Ok(Some(codec::decode_owned(bytes.value(), "run")?)),
                None => Ok(None),
            }
        })
    }

    /// Aggregation runs, newest first; the cursor is a run id.
    pub fn list_runs(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AggregateSummary>, StoreError> {
        let limit = clamp_limit(limit);
        let before = seq_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list runs", |txn| {
            let runs = txn.open_table(tables::RUNS)?;
            let mut items = Vec::with_capacity(limit + 1);
            for entry in runs.range(..before)?.rev().take(limit + 1) {
                let (id, bytes) = entry?;
                let summary: AggregateSummary = codec::decode_owned(bytes.value(), "run")?;
                items.push((id.value().to_string(), summary));
            }
            Ok(page(items, limit))
        })
    }
}
