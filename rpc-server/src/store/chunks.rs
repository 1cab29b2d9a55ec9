//! Applying a node's new files in chunks: each chunk is one write transaction
//! of a bounded number of records, so a pass never holds the ledger's write
//! lock for long and never holds a whole large file in memory.
//!
//! Exactly-once does not depend on where chunks end: every record is
//! deduplicated by its key in the transaction that applies it. A file is marked
//! consumed by the chunk that holds its end, and the node's state (its tree id
//! and commit) by its last chunk, so a pass interrupted between chunks reads
//! the unfinished files again and finds their applied records to be duplicates.

use std::time::Instant;

use billing_api::RejectReason;
use billing_api::otoml::{DecodedGroup, MAX_NODE_NAME_BYTES};

use super::gate::PASS_MIN_WORK;
use super::ledger::{LedgerTxn, Provenance, Rows};
use super::{
    ApplyOutcome, FileOutcome, NodeUpdate, RedbStore, StoreError, check_identifier, redb_rows,
};

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

impl NodeChunk {
    /// Everything new of one node, and its new state, as one chunk.
    pub fn whole(update: NodeUpdate) -> NodeChunk {
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
        NodeChunk {
            node_name: update.node_name,
            head_commit: update.head_commit,
            items,
            end: Some(NodeEnd {
                tree_id: (!unread).then_some(update.tree_id),
            }),
        }
    }
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

impl RedbStore {
    /// Applies everything new of one node, and its new state, in one transaction.
    pub fn apply_node(&self, update: NodeUpdate, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        self.apply_chunk(&NodeChunk::whole(update), now_ms)
    }

    /// Applies one chunk of a node's new files: in one transaction, or in
    /// several when service writes (payments, registrations) wait, so they do
    /// not wait for the whole chunk (see `gate`).
    pub fn apply_chunk(&self, chunk: &NodeChunk, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        check_identifier("node_name", &chunk.node_name, MAX_NODE_NAME_BYTES)?;
        let op = format!(
            "apply usage of node `{}` at commit {}",
            chunk.node_name, chunk.head_commit
        );
        let mut outcome = ApplyOutcome::default();
        let mut from = 0;
        loop {
            let (part, next) = self.apply_part(&op, chunk, from, now_ms)?;
            outcome.add(&part);
            if next == chunk.items.len() {
                return Ok(outcome);
            }
            from = next;
        }
    }

    /// Applies `chunk.items[from..]` in one transaction, up to the first item
    /// boundary where a service write waits (after [`gate::PASS_MIN_WORK`]).
    /// Returns the outcome and where the next part starts.
    fn apply_part(
        &self,
        op: &str,
        chunk: &NodeChunk,
        from: usize,
        now_ms: u64,
    ) -> Result<(ApplyOutcome, usize), StoreError> {
        // Parts before a node's last are not flushed to disk on their own: the
        // node's last part (or any other durable commit) makes them durable. A
        // crash in between undoes them, and the node's state, written last, still
        // says to read its files again. This keeps commits cheap enough for small
        // parts, so other writers never wait long.
        self.write_pass(op, redb::Durability::None, |txn| {
            let started = Instant::now();
            let ledger = redb_rows::ledger(txn, now_ms)?;
            let (outcome, next, end) = apply_items(ledger, chunk, from, now_ms, || {
                started.elapsed() >= PASS_MIN_WORK && self.service_waiting()
            })?;
            if end {
                txn.set_durability(redb::Durability::Immediate)?;
            }
            Ok((outcome, next))
        })
    }
}

/// Applies `chunk.items[from..]` to `ledger`, stopping early at an item
/// boundary when `stop` says so (after at least one item), and writes the
/// node's state if the chunk's end was reached. Returns the outcome, where the
/// next part starts and whether the node's state was written.
pub(crate) fn apply_items<R: Rows>(
    mut ledger: LedgerTxn<R>,
    chunk: &NodeChunk,
    from: usize,
    now_ms: u64,
    stop: impl Fn() -> bool,
) -> Result<(ApplyOutcome, usize, bool), StoreError> {
    let node = chunk.node_name.as_str();
    let mut next = from;
    while let Some(item) = chunk.items.get(next) {
        if next > from && stop() {
            break;
        }
        next += 1;
        apply_item(&mut ledger, node, &chunk.head_commit, item)?;
    }
    let end = chunk.end.as_ref().filter(|_| next == chunk.items.len());
    if let Some(end) = end {
        ledger.set_node_state(node, |row| {
            row.tree_id = end.tree_id.clone();
            row.last_commit_sha = Some(chunk.head_commit.clone());
            row.last_run_at_ms = Some(now_ms);
            row.status = billing_api::NodeStatus::Ok;
            row.last_error = None;
        })?;
    }
    let outcome = ledger.finish()?;
    Ok((outcome, next, end.is_some()))
}

/// Applies one item of a chunk.
fn apply_item<R: Rows>(
    ledger: &mut LedgerTxn<R>,
    node: &str,
    commit: &str,
    item: &ChunkItem,
) -> Result<(), StoreError> {
    let (path, blob) = match item {
        ChunkItem::Whole { path, blob_id, .. }
        | ChunkItem::Records { path, blob_id, .. }
        | ChunkItem::FileEnd { path, blob_id } => (path, blob_id),
    };
    let from = Provenance {
        node,
        commit,
        path,
        blob,
    };
    match item {
        ChunkItem::Whole { outcome, .. } => {
            whole_file(ledger, from, outcome)?;
            if consumed_whole(outcome) {
                ledger.rows().put_consumed_file(node, path, blob)?;
            }
        }
        ChunkItem::Records { group, .. } => {
            for (i, record) in group.records.iter().enumerate() {
                let index = u32::try_from(group.first_index + i as u64).unwrap_or(u32::MAX);
                match record {
                    Ok(rec) => ledger.record(from, index, rec)?,
                    Err(invalid) => ledger.invalid(from, invalid)?,
                }
            }
        }
        ChunkItem::FileEnd { .. } => {
            ledger.outcome.files_read += 1;
            ledger.rows().put_consumed_file(node, path, blob)?;
            if ledger.meta.counts.rejected_items > 0 {
                ledger.resolve_file(from, RejectReason::TooLarge)?;
                ledger.resolve_file(from, RejectReason::TooManyRecords)?;
            }
        }
    }
    Ok(())
}

/// Whether a file rejected as a whole is marked consumed (read again only when
/// its content changes) rather than checked again at every pass.
fn consumed_whole(outcome: &FileOutcome) -> bool {
    !matches!(
        outcome,
        FileOutcome::TooLarge { .. } | FileOutcome::TooManyRecords { .. }
    )
}

fn whole_file<R: Rows>(
    ledger: &mut LedgerTxn<R>,
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
        FileOutcome::LfsPointer => (
            RejectReason::LfsPointer,
            format!(
                "{path} (blob {blob}) is a Git LFS pointer, not usage data: the repo stores this \
                 path with Git LFS. None of its records were applied; on the node, take \
                 nodes/**/*.otoml out of the LFS patterns in .gitattributes and commit the file \
                 again as a plain file; it will be re-read when its content changes"
            ),
        ),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};

