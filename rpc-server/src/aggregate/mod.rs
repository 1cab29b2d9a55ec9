//! One aggregation pass: read what is new in the billing repo and apply it to
//! the ledger, exactly once.
//!
//! Change detection, cheapest first: branch head equal to the head of the last
//! clean pass → nothing to do; a node whose tree id is unchanged → skipped;
//! otherwise only files whose blob id differs from the one consumed are read.
//! Exactly-once does not rest on change detection: every record is deduplicated
//! by its idempotency key in the same transaction that debits the balance, so
//! force-pushes, re-reads and crashes at any point never apply a record twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use billing_api::otoml::DecodeLimits;
use billing_api::{
    AggregateSummary, CheckKind, CheckOutcome, CheckResult, NodeError, millis_to_rfc3339,
};
use tokio::sync::{Mutex, Semaphore, broadcast};
use tracing::{info, warn};

use crate::blocking::with_store;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::source::{NodeTree, Source};
use crate::store::{ApplyOutcome, Store};

pub mod checks;
mod events;
pub mod freshness;
mod health;
mod node;
mod read;
mod schedule;

pub use health::{health_of, overall_health};

/// How many nodes are read and decoded at once; the store applies them one
/// transaction at a time.
const NODE_CONCURRENCY: usize = 4;
/// Records gathered into one chunk, applied in one write transaction unless
/// a payment or registration waits (the store then ends the transaction at the
/// next group of records, see `store/gate.rs`). Larger chunks write each
/// touched user back less often; this bounds the decoded records in memory.
const CHUNK_RECORDS: usize = 16_384;
/// Decoded groups (of up to 256 records) queued between a node's decoder and its writer.
const QUEUE_ITEMS: usize = 16;
/// Bytes of file bodies all nodes of a pass hold at once (a larger file is read alone).
const READ_BUDGET_BYTES: u64 = 32 << 20;

/// A pass that could not run as a whole (the repo is unreachable, the store
/// failed). The summary is still recorded and returned for the operator.
#[derive(Debug, thiserror::Error)]
#[error("aggregation pass {} failed: {message}", summary.run_id)]
pub struct PassFailed {
    pub message: String,
    pub summary: Box<AggregateSummary>,
}

/// What `run_pass` returns; shared by every caller queued behind one pass.
pub type PassOutcome = Result<AggregateSummary, Arc<PassFailed>>;

/// Serializes passes over one store and one source. Cheap to clone.
#[derive(Clone)]
pub struct Aggregator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    source: Source,
    max_file_bytes: u64,
    limits: DecodeLimits,
    /// Bytes of file bodies in memory, across the nodes read at once.
    read_budget: Arc<Semaphore>,
    /// Held for the whole pass; remembers the last pass and when it started.
    gate: Mutex<Option<(Instant, PassOutcome)>>,
    runs: broadcast::Sender<AggregateSummary>,
    /// This server's name among the replicas sharing a ledger.
    replica: std::sync::RwLock<String>,
    /// The last `verify` and `reconcile` this server ran.
    checks: checks::Checks,
    metrics: Metrics,
    /// `--stale-after`, in milliseconds.
    stale_after_ms: std::sync::atomic::AtomicU64,
    /// `--webhook-url`s, whose deliveries `list_events` shows.
    webhooks: std::sync::RwLock<Vec<String>>,
    /// Whether this server's last pass failed as a whole (`aggregation.failed` fires once).
    last_failed: std::sync::atomic::AtomicBool,
    /// Wakes the webhook deliveries when events were written.
    events_written: tokio::sync::Notify,
    /// Records per write transaction of a node ([`CHUNK_RECORDS`] unless a test sets it).
    chunk_records: std::sync::atomic::AtomicUsize,
    /// The time stamped on what passes write.
    clock: Clock,
}

/// Ends the store's pass (releases the pass lock) however the pass ends.
struct PassLock(Store);

impl Drop for PassLock {
    fn drop(&mut self) {
        self.0.end_pass();
    }
}

impl Aggregator {
    /// An aggregator with the default record limits.
    pub fn new(store: Store, source: Source, max_file_bytes: u64) -> Self {
        Self::with_limits(store, source, max_file_bytes, DecodeLimits::default())
    }

