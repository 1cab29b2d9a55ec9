//! `reconcile`: the ledger compared with the billing repo at its head. It
//! changes nothing; fixing a difference stays an explicit operator act.
//!
//! 1. Every usage file at head is read and decoded as a pass would, and each
//!    record is looked up in the ledger (a batch of files per snapshot):
//!    applied from this file with the same values (fine), applied with other
//!    values (**rewritten**), held or rejected (fine), or none of these
//!    (**unapplied**: lost, or committed after the last pass).
//! 2. Every applied record is listed: one not seen in its own file at head is
//!    **orphaned** (its file or record is gone, or history was rewritten).
//! 3. A full `verify` adds up every user's payments and applied records
//!    against the stored balance, in one snapshot.
//!
//! Memory: a 128-bit digest of each record seen applied in its own file (about
//! 32 bytes a record in the set), the decoding of one batch of files per node
//! read at once, and the listed differences (at most [`LIST_CAP`] each).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use billing_api::otoml::{DecodeLimits, check_usage_hour, decode_groups};
use billing_api::{LedgerFinding, ReconcileReport, RecordAtHead, RejectedItem, Rewritten};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aggregate::Aggregator;
use crate::aggregate::checks::Running;
use crate::source::{FileBody, FileEntry, NodeTree};
use crate::store::{Depth, KeyState, Store, StoreError, all_pages};

/// Differences listed per kind; the rest are counted in `more_differences`.
pub const LIST_CAP: usize = 1000;
/// Files read from the source at a time.
const READ_BATCH_FILES: usize = 64;
/// Items per page when listing the ledger.
const PAGE: u32 = 1000;
/// Nodes read, decoded and looked up at once.
const NODE_CONCURRENCY: usize = 3;

/// What the rejected items say: whole files, and single records.
#[derive(Default)]
struct Rejections {
    /// (node, path, blob) of files rejected whole, or with rejections summed up.
    files: HashSet<(String, String, String)>,
    keys: HashSet<String>,
}

impl Rejections {
    fn of(items: Vec<RejectedItem>) -> Self {
        let mut r = Rejections::default();
        for item in items {
            if item.record_index.is_none() || item.record_count.is_some() {
                r.files
                    .insert((item.node_name, item.file_path, item.blob_id));
            } else if let Some(key) = item.idempotency_key {
                r.keys.insert(key);
            }
        }
        r
    }
}

/// What one batch of files found.
#[derive(Default)]
struct BatchFindings {
    unapplied: Vec<RecordAtHead>,
    rewritten: Vec<Rewritten>,
    /// Keys found applied from their own file (as [`key_id`]s).
    seen: Vec<u128>,
    files: u64,
    files_unread: u64,
    records: u64,
    cents: i128,
    held: u64,
    rejected: u64,
}

impl BatchFindings {
    fn add(&mut self, other: BatchFindings) {
        self.unapplied
            .extend(other.unapplied.into_iter().take(LIST_CAP));
        self.rewritten
            .extend(other.rewritten.into_iter().take(LIST_CAP));
        self.seen.extend(other.seen);
        self.files += other.files;
        self.files_unread += other.files_unread;
        self.records += other.records;
        self.cents += other.cents;
        self.held += other.held;
        self.rejected += other.rejected;
    }
}