    use billing_api::otoml::DecodedGroup;

    use super::*;
    use crate::store::Store;
    use crate::store::tests::{pay, rec, register};

    /// A chunk of `groups` groups of 256 one-cent records of `sid`, ending the node.
    fn big_chunk(sid: &str, groups: usize) -> NodeChunk {
        let items = (0..groups)
            .map(|g| ChunkItem::Records {
                path: "nodes/n1/usage_2026-01-01-00.otoml".into(),
                blob_id: "b1".into(),
                group: DecodedGroup {
                    first_index: (g * 256) as u64,
                    records: (0..256)
                        .map(|i| Ok(rec(&format!("k-{g}-{i}"), sid, "n1", 1)))
                        .collect(),
                },
            })
            .chain([ChunkItem::FileEnd {
                path: "nodes/n1/usage_2026-01-01-00.otoml".into(),
                blob_id: "b1".into(),
            }])
            .collect();
        NodeChunk {
            node_name: "n1".into(),
            head_commit: "c1".into(),
            items,
            end: Some(NodeEnd {
                tree_id: Some("t1".into()),
            }),
        }
    }

    #[test]
    fn a_payment_does_not_wait_for_a_whole_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
        register(&store, "heavy");
        register(&store, "payer");
        let groups = 40;
        let chunk = big_chunk("heavy", groups);
        let started = Arc::new(Barrier::new(2));
        let finished = Arc::new(AtomicBool::new(false));
        let pass = {
            let (store, started, finished) = (store.clone(), started.clone(), finished.clone());
            std::thread::spawn(move || {
                started.wait();
                let outcome = store.apply_chunk(&chunk, 3_000).unwrap();
                finished.store(true, Ordering::SeqCst);
                outcome
            })
        };
        started.wait();
        std::thread::sleep(std::time::Duration::from_millis(20));
        pay(&store, "p1", "payer", 500).unwrap();
        // One transaction for the whole chunk would make the payment wait for all of it.
        let chunk_done_first = finished.load(Ordering::SeqCst);
        let outcome = pass.join().unwrap();
        assert!(
            !chunk_done_first,
            "the payment waited until the whole chunk was applied"
        );
        // Split or not, the chunk applies every record once and ends the node.
        assert_eq!(outcome.applied, (groups * 256) as u64);
        assert_eq!(outcome.files_read, 1);
        assert_eq!(
            store.get_user("heavy").unwrap().credit_balance_cents,
            -((groups * 256) as i64)
        );
        assert_eq!(store.get_user("payer").unwrap().credit_balance_cents, 500);
        let files = store.consumed_files("n1").unwrap();
        assert_eq!(
            files
                .get("nodes/n1/usage_2026-01-01-00.otoml")
                .map(String::as_str),
            Some("b1")
        );
        assert_eq!(
            store
                .apply_chunk(&big_chunk("heavy", groups), 4_000)
                .unwrap()
                .duplicate,
            (groups * 256) as u64
        );
    }
}