    pub fn with_limits(
        store: Store,
        source: Source,
        max_file_bytes: u64,
        limits: DecodeLimits,
    ) -> Self {
        let (runs, _) = broadcast::channel(16);
        Self {
            inner: Arc::new(Inner {
                store,
                source,
                max_file_bytes,
                limits,
                read_budget: Arc::new(Semaphore::new(READ_BUDGET_BYTES as usize)),
                gate: Mutex::new(None),
                runs,
                replica: std::sync::RwLock::new(crate::config::default_replica_name()),
                checks: checks::Checks::default(),
                metrics: Metrics::new(),
                stale_after_ms: std::sync::atomic::AtomicU64::new(
                    freshness::DEFAULT_STALE_AFTER.as_millis() as u64,
                ),
                webhooks: std::sync::RwLock::new(Vec::new()),
                last_failed: std::sync::atomic::AtomicBool::new(false),
                events_written: tokio::sync::Notify::new(),
                chunk_records: std::sync::atomic::AtomicUsize::new(CHUNK_RECORDS),
                clock: Clock::system(),
            }),
        }
    }

    /// Stamps what passes write with `clock`'s time instead of the machine's
    /// (the simulator's clock). Call it before the aggregator is cloned.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_clock is called before the aggregator is cloned")
            .clock = clock;
        self
    }

    /// The time to stamp on what a pass writes, in unix milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Applies a node's records in write transactions of at most `records`
    /// (default 16,384), so that a test can put a crash between two of them.
    pub fn set_chunk_records(&self, records: usize) {
        self.inner
            .chunk_records
            .store(records.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// Names this server in `aggregator_state` and in the passes it records.
    pub fn set_replica_name(&self, name: &str) {
        *self
            .inner
            .replica
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name.to_string();
        self.inner.store.set_replica_name(name);
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// A node whose newest usage hour ended longer ago than this is stale.
    pub fn set_stale_after(&self, stale_after: std::time::Duration) {
        let ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .stale_after_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn stale_after(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.inner
                .stale_after_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    pub fn replica_name(&self) -> String {
        self.inner
            .replica
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Compares the ledger with the repo at its head (see `reconcile.rs`),
    /// while no pass runs: none of this server's, and on a shared ledger none
    /// of another replica's (it holds the pass lock meanwhile).
    pub async fn reconcile(&self) -> anyhow::Result<billing_api::ReconcileReport> {
        let running = self.inner.checks.start(CheckKind::Reconcile);
        let report = async {
            let _no_pass = self.inner.gate.lock().await;
            let store = &self.inner.store;
            with_store(store, |s| s.begin_pass()).await?;
            let _lock = PassLock(store.clone());
            crate::reconcile::reconcile(
                self,
                self.inner.max_file_bytes,
                self.inner.limits,
                &running,
            )
            .await
        }
        .await;
        let (result, summary) = match &report {
            Ok(report) => checks::reconcile_outcome(report),
            Err(e) => (CheckResult::Failed, format!("{e:#}")),
        };
        running.finish(result, summary);
        report
    }

    /// Checks the ledger against itself (full depth), read-only, beside
    /// passes: one read transaction sees a consistent ledger.
    pub async fn verify(&self) -> Result<CheckOutcome, crate::store::StoreError> {
        let running = self.inner.checks.start(CheckKind::Verify);
        let report = self
            .inner
            .store
            .on_blocking_thread(|s| s.verify(crate::store::Depth::Full))
            .await;
        let (result, summary) = match &report {
            Ok(report) => checks::verify_outcome(report),
            Err(e) => (CheckResult::Failed, e.to_string()),
        };
        let outcome = running.finish(result, summary);
        report.map(|_| outcome)
    }

    /// The checks this server ran, and one running now.
    pub fn checks(&self) -> checks::ChecksView {
        self.inner.checks.view()
    }

    /// Summaries of finished passes, as they finish.
    pub fn subscribe(&self) -> broadcast::Receiver<AggregateSummary> {
        self.inner.runs.subscribe()
    }

    /// Runs a pass and returns its summary. Passes never overlap; the summary
    /// returned is always of a pass that started after this call arrived, so
    /// callers queued behind a running pass share the next one.
    pub async fn run_pass(&self) -> PassOutcome {
        let arrived = Instant::now();
        let arrived_ms = self.now_ms();
        let mut last = self.inner.gate.lock().await;
        if let Some((started, outcome)) = last.as_ref()
            && *started > arrived
        {
            return outcome.clone();
        }
        let started = Instant::now();
        let outcome = match self.lock_pass(arrived_ms).await {
            // Another replica ran it, and counted it.
            Ok((_lock, Some(shared))) => Ok(shared),
            Ok((_lock, None)) => {
                let outcome = self.pass().await.map_err(Arc::new);
                self.after_own_pass(&outcome, started.elapsed()).await;
                outcome
            }
            Err(failed) => {
                let outcome = Err(Arc::new(failed));
                self.after_own_pass(&outcome, started.elapsed()).await;
                outcome
            }
        };
        *last = Some((started, outcome.clone()));
        drop(last);
        let summary = match &outcome {
            Ok(summary) => summary,
            Err(failed) => &*failed.summary,
        };
        let _ = self.inner.runs.send(summary.clone());
        outcome
    }

    /// Takes the store's pass lock, waiting while another server (a replica
    /// on the same PostgreSQL ledger) runs a pass. When that pass started
    /// after this call arrived, its summary answers the call too.
    async fn lock_pass(
        &self,
        arrived_ms: u64,
    ) -> Result<(PassLock, Option<AggregateSummary>), PassFailed> {
        let store = &self.inner.store;
        let failed = |message: String| {
            let now = millis_to_rfc3339(self.now_ms());
            PassFailed {
                summary: Box::new(AggregateSummary {
                    started_at: now.clone(),
                    finished_at: now,
                    errors: vec![NodeError {
                        node_name: None,
                        message: message.clone(),
                    }],
                    ..AggregateSummary::default()
                }),
                message,
            }
        };
        with_store(store, |s| s.begin_pass())
            .await
            .map_err(|e| failed(format!("cannot start a pass: {e}")))?;
        let lock = PassLock(store.clone());
        let me = self.replica_name();
        let last = with_store(store, |s| Ok((s.last_run_replica()?, s.last_run()?))).await;
        if let Ok((Some(replica), Some(run))) = last
            && replica != me
            && humantime::parse_rfc3339(&run.started_at).is_ok_and(|t| {
                t >= std::time::UNIX_EPOCH + std::time::Duration::from_millis(arrived_ms)
            })
        {
            info!(run_id = run.run_id, %replica, "sharing the pass another replica just ran");
            return Ok((lock, Some(run)));
        }
        Ok((lock, None))
    }

    async fn pass(&self) -> Result<AggregateSummary, PassFailed> {
        let store = &self.inner.store;
        let started_ms = self.now_ms();
        let clock = Instant::now();
        let mut summary = AggregateSummary {
            started_at: millis_to_rfc3339(started_ms),
            ..AggregateSummary::default()
        };
        let result = self.scan(&mut summary).await;
        summary.finished_at = millis_to_rfc3339(self.now_ms());
        // A clean head lets the next pass stop at "head unchanged"; only a pass
        // that left nothing to retry (no errors, no oversize file) sets it.
        let clean_head = match &result {
            Ok(true) if summary.errors.is_empty() => summary.head_commit.clone(),
            _ => None,
        };
        if let Err(message) = &result {
            summary.errors.push(NodeError {
                node_name: None,
                message: message.clone(),
            });
        }
        let recorded = {
            let summary = summary.clone();
            with_store(store, move |s| {
                s.record_run(&summary, clean_head.as_deref())
            })
            .await
        };
        match recorded {
            Ok(run_id) => summary.run_id = run_id,
            Err(e) => {
                // A storage failure keeps the summary in the store's memory; it is
                // recorded (with a run id) as soon as the ledger works again.
                let kept = if matches!(e, crate::store::StoreError::Io(_)) {
                    "; it is kept in memory and recorded once the ledger works again"
                } else {
                    ""
                };
                let message = format!("could not record the pass summary: {e}{kept}");
                summary.errors.push(NodeError {
                    node_name: None,
                    message: message.clone(),
                });
                return Err(PassFailed {
                    message,
                    summary: Box::new(summary),
                });
            }
        }
        let elapsed = clock.elapsed();
        match result {
            Ok(_) => {
                info!(
                    run_id = summary.run_id,
                    applied = summary.records_applied,
                    duplicate = summary.records_duplicate,
                    conflict = summary.records_conflict,
                    pending = summary.records_pending,
                    invalid = summary.records_invalid,
                    files = summary.files_read,
                    files_rejected = summary.files_rejected,
                    skipped = summary.nodes_skipped,
                    errors = summary.errors.len(),
                    cents_debited = summary.cents_debited,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "aggregation pass finished"
                );
                Ok(summary)
            }
            Err(message) => {
                warn!(
                    run_id = summary.run_id,
                    %message,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "aggregation pass failed"
                );
                Err(PassFailed {
                    message,
                    summary: Box::new(summary),
                })
            }
        }
    }

    /// The body of a pass: `Ok(true)` when it left nothing to check again,
    /// `Err` when it failed as a whole.
    async fn scan(&self, summary: &mut AggregateSummary) -> Result<bool, String> {
        let store = &self.inner.store;
        let source = &self.inner.source;
        // Safety net for held records whose user appeared (register_user applies them at once).
        let now = self.now_ms();
        let pending = with_store(store, move |s| s.apply_pending(now))
            .await
            .map_err(|e| format!("applying held records failed: {e}"))?;
        self.add_outcome(summary, &pending);

        let head = source
            .head()
            .await
            .map_err(|e| format!("reading {} failed: {e}", source.describe()))?;
        let Some(head) = head else {
            return Ok(true);
        };
        summary.head_commit = Some(head.clone());
        let clean_head = with_store(store, |s| s.clean_head())
            .await
            .map_err(|e| e.to_string())?;
        if clean_head.as_deref() == Some(head.as_str()) {
            let known = with_store(store, |s| s.nodes())
                .await
                .map_err(|e| e.to_string())?;
            summary.nodes_total = known.len() as u64;
            summary.nodes_skipped = summary.nodes_total;
            return Ok(true);
        }

        let nodes = source
            .nodes(&head)
            .await
            .map_err(|e| format!("listing nodes/ at {head} failed: {e}"))?;
        summary.nodes_total = nodes.len() as u64;
        // Node name -> tree id of the nodes whose last pass went through.
        let consumed_trees: HashMap<String, String> = with_store(store, |s| s.nodes())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|k| k.status == billing_api::NodeStatus::Ok)
            .filter_map(|k| Some((k.node_name, k.tree_id?)))
            .collect();
        let unchanged =
            |node: &NodeTree| consumed_trees.get(&node.node_name) == Some(&node.tree_id);

        let changed: Vec<NodeTree> = nodes.into_iter().filter(|n| !unchanged(n)).collect();
        summary.nodes_skipped += summary.nodes_total - changed.len() as u64;
        Ok(schedule::run_nodes(self, &head, changed, summary).await)
    }

    /// Adds a finished node to the summary; true when the node left nothing to check again.
    async fn fold(
        &self,
        summary: &mut AggregateSummary,
        done: Result<(String, Result<ApplyOutcome, String>), tokio::task::JoinError>,
    ) -> bool {
        let (node_name, outcome) = match done {
            Ok(done) => done,
            Err(e) => {
                summary.errors.push(NodeError {
                    node_name: None,
                    message: format!("a node task failed: {e}"),
                });
                return false;
            }
        };
        match outcome {
            Ok(outcome) => {
                self.add_outcome(summary, &outcome);
                // Oversize files are checked again next pass.
                outcome.files_too_large == 0 && outcome.files_too_many_records == 0
            }
            Err(message) => {
                warn!(node = %node_name, %message, "node halted for this pass");
                let name = node_name.clone();
                let msg = message.clone();
                let now = self.now_ms();
                if let Err(e) =
                    with_store(&self.inner.store, move |s| s.node_failed(&name, &msg, now)).await
                {
                    warn!(node = %node_name, error = %e, "could not record the node failure");
                }
                summary.errors.push(NodeError {
                    node_name: Some(node_name),
                    message,
                });
                false
            }
        }
    }

    /// Adds committed work to the pass summary and the metrics.
    fn add_outcome(&self, summary: &mut AggregateSummary, o: &ApplyOutcome) {
        self.inner.metrics.node_committed(o);
        add_to_summary(summary, o);
    }
}

fn add_to_summary(summary: &mut AggregateSummary, o: &ApplyOutcome) {
    summary.files_read += o.files_read;
    summary.files_rejected += o.files_rejected;
    summary.records_applied += o.applied;
    summary.records_duplicate += o.duplicate;
    summary.records_conflict += o.conflict;
    summary.records_pending += o.pending;
    summary.records_invalid += o.invalid;
    summary.cents_debited = summary.cents_debited.saturating_add(o.cents_debited);
}
