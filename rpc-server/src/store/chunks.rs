//! Applying a node's new files in chunks: each chunk is one write transaction
//! of a bounded number of records, so a pass never holds the ledger's write
//! lock for long and never holds a whole large file in memory.
//!
//! Exactly-once does not depend on where chunks end: every record is
//! deduplicated by its key in the transaction that applies it. A file is marked
//! consumed by the chunk that holds its end, and the node's state (its tree id
//! and commit) by its last chunk, so a pass interrupted between chunks reads
//! the unfinished files again and finds their applied records to be duplicates.

use billing_api::RejectReason;
use billing_api::otoml::{DecodedGroup, MAX_NODE_NAME_BYTES};

use super::ledger::{Ledger, Provenance};
use super::{FileOutcome, NodeOutcome, NodeUpdate, Store, StoreError, check_id, tables};

pub use super::tally::REJECTION_SAMPLE;

/// Part of one node's new files, applied in one transaction.
#[derive(Debug, Clone)]
pub struct NodeChunk {
    pub node_name: String,
    pub head_commit: String,
    pub items: Vec<ChunkItem>,
    /// Set on the node's last chunk, which writes the node's new state.
    pub end: Option<NodeEnd>,
}

/// The end of a node's pass.
#[derive(Debug, Clone)]
pub struct NodeEnd {
    /// The node's tree id, when every file of it was read (no oversize file
    /// and no file over the record limit, which are checked again next pass).
    pub tree_id: Option<String>,
}

/// One piece of a file.
#[derive(Debug, Clone)]
pub enum ChunkItem {
    /// A file taken or rejected as a whole (a decoded file comes as records).
    Whole {
        path: String,
        blob_id: String,
        outcome: FileOutcome,
    },
    /// Consecutive records of a decoded file.
    Records {
        path: String,
        blob_id: String,
        group: DecodedGroup,
    },
    /// The end of a decoded file: it is now consumed.
    FileEnd { path: String, blob_id: String },
}

impl ChunkItem {
    /// Records this item carries, to size chunks.
    pub fn records(&self) -> usize {
        match self {
            ChunkItem::Records { group, .. } => group.records.len(),
            _ => 0,
        }
    }
}

impl Store {
    /// Applies everything new of one node, and its new state, in one transaction.
    pub fn apply_node(&self, update: NodeUpdate, now_ms: u64) -> Result<NodeOutcome, StoreError> {
        let mut items = Vec::with_capacity(update.files.len() * 2);
        for file in update.files {
            match file.outcome {
                FileOutcome::Decoded(records) => {
                    items.push(ChunkItem::Records {
                        path: file.path.clone(),
                        blob_id: file.blob_id.clone(),
                        group: DecodedGroup {
                            first_index: 0,
                            records,
                        },
                    });
                    items.push(ChunkItem::FileEnd {
                        path: file.path,
                        blob_id: file.blob_id,
                    });
                }
                outcome => items.push(ChunkItem::Whole {
                    path: file.path,
                    blob_id: file.blob_id,
                    outcome,
                }),
            }
        }
        let unread = items.iter().any(|item| {
            matches!(
                item,
                ChunkItem::Whole {
                    outcome: FileOutcome::TooLarge { .. } | FileOutcome::TooManyRecords { .. },
                    ..
                }
            )
        });
        let chunk = NodeChunk {
            node_name: update.node_name,
            head_commit: update.head_commit,
            items,
            end: Some(NodeEnd {
                tree_id: (!unread).then_some(update.tree_id),
            }),
        };
        self.apply_chunk(&chunk, now_ms)
    }

