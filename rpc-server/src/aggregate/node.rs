//! One node of a pass: its new files listed (the plan), then read and decoded
//! while the ledger applies them, a chunk of records per write transaction.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::warn;

use super::{Aggregator, QUEUE_ITEMS};
use crate::blocking::with_store;
use crate::source::{FileBody, FileEntry, NodeTree};
use crate::store::{ApplyOutcome, ChunkItem, FileOutcome, NodeChunk, NodeEnd};

/// A changed node and its files that are new since the last pass that read it.
pub(super) struct NodePlan {
    pub node: NodeTree,
    /// Files whose blob id differs from the one consumed for their path, sorted by path.
    pub new: Vec<FileEntry>,
}

/// Bodies already read for a node's well-named new files (see
/// [`super::read::well_named`]), in order, with the share of the read budget
/// they hold until decoded.
pub(super) struct Prefetched {
    pub bodies: Vec<FileBody>,
    pub budget: Arc<OwnedSemaphorePermit>,
}

impl Aggregator {
    /// Lists a changed node's files and keeps those that are new.
    pub(super) async fn plan_node(&self, node: NodeTree) -> Result<NodePlan, String> {
        let store = &self.inner.store;
        let source = &self.inner.source;
        let files = source
            .files(&node)
            .await
            .map_err(|e| format!("listing files failed: {e}"))?;
        let name = node.node_name.clone();
        let consumed = with_store(store, move |s| s.consumed_files(&name))
            .await
            .map_err(|e| e.to_string())?;
        let new: Vec<FileEntry> = files
            .into_iter()
            .filter(|f| consumed.get(&f.path) != Some(&f.blob_id))
            .collect();
        let new = source
            .fill_sizes(new)
            .await
            .map_err(|e| format!("listing files failed: {e}"))?;
        Ok(NodePlan { node, new })
    }

    /// Reads the new files of one node (unless `prefetched` holds their
    /// bodies) and applies them, a chunk of records per transaction, while the
    /// next chunk is read and decoded.
    pub(super) async fn apply_node(
        &self,
        plan: NodePlan,
        head: &str,
        prefetched: Option<Prefetched>,
    ) -> Result<ApplyOutcome, String> {
        let store = &self.inner.store;
        let NodePlan { node, new } = plan;
        let node = &node;
        let (tx, mut rx) = mpsc::channel(QUEUE_ITEMS);
        let mut producer = Some(tokio::spawn({
            let this = self.clone();
            let node_name = node.node_name.clone();
            let head = head.to_string();
            async move { this.read_files(node_name, head, new, prefetched, tx).await }
        }));
        let chunk_records = self
            .inner
            .chunk_records
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut outcome = ApplyOutcome::default();
        let mut items = Vec::new();
        let mut records = 0;
        let mut unread = false;
        loop {
            let next = rx.recv().await;
            let done = next.is_none();
            match next {
                Some(item) => {
                    records += item.records();
                    unread |= matches!(
                        item,
                        ChunkItem::Whole {
                            outcome: FileOutcome::TooLarge { .. }
                                | FileOutcome::TooManyRecords { .. },
                            ..
                        }
                    );
                    items.push(item);
                    if records < chunk_records {
                        continue;
                    }
                }
                None => {
                    // The reader stopped: a failed read halts the node before its end is written.
                    let reader = producer.take().expect("the reader ends once");
                    reader
                        .await
                        .map_err(|e| format!("reading files failed: {e}"))??;
                }
            }
            let chunk = NodeChunk {
                node_name: node.node_name.clone(),
                head_commit: head.to_string(),
                items: std::mem::take(&mut items),
                end: done.then(|| NodeEnd {
                    tree_id: (!unread).then(|| node.tree_id.clone()),
                }),
            };
            records = 0;
            let now = self.now_ms();
            let applied = with_store(store, move |s| s.apply_chunk(&chunk, now))
                .await
                .map_err(|e| format!("applying to the ledger failed: {e}"))?;
            // Balance events of this chunk are committed: deliver them now, not after the pass.
            self.events_may_be_new();
            for file in &applied.rejected_files {
                warn!(
                    node = %node.node_name,
                    file = %file.path,
                    reason = file.reason.as_str(),
                    detail = %file.detail,
                    commit = %head,
                    "usage file rejected"
                );
            }
            outcome.add(&applied);
            if done {
                return Ok(outcome);
            }
        }
    }
}
