//! The changed nodes of a pass: listed a few at once (their plans), then
//! applied a few at once. On a source that reads many files in one request (a
//! forge serving batch blob reads), the new files of nodes that have only a
//! few are read together first, so that the steady state of one new file per
//! node costs one blob request per 50 nodes instead of one per node.

use std::sync::Arc;

use billing_api::AggregateSummary;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::debug;

use super::node::{NodePlan, Prefetched};
use super::read::{READ_BATCH_BYTES, well_named};
use super::{Aggregator, NODE_CONCURRENCY};
use crate::source::NodeTree;
use crate::store::ApplyOutcome;

/// Nodes listed at once, ahead of the ones being applied.
const PLAN_CONCURRENCY: usize = 8;
/// Most files read together for several nodes: one batch call of the forge.
const GROUP_FILES: usize = 50;
/// A node with more new files than this reads them on its own (in its own batches).
const GROUP_NODE_FILES: usize = 16;

type Applied = (String, Result<ApplyOutcome, String>);

/// Runs the changed nodes of one pass at `head` and folds their outcomes into
/// `summary`; true when every node left nothing to check again.
pub(super) async fn run_nodes(
    this: &Aggregator,
    head: &str,
    changed: Vec<NodeTree>,
    summary: &mut AggregateSummary,
) -> bool {
    // Asking a forge whether it reads in batches costs a request: only when it could help.
    let grouped = changed.len() > 1 && this.inner.source.reads_in_batches().await;
    let mut nodes = Nodes {
        this,
        head,
        summary,
        applying: JoinSet::new(),
        permits: Arc::new(Semaphore::new(NODE_CONCURRENCY)),
        all_consumed: true,
    };
    let mut group = Group::default();
    let mut waiting = changed.into_iter();
    let mut planning = JoinSet::new();
    loop {
        while planning.len() < PLAN_CONCURRENCY {
            let Some(node) = waiting.next() else { break };
            let this = this.clone();
            planning.spawn(async move {
                let name = node.node_name.clone();
                (name, this.plan_node(node).await)
            });
        }
        let Some(planned) = planning.join_next().await else {
            break;
        };
        match planned {
            Ok((_, Ok(plan))) => match Share::of(&plan, this.inner.max_file_bytes) {
                Some(share) if grouped => {
                    if !group.fits(share) {
                        let full = std::mem::take(&mut group);
                        nodes.read_together(full).await;
                    }
                    group.add(plan, share);
                }
                _ => nodes.apply(plan, None).await,
            },
            Ok((name, Err(message))) => nodes.fold(Ok((name, Err(message)))).await,
            Err(e) => nodes.fold(Err(e)).await,
        }
    }
    nodes.read_together(group).await;
    while let Some(done) = nodes.applying.join_next().await {
        nodes.fold(done).await;
    }
    nodes.all_consumed
}

/// Nodes whose new files are read in one `read` call.
#[derive(Default)]
struct Group {
    /// Each node with its share of the group's files.
    plans: Vec<(NodePlan, Share)>,
    files: usize,
    bytes: u64,
}

/// What a node adds to a group: its well-named new files and their bytes.
#[derive(Clone, Copy)]
struct Share {
    files: usize,
    bytes: u64,
}

impl Share {
    /// The node's share when it can join a group: a few new files, every size
    /// known from the listing (a file over `max` is not read and weighs nothing).
    fn of(plan: &NodePlan, max: u64) -> Option<Share> {
        let mut share = Share { files: 0, bytes: 0 };
        for file in plan.new.iter().filter(|f| well_named(f)) {
            let size = file.size?;
            share.files += 1;
            share.bytes += if size <= max { size } else { 0 };
        }
        let small =
            (1..=GROUP_NODE_FILES).contains(&share.files) && share.bytes <= READ_BATCH_BYTES;
        small.then_some(share)
    }
}

impl Group {
    fn fits(&self, share: Share) -> bool {
        self.files + share.files <= GROUP_FILES && self.bytes + share.bytes <= READ_BATCH_BYTES
    }

    fn add(&mut self, plan: NodePlan, share: Share) {
        self.plans.push((plan, share));
        self.files += share.files;
        self.bytes += share.bytes;
    }
}

/// The nodes of a pass being applied, and what they added up to so far.
struct Nodes<'a> {
    this: &'a Aggregator,
    head: &'a str,
    summary: &'a mut AggregateSummary,
    applying: JoinSet<Applied>,
    permits: Arc<Semaphore>,
    all_consumed: bool,
}

impl Nodes<'_> {
    /// Reads the group's files in one call, then applies each node from its
    /// bodies. When the read fails, each node reads its own files instead, so
    /// that a failure halts only the node it belongs to and names its file.
    async fn read_together(&mut self, group: Group) {
        if group.plans.len() < 2 {
            for (plan, _) in group.plans {
                self.apply(plan, None).await;
            }
            return;
        }
        let inner = &self.this.inner;
        let files: Vec<_> = group
            .plans
            .iter()
            .flat_map(|(p, _)| p.new.iter().filter(|f| well_named(f)).cloned())
            .collect();
        let budget = Arc::new(self.this.hold_read_budget(group.bytes).await);
        let read = inner
            .source
            .read(self.head, &files, inner.max_file_bytes)
            .await;
        let bodies = match read {
            Ok(bodies) if bodies.len() == files.len() => Some(bodies),
            Ok(bodies) => {
                debug!(
                    files = files.len(),
                    bodies = bodies.len(),
                    "a read together returned too few bodies; each node reads its own"
                );
                None
            }
            Err(e) => {
                debug!(files = files.len(), error = %e, "reading several nodes' files together failed; each node reads its own");
                None
            }
        };
        let Some(bodies) = bodies else {
            drop(budget);
            for (plan, _) in group.plans {
                self.apply(plan, None).await;
            }
            return;
        };
        let mut bodies = bodies.into_iter();
        for (plan, share) in group.plans {
            let prefetched = Prefetched {
                bodies: bodies.by_ref().take(share.files).collect(),
                budget: Arc::clone(&budget),
            };
            self.apply(plan, Some(prefetched)).await;
        }
    }

    /// Applies one node once fewer than [`NODE_CONCURRENCY`] are being applied,
    /// folding the ones that finished meanwhile.
    async fn apply(&mut self, plan: NodePlan, prefetched: Option<Prefetched>) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            unreachable!("the node permits are never closed");
        };
        let this = self.this.clone();
        let head = self.head.to_string();
        self.applying.spawn(async move {
            let name = plan.node.node_name.clone();
            let outcome = this.apply_node(plan, &head, prefetched).await;
            drop(permit);
            (name, outcome)
        });
        // Fold finished nodes as we go so memory stays bounded.
        while let Some(done) = self.applying.try_join_next() {
            self.fold(done).await;
        }
    }

    async fn fold(&mut self, done: Result<Applied, tokio::task::JoinError>) {
        self.all_consumed &= self.this.fold(self.summary, done).await;
    }
}