    /// Applies one chunk of a node's new files in one transaction.
    pub fn apply_chunk(&self, chunk: &NodeChunk, now_ms: u64) -> Result<NodeOutcome, StoreError> {
        check_id("node_name", &chunk.node_name, MAX_NODE_NAME_BYTES)?;
        let op = format!(
            "apply usage of node `{}` at commit {}",
            chunk.node_name, chunk.head_commit
        );
        // Chunks before a node's last are not flushed to disk on their own: the
        // node's last chunk (or any other durable commit) makes them durable. A
        // crash in between undoes them, and the node's state, written last, still
        // says to read its files again. This keeps commits cheap enough for small
        // chunks, so other writers never wait long.
        let durability = match chunk.end {
            Some(_) => redb::Durability::Immediate,
            None => redb::Durability::None,
        };
        self.write_with(&op, durability, |txn| {
            let mut ledger = Ledger::open(txn, now_ms)?;
            let mut files = txn.open_table(tables::CONSUMED_FILES)?;
            let node = chunk.node_name.as_str();
            for item in &chunk.items {
                let (path, blob) = match item {
                    ChunkItem::Whole { path, blob_id, .. }
                    | ChunkItem::Records { path, blob_id, .. }
                    | ChunkItem::FileEnd { path, blob_id } => (path, blob_id),
                };
                let from = Provenance {
                    node,
                    commit: &chunk.head_commit,
                    path,
                    blob,
                };
                match item {
                    ChunkItem::Whole { outcome, .. } => whole_file(&mut ledger, from, outcome)?,
                    ChunkItem::Records { group, .. } => {
                        for (i, record) in group.records.iter().enumerate() {
                            let index =
                                u32::try_from(group.first_index + i as u64).unwrap_or(u32::MAX);
                            match record {
                                Ok(rec) => ledger.record(from, index, rec)?,
                                Err(invalid) => ledger.invalid(from, invalid)?,
                            }
                        }
                    }
                    ChunkItem::FileEnd { .. } => {
                        ledger.outcome.files_read += 1;
                        files.insert((node, path.as_str()), blob.as_str())?;
                        if ledger.meta.counts.rejected_items > 0 {
                            ledger.resolve_file(from, RejectReason::TooLarge)?;
                            ledger.resolve_file(from, RejectReason::TooManyRecords)?;
                        }
                    }
                }
                if let ChunkItem::Whole { outcome, .. } = item
                    && consumed_whole(outcome)
                {
                    files.insert((node, path.as_str()), blob.as_str())?;
                }
            }
            if let Some(end) = &chunk.end {
                ledger.set_node_state(node, |row| {
                    row.tree_id = end.tree_id.clone();
                    row.last_commit_sha = Some(chunk.head_commit.clone());
                    row.last_run_at_ms = Some(now_ms);
                    row.status = billing_api::NodeStatus::Ok;
                    row.last_error = None;
                })?;
            }
            ledger.finish()
        })
    }
}

/// Whether a file rejected as a whole is marked consumed (read again only when
/// its content changes) rather than checked again at every pass.
fn consumed_whole(outcome: &FileOutcome) -> bool {
    !matches!(
        outcome,
        FileOutcome::TooLarge { .. } | FileOutcome::TooManyRecords { .. }
    )
}

fn whole_file(
    ledger: &mut Ledger<'_>,
    from: Provenance<'_>,
    outcome: &FileOutcome,
) -> Result<(), StoreError> {
    let (path, blob) = (from.path, from.blob);
    let (reason, detail) = match outcome {
        FileOutcome::Decoded(_) => {
            return Err(StoreError::InvalidInput(format!(
                "{path}: decoded records come as a records item, not a whole file"
            )));
        }
        FileOutcome::Unparseable(error) => (
            RejectReason::Unparseable,
            format!(
                "{path} (blob {blob}) could not be decoded: {error}. None of its records were \
                 applied; fix the file on the node and commit it again; it will be re-read when \
                 its content changes"
            ),
        ),
        FileOutcome::TooLarge { size, limit } => {
            ledger.outcome.files_too_large += 1;
            (
                RejectReason::TooLarge,
                format!(
                    "{path} (blob {blob}) is {size} bytes, over the limit of {limit} bytes, and \
                     was not read; split it into smaller files on the node, or raise \
                     --max-file-bytes: it is checked again at every pass until it fits"
                ),
            )
        }
        FileOutcome::TooManyRecords { limit } => {
            ledger.outcome.files_too_many_records += 1;
            (
                RejectReason::TooManyRecords,
                format!(
                    "{path} (blob {blob}) holds more than {limit} records, the per-file limit, \
                     and none of them was applied; split it into smaller files on the node, or \
                     raise --max-records-per-file: it is checked again at every pass until it fits"
                ),
            )
        }
        FileOutcome::InvalidName(error) => (
            RejectReason::InvalidName,
            format!(
                "{error}; the file was not read. Usage files are named \
                 usage_<YYYY-MM-DD-HH>.otoml after a real hour: rename it on the node"
            ),
        ),
    };
    ledger.reject_file(from, reason, detail)
}