/// Compares the ledger of `aggregator` with its repo at head.
pub async fn reconcile(
    aggregator: &Aggregator,
    max_file_bytes: u64,
    limits: DecodeLimits,
    running: &Running<'_>,
) -> anyhow::Result<ReconcileReport> {
    let started = Instant::now();
    let (source, store) = (aggregator.source(), aggregator.store());
    let mut report = ReconcileReport::default();
    let rejected = store
        .on_blocking_thread(|s| all_pages(|c| s.list_rejected(c, PAGE)))
        .await?;
    let rejections = Arc::new(Rejections::of(rejected));
    let head = source
        .head()
        .await
        .map_err(|e| anyhow::anyhow!("reading {} failed: {e}", source.describe()))?;
    report.head_commit = head.clone();
    let mut seen: HashSet<u128> = HashSet::new();
    let mut more = 0u64;
    if let Some(head) = &head {
        let nodes = source
            .nodes(head)
            .await
            .map_err(|e| anyhow::anyhow!("listing nodes/ at {head} failed: {e}"))?;
        let total = nodes.len() as u64;
        let mut done = 0u64;
        running.progress(0, total);
        let permits = Arc::new(Semaphore::new(NODE_CONCURRENCY));
        let mut tasks = JoinSet::new();
        let mut fold = |found: BatchFindings, report: &mut ReconcileReport| {
            report.repo.files += found.files;
            report.repo.files_unread += found.files_unread;
            report.repo.records += found.records;
            report.repo.cents += found.cents;
            report.ledger.held_records += found.held;
            report.ledger.rejected_records += found.rejected;
            more += extend_capped(&mut report.unapplied, found.unapplied);
            more += extend_capped(&mut report.rewritten, found.rewritten);
            seen.extend(found.seen);
            done += 1;
            running.progress(done, total);
        };
        for node in nodes {
            let permit = permits.clone().acquire_owned().await?;
            let (aggregator, head, rejections) =
                (aggregator.clone(), head.clone(), rejections.clone());
            tasks.spawn(async move {
                let found = node_findings(
                    &aggregator,
                    &head,
                    &node,
                    max_file_bytes,
                    limits,
                    rejections,
                )
                .await;
                drop(permit);
                found
            });
            while let Some(found) = tasks.try_join_next() {
                fold(found??, &mut report);
            }
        }
        while let Some(found) = tasks.join_next().await {
            fold(found??, &mut report);
        }
    }

    // Nodes finish in any order; the report lists in one.
    let at_head = |r: &RecordAtHead| {
        (
            r.node_name.clone(),
            r.file_path.clone(),
            r.idempotency_key.clone(),
        )
    };
    report.unapplied.sort_by_key(at_head);
    report.rewritten.sort_by_key(|w| at_head(&w.at_head));
    tracing::debug!(elapsed = ?started.elapsed(), "reconcile: the repo is read");
    // Every applied record, oldest pages last; one not seen in its own file is orphaned.
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.clone();
        let page = store
            .on_blocking_thread(move |s| s.list_consumed(None, after.as_deref(), PAGE))
            .await?;
        for record in page.items {
            report.ledger.applied_records += 1;
            report.ledger.applied_cents += i128::from(record.cost_cents);
            if !seen.contains(&key_id(&record.idempotency_key)) {
                if report.orphaned.len() < LIST_CAP {
                    report.orphaned.push(record);
                } else {
                    more += 1;
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    drop(seen);
    tracing::debug!(elapsed = ?started.elapsed(), "reconcile: the applied records are listed");

    let verify = store.on_blocking_thread(|s| s.verify(Depth::Full)).await?;
    report.ledger.users = verify.recounted.total_users;
    report.balances = verify
        .findings
        .into_iter()
        .map(|f| LedgerFinding {
            what: f.what,
            stored: f.stored,
            actual: f.actual,
        })
        .collect();
    more += verify.more_findings;
    report.more_differences = more;
    report.consistent = report.unapplied.is_empty()
        && report.rewritten.is_empty()
        && report.orphaned.is_empty()
        && report.balances.is_empty()
        && more == 0;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// `rpc-server reconcile`: on the ledger itself when no server holds it,
/// else through the server that does (its `reconcile` RPC).
pub async fn command(
    settings: &crate::config::LedgerSettings,
    secret: impl FnOnce() -> anyhow::Result<crate::secret::AdminSecret>,
) -> anyhow::Result<ReconcileReport> {
    match crate::server::open_aggregator_async(settings).await {
        Ok(aggregator) => aggregator.reconcile().await,
        Err(e) if matches!(e.downcast_ref(), Some(StoreError::Locked { .. })) => {
            let server =
                crate::server_file::read(&settings.data_dir).map_err(anyhow::Error::msg)?;
            let result = crate::server_file::call(&server, &secret()?, "reconcile").await?;
            Ok(serde_json::from_value(result)?)
        }
        Err(e) => Err(e),
    }
}

/// The text `rpc-server reconcile` prints.
pub fn text(r: &ReconcileReport) -> String {
    let mut out = format!(
        "reconcile at {}: {}\n  repo: {} files ({} not compared), {} records, {} cents\n  \
         ledger: {} users, {} applied records, {} cents; of the repo's records {} held, {} rejected\n",
        r.head_commit.as_deref().unwrap_or("(no commit)"),
        if r.consistent {
            "consistent"
        } else {
            "DIFFERENCES"
        },
        r.repo.files,
        r.repo.files_unread,
        r.repo.records,
        r.repo.cents,
        r.ledger.users,
        r.ledger.applied_records,
        r.ledger.applied_cents,
        r.ledger.held_records,
        r.ledger.rejected_records,
    );
    for u in &r.unapplied {
        out += &format!(
            "  unapplied: {} in {}/{} (user {}, {} cents) is neither applied, held nor rejected\n",
            u.idempotency_key, u.node_name, u.file_path, u.user_sid, u.cost_cents
        );
    }
    for o in &r.orphaned {
        out += &format!(
            "  orphaned: {} (user {}, {} cents), applied from {}/{} at commit {}, is not in that file at head\n",
            o.idempotency_key, o.user_sid, o.cost_cents, o.node_name, o.file_path, o.commit_sha
        );
    }
    for w in &r.rewritten {
        out += &format!(
            "  rewritten: {} applied as user {}, {} cents (from {}/{} at commit {}); the file at head says user {}, {} cents\n",
            w.applied.idempotency_key,
            w.applied.user_sid,
            w.applied.cost_cents,
            w.applied.node_name,
            w.applied.file_path,
            w.applied.commit_sha,
            w.at_head.user_sid,
            w.at_head.cost_cents
        );
    }
    for b in &r.balances {
        out += &format!(
            "  ledger: {}: stored {}, rows say {}\n",
            b.what, b.stored, b.actual
        );
    }
    if r.more_differences > 0 {
        out += &format!(
            "  … and {} more differences (see --json)\n",
            r.more_differences
        );
    }
    out
}

/// Reads, decodes and looks up every usage file of `node` at `head`.
async fn node_findings(
    aggregator: &Aggregator,
    head: &str,
    node: &NodeTree,
    max_file_bytes: u64,
    limits: DecodeLimits,
    rejections: Arc<Rejections>,
) -> anyhow::Result<BatchFindings> {
    let (source, store) = (aggregator.source(), aggregator.store());
    let listing = |e| anyhow::anyhow!("listing the files of node {} failed: {e}", node.node_name);
    let files = source.files(node).await.map_err(listing)?;
    let files = source.fill_sizes(files).await.map_err(listing)?;
    let mut found = BatchFindings::default();
    for batch in files.chunks(READ_BATCH_FILES) {
        let bodies = source
            .read(head, batch, max_file_bytes)
            .await
            .map_err(|e| anyhow::anyhow!("reading files of node {} failed: {e}", node.node_name))?;
        let (node_name, batch, rejections) =
            (node.node_name.clone(), batch.to_vec(), rejections.clone());
        let part = store
            .on_blocking_thread(move |s| {
                compare_files(s, &node_name, batch, bodies, &limits, &rejections)
            })
            .await?;
        found.add(part);
    }
    Ok(found)
}

/// A 128-bit digest of an idempotency key: the set of keys seen at head holds
/// these instead of the keys, 16 bytes a record instead of about 60. Two keys
/// of a million collide with a probability near 10^-27.
fn key_id(key: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        // Fixed keys: the same digest in every run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// Appends up to the cap; returns how many did not fit.
fn extend_capped<T>(list: &mut Vec<T>, items: Vec<T>) -> u64 {
    let room = LIST_CAP.saturating_sub(list.len());
    let over = items.len().saturating_sub(room) as u64;
    list.extend(items.into_iter().take(room));
    over
}

/// Decodes a batch of files of `node` and looks their records up in one snapshot.
fn compare_files(
    store: &Store,
    node: &str,
    batch: Vec<FileEntry>,
    bodies: Vec<FileBody>,
    limits: &DecodeLimits,
    rejections: &Rejections,
) -> Result<BatchFindings, StoreError> {
    let mut found = BatchFindings::default();
    // (file index, record) of every well-formed record of the batch.
    let mut records = Vec::new();
    for (i, (entry, body)) in batch.iter().zip(bodies).enumerate() {
        found.files += 1;
        let name = entry.path.rsplit('/').next().unwrap_or_default();
        let FileBody::Data(bytes) = body else {
            found.files_unread += 1;
            continue;
        };
        if check_usage_hour(name).is_err() {
            found.files_unread += 1;
            continue;
        }
        let decoded = decode_groups(&bytes, node, limits, &mut |group| {
            records.extend(group.records.into_iter().flatten().map(|r| (i, r)));
            ControlFlow::Continue(())
        });
        if decoded.is_err() {
            // Rejected as a whole by the aggregator; its records were never applied.
            records.retain(|(file, _)| *file != i);
            found.files_unread += 1;
        }
    }
    let keys: Vec<&str> = records
        .iter()
        .map(|(_, r)| r.idempotency_key.as_str())
        .collect();
    let states = store.key_states(&keys)?;
    // A key twice in the batch: the second is a duplicate or conflict of the first.
    let mut first_file: HashMap<&str, usize> = HashMap::new();
    for ((i, rec), state) in records.iter().zip(states) {
        let entry = &batch[*i];
        found.records += 1;
        found.cents += i128::from(rec.cost_cents);
        let at_head = || RecordAtHead {
            node_name: node.to_string(),
            file_path: entry.path.clone(),
            idempotency_key: rec.idempotency_key.clone(),
            user_sid: rec.user_sid.clone(),
            cost_cents: rec.cost_cents,
        };
        let rejected = || {
            rejections.keys.contains(&rec.idempotency_key)
                || rejections.files.contains(&(
                    node.to_string(),
                    entry.path.clone(),
                    entry.blob_id.clone(),
                ))
        };
        let first = *first_file.entry(rec.idempotency_key.as_str()).or_insert(*i);
        match state {
            KeyState::Applied(applied) => {
                let same = applied.user_sid == rec.user_sid && applied.cost_cents == rec.cost_cents;
                let own_file = applied.node_name == node && applied.file_path == entry.path;
                if own_file && first == *i {
                    // Its file still has it: not orphaned, rewritten at most.
                    found.seen.push(key_id(&rec.idempotency_key));
                    if !same {
                        found.rewritten.push(Rewritten {
                            applied,
                            at_head: at_head(),
                        });
                    }
                } else if !same && !rejected() {
                    // Applied from elsewhere with other values: a conflict the
                    // aggregator rejects and lists; unlisted, it is unaccounted for.
                    found.unapplied.push(at_head());
                } else if !same {
                    found.rejected += 1;
                }
            }
            KeyState::Held => found.held += 1,
            KeyState::Unknown if rejected() => found.rejected += 1,
            KeyState::Unknown => found.unapplied.push(at_head()),
        }
    }
    Ok(found)
}
