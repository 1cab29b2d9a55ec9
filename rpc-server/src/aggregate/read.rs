//! Reading a node's new files for a pass: from the source in batches within
//! the pass's read budget (or as read already with other nodes' files),
//! decoded on low-priority threads into the queue that the node's writer
//! applies from.

use std::ops::ControlFlow;

use billing_api::otoml::{BatchError, DecodeLimits, check_file, check_usage_hour, decode_groups};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::error;

use super::node::Prefetched;
use super::{Aggregator, READ_BUDGET_BYTES};
use crate::blocking::background;
use crate::source::{FileBody, FileEntry};
use crate::store::{ChunkItem, FileOutcome};

/// Most bytes and files asked of the source in one read.
pub(super) const READ_BATCH_BYTES: u64 = 8 << 20;
const READ_BATCH_FILES: usize = 64;
/// A file up to this size is decoded whole before any of it applies; a larger
/// one is checked whole first (one more walk over it), then decoded group by group.
const SMALL_FILE_BYTES: usize = 1 << 20;

impl Aggregator {
    /// Reads `files` (listed at commit `head`) in batches within the read
    /// budget and decodes them into `tx`, in order. Files whose name is not a
    /// real hour are rejected unread. `prefetched` holds the bodies of the
    /// well-named files when they were read already, with other nodes' files.
    pub(super) async fn read_files(
        &self,
        node: String,
        head: String,
        files: Vec<FileEntry>,
        prefetched: Option<Prefetched>,
        tx: mpsc::Sender<ChunkItem>,
    ) -> Result<(), String> {
        let max = self.inner.max_file_bytes;
        let (files, misnamed): (Vec<_>, Vec<_>) = files.into_iter().partition(well_named);
        for file in misnamed {
            let name = file.path.rsplit('/').next().unwrap_or_default();
            let reason = check_usage_hour(name).err().unwrap_or_default();
            let item = ChunkItem::Whole {
                path: file.path,
                blob_id: file.blob_id,
                outcome: FileOutcome::InvalidName(reason),
            };
            if tx.send(item).await.is_err() {
                return Ok(());
            }
        }
        if let Some(Prefetched { bodies, budget }) = prefetched {
            if bodies.len() != files.len() {
                return Err(format!(
                    "reading files failed: {} bodies were read for {} files; the next pass reads them again",
                    bodies.len(),
                    files.len()
                ));
            }
            self.decode(&node, files, bodies, &tx).await?;
            drop(budget);
            return Ok(());
        }
        let weight = |f: &FileEntry| f.size.filter(|&s| s <= max).unwrap_or(0);
        let mut rest = files.as_slice();
        while !rest.is_empty() {
            let mut n = 0;
            let mut bytes = 0;
            for f in rest.iter().take(READ_BATCH_FILES) {
                if n > 0 && bytes + weight(f) > READ_BATCH_BYTES {
                    break;
                }
                bytes += weight(f);
                n += 1;
            }
            let (batch, later) = rest.split_at(n);
            rest = later;
            let held = self.hold_read_budget(bytes).await;
            let bodies = self
                .inner
                .source
                .read(&head, batch, max)
                .await
                .map_err(|e| format!("reading files failed: {e}"))?;
            let open = self.decode(&node, batch.to_vec(), bodies, &tx).await?;
            drop(held);
            if !open {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Waits until `bytes` of file bodies (at most the whole budget) fit in
    /// the pass's read budget, and holds them until the permit is dropped.
    pub(super) async fn hold_read_budget(&self, bytes: u64) -> OwnedSemaphorePermit {
        let permits = u32::try_from(bytes.min(READ_BUDGET_BYTES)).unwrap_or(u32::MAX);
        let budget = Arc::clone(&self.inner.read_budget);
        let Ok(held) = budget.acquire_many_owned(permits).await else {
            unreachable!("the read budget is never closed");
        };
        held
    }

    /// Decodes `files` with their `bodies` into `tx` on a low-priority thread;
    /// false when the receiver is gone.
    async fn decode(
        &self,
        node: &str,
        files: Vec<FileEntry>,
        bodies: Vec<FileBody>,
        tx: &mpsc::Sender<ChunkItem>,
    ) -> Result<bool, String> {
        let max = self.inner.max_file_bytes;
        let (node, limits, tx) = (node.to_string(), self.inner.limits, tx.clone());
        background("decode", move || {
            files
                .into_iter()
                .zip(bodies)
                .all(|(entry, body)| decode_into(entry, body, &node, max, &limits, &tx))
        })
        .await
        .map_err(|e| format!("decoding failed: {e}"))
    }
}

/// Whether a file is named after a real hour; the others are rejected unread.
pub(super) fn well_named(file: &FileEntry) -> bool {
    file.path
        .rsplit('/')
        .next()
        .is_some_and(|name| check_usage_hour(name).is_ok())
}

/// Decodes one file into `tx`: its records in groups, then its end; or its
/// rejection as a whole. Nothing of a file that cannot be read as a whole is
/// sent. False when the receiver is gone.
fn decode_into(
    entry: FileEntry,
    body: FileBody,
    node: &str,
    max: u64,
    limits: &DecodeLimits,
    tx: &mpsc::Sender<ChunkItem>,
) -> bool {
    let FileEntry { path, blob_id, .. } = entry;
    let send = |item: ChunkItem| tx.blocking_send(item).is_ok();
    let whole = |outcome: FileOutcome| {
        send(ChunkItem::Whole {
            path: path.clone(),
            blob_id: blob_id.clone(),
            outcome,
        })
    };
    let records = |group| ChunkItem::Records {
        path: path.clone(),
        blob_id: blob_id.clone(),
        group,
    };
    let rejected = |e: BatchError| match e {
        BatchError::TooManyRecords { limit } => FileOutcome::TooManyRecords { limit },
        BatchError::LfsPointer => FileOutcome::LfsPointer,
        e => FileOutcome::Unparseable(e.to_string()),
    };
    let bytes = match body {
        FileBody::TooLarge { size } => return whole(FileOutcome::TooLarge { size, limit: max }),
        FileBody::Data(bytes) => bytes,
    };
    if bytes.len() > SMALL_FILE_BYTES {
        if let Err(e) = check_file(&bytes, limits) {
            return whole(rejected(e));
        }
        let mut open = true;
        let decoded = decode_groups(&bytes, node, limits, &mut |group| {
            open = send(records(group));
            if open {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
        if let Err(e) = decoded {
            // `check_file` walked the same text with the same rules; never reached.
            error!(file = %path, error = %e, "a checked file failed to decode; it is read again next pass");
            return open;
        }
        if !open {
            return false;
        }
    } else {
        let mut groups = Vec::new();
        let decoded = decode_groups(&bytes, node, limits, &mut |group| {
            groups.push(group);
            ControlFlow::Continue(())
        });
        if let Err(e) = decoded {
            return whole(rejected(e));
        }
        drop(bytes);
        for group in groups {
            if !send(records(group)) {
                return false;
            }
        }
    }
    send(ChunkItem::FileEnd { path, blob_id })
}
