//! Copying a whole ledger between backends (`rpc-server migrate-ledger`): a
//! redb file into an empty PostgreSQL database, or a PostgreSQL ledger into a
//! new redb file.
//!
//! Every row is copied as stored, ids and sequence numbers included, so
//! cursors, later ids and exactly-once carry over. The source is read in one
//! snapshot and sent to the target in batches of [`BATCH`] rows; the target is
//! written in one transaction (multi-row `unnest` inserts on PostgreSQL), so a
//! failed copy leaves it as empty as it was. Before committing, the row count
//! of every table must be equal in the source, in what was sent and in the
//! target; after, the target must pass `verify` (full).
//!
//! The outbox (alert levels and users' own thresholds, events, webhook
//! deliveries and cursors, and the default threshold) is copied like the
//! rest, by `migrate/outbox.rs` for both ends.
//!
//! What is not copied as stored is derived: redb's per-user index of applied
//! records (`USER_CONSUMED`), which PostgreSQL does without, and the indexes
//! `list_users` walks by balance and consumed: writing redb rebuilds them
//! from the rows (`migrate/redb_side.rs`); PostgreSQL keeps its own. PostgreSQL is
//! read in `migrate/pg_read.rs` and written in `migrate/pg_write.rs`.

mod outbox;
mod pg_read;
mod pg_write;
mod redb_side;

use std::path::Path;
use std::time::Instant;

use redb::ReadableDatabase;

use super::alerts::{AlertRow, EventRow};
use super::codec::{MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, RunRow, SourceRow};
use super::codec::{TallyRow, UserRow};
use super::runs::RunTotals;
use super::{Depth, PgStore, RedbStore, Store, StoreError, StoreOptions, VerifyReport, postgres};

/// Rows sent to the target at a time.
const BATCH: usize = 10_000;

/// How a ledger is opened for a migration: checked by a full `verify` instead
/// of the quick check at open.
const UNCHECKED: StoreOptions = StoreOptions {
    init: false,
    keep_runs: super::DEFAULT_KEEP_RUNS,
    check: false,
};

/// What a migration copied.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// The source: a path, or `postgres://user@host:port/db` (never a password).
    pub from: String,
    pub to: String,
    /// Rows copied per table (PostgreSQL's table names), equal on both sides.
    pub tables: Vec<(&'static str, u64)>,
    /// The full check of the target after the copy.
    pub verify: VerifyReport,
    pub elapsed_ms: u64,
}

/// Row counts of the copied tables, named as in PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    users: u64,
    payments: u64,
    consumed_sources: u64,
    consumed: u64,
    pending: u64,
    rejected: u64,
    /// Rejected items that carry a record count (file summaries).
    rejected_counts: u64,
    rejected_fingerprints: u64,
    file_tallies: u64,
    nodes: u64,
    consumed_files: u64,
    runs: u64,
    alerts: u64,
    events: u64,
    deliveries: u64,
    webhook_cursors: u64,
}

impl Counts {
    fn tables(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("users", self.users),
            ("payments", self.payments),
            ("consumed_sources", self.consumed_sources),
            ("consumed", self.consumed),
            ("pending", self.pending),
            ("rejected", self.rejected),
            ("rejected_counts", self.rejected_counts),
            ("rejected_fingerprints", self.rejected_fingerprints),
            ("file_tallies", self.file_tallies),
            ("nodes", self.nodes),
            ("consumed_files", self.consumed_files),
            ("runs", self.runs),
            ("alerts", self.alerts),
            ("events", self.events),
            ("deliveries", self.deliveries),
            ("webhook_cursors", self.webhook_cursors),
        ]
    }

    /// The tables holding rows, as `3 users, 1 runs`; empty when none does.
    fn nonzero(&self) -> String {
        self.tables()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a reader sent, and what its snapshot of the source holds.
struct Sent {
    copied: Counts,
    source: Counts,
    /// The default low-balance threshold sent (`None`: none stored).
    low_balance_default: Option<i64>,
}

/// One applied record, as both backends key it.
struct AppliedRow {
    key: String,
    seq: u64,
    user_sid: String,
    cost_cents: i64,
    source: u64,
    resource: Option<String>,
}

/// `(node, file path, blob id)`: the key of a file tally.
type FileKey = (String, String, String);

/// Where a reader sends the rows of one table, a batch at a time, in the order
/// of the methods (parents before the rows that name them).
trait Sink {
    fn meta(&mut self, meta: &MetaRow, totals: &RunTotals) -> Result<(), StoreError>;
    fn users(&mut self, rows: &[(String, UserRow)]) -> Result<(), StoreError>;
    fn payments(&mut self, rows: &[(String, PaymentRow)]) -> Result<(), StoreError>;
    fn sources(&mut self, rows: &[(u64, SourceRow)]) -> Result<(), StoreError>;
    /// Applied records; a PostgreSQL reader sends them grouped by user, in
    /// ascending seq per user (redb's per-user index is built from that order).
    fn consumed(&mut self, rows: &[AppliedRow]) -> Result<(), StoreError>;
    fn pending(&mut self, rows: &[(String, PendingRow)]) -> Result<(), StoreError>;
    /// Rejected items with the record count of a file summary.
    fn rejected(&mut self, rows: &[(u64, RejectedRow, Option<u64>)]) -> Result<(), StoreError>;
    fn fingerprints(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError>;
    fn tallies(&mut self, rows: &[(FileKey, TallyRow)]) -> Result<(), StoreError>;
    fn nodes(&mut self, rows: &[(String, NodeRow)]) -> Result<(), StoreError>;
    /// `(node, path, blob id)` of every consumed file.
    fn consumed_files(&mut self, rows: &[FileKey]) -> Result<(), StoreError>;
    /// Runs, with the replica that ran them (PostgreSQL only).
    fn runs(&mut self, rows: &[(RunRow, Option<String>)]) -> Result<(), StoreError>;
    /// Alert levels and users' own thresholds, by subject (`user/<sid>`, `node/<name>`).
    fn alerts(&mut self, rows: &[(String, AlertRow)]) -> Result<(), StoreError>;
    /// Events by seq, in ascending seq.
    fn events(&mut self, rows: &[(u64, EventRow)]) -> Result<(), StoreError>;
    /// Delivery states of events (all sent before) per webhook URL.
    fn deliveries(&mut self, rows: &[outbox::Delivery]) -> Result<(), StoreError>;
    /// `(URL, seq)`: the first event not yet delivered to the URL or given up.
    fn webhook_cursors(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError>;
    /// The default low-balance threshold; `None`: none stored (the target stores none either).
    fn low_balance_default(&mut self, cents: Option<i64>) -> Result<(), StoreError>;
}

/// Rows of one table on their way to a sink, sent every [`BATCH`] rows.
struct Batch<T> {
    rows: Vec<T>,
    sent: u64,
}

impl<T> Batch<T> {
    fn new() -> Self {
        Batch {
            rows: Vec::with_capacity(BATCH),
            sent: 0,
        }
    }

    fn push(
        &mut self,
        row: T,
        send: impl FnOnce(&[T]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.rows.push(row);
        if self.rows.len() >= BATCH {
            self.flush(send)?;
        }
        Ok(())
    }

    /// Sends the rest; returns how many rows were sent in all.
    fn finish(
        mut self,
        send: impl FnOnce(&[T]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        self.flush(send)?;
        Ok(self.sent)
    }

    fn flush(
        &mut self,
        send: impl FnOnce(&[T]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if !self.rows.is_empty() {
            send(&self.rows)?;
            self.sent += self.rows.len() as u64;
            self.rows.clear();
        }
        Ok(())
    }
}

/// Whether a ledger without rows has handed out ids already.
fn seqs_used(meta: &MetaRow) -> bool {
    let seqs = [
        meta.consumed_seq,
        meta.payment_seq,
        meta.rejected_seq,
        meta.run_seq,
        meta.user_seq,
        meta.source_seq,
    ];
    seqs.iter().any(|&s| s > 0) || meta.clean_head.is_some()
}

/// Checks that the source, what was sent and the target hold as many rows per
/// table; the error names every table that differs.
fn compare(sent: &Sent, target: &Counts, to: &str) -> Result<(), StoreError> {
    let rows = sent
        .source
        .tables()
        .into_iter()
        .zip(sent.copied.tables())
        .zip(target.tables());
    let differ: Vec<String> = rows
        .filter(|(((_, s), (_, c)), (_, t))| s != c || c != t)
        .map(|(((table, s), (_, c)), (_, t))| {
            format!("{table}: source {s}, copied {c}, target {t}")
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(StoreError::Storage(format!(
        "the copy into {to} does not hold the source's rows ({}); nothing was written. The \
         source changed during the copy or does not match its indexes: stop every server using \
         it, run `rpc-server verify` on it, and try again",
        differ.join("; ")
    )))
}

/// A failed copy: the target's transaction was rolled back.
fn rolled_back(op: &str, e: StoreError) -> StoreError {
    let note = "nothing was written, the target is as empty as before; fix the cause and run \
                the copy again";
    match e {
        StoreError::Storage(m) if !m.contains(note) => {
            StoreError::Storage(format!("{op}: {m}; {note}"))
        }
        StoreError::Io(m) if !m.contains(note) => StoreError::Io(format!("{op}: {m}; {note}")),
        other => other,
    }
}

/// Refuses a source that `verify` finds inconsistent: its copy would be too.
fn check_source(store: &Store, from: &str) -> Result<(), StoreError> {
    let report = store.verify(Depth::Full)?;
    if report.consistent {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "the source ledger {from} is inconsistent ({}); nothing was copied. Run `rpc-server \
         verify` on it (and `verify --repair` for counters that differ from the rows) first",
        report.summary()
    )))
}

fn report(
    from: String,
    to: String,
    copied: Counts,
    verify: VerifyReport,
    clock: Instant,
    undo: &str,
) -> Result<MigrationReport, StoreError> {
    if !verify.consistent {
        return Err(StoreError::Storage(format!(
            "the copy in {to} does not pass `verify` after the copy ({}); do not use it: {undo}, \
             and report this as a bug with the output of `rpc-server verify` on the source",
            verify.summary()
        )));
    }
    Ok(MigrationReport {
        from,
        to,
        tables: copied.tables(),
        verify,
        elapsed_ms: clock.elapsed().as_millis() as u64,
    })
}

/// Copies the redb ledger at `path` into the PostgreSQL database at `url`,
/// which must hold no ledger data (its schema is created if missing).
/// `password` is used when the URL has none.
pub fn redb_to_postgres(
    path: &Path,
    url: &str,
    password: Option<&str>,
) -> Result<MigrationReport, StoreError> {
    let clock = Instant::now();
    let from = path.display().to_string();
    if !path.is_file() {
        return Err(StoreError::InvalidInput(format!(
            "there is no ledger at {from}; pass the data dir of the aggregator (the directory \
             holding ledger.redb) with --from-data-dir"
        )));
    }
    let config = postgres::parse_url(url, password)?;
    let to = postgres::describe(&config);
    let source = RedbStore::open_with(path, UNCHECKED)?;
    check_source(&Store::Redb(source.clone()), &from)?;
    let target = PgStore::connect(config.clone(), UNCHECKED)?;
    let db = source.db()?;
    let snapshot = db
        .begin_read()
        .map_err(|e| source.storage("read the ledger", e))?;
    let copied = pg_write::copy_into(&config, &to, |sink| redb_side::read(&snapshot, sink))?;
    drop(snapshot);
    let verify = target.verify(Depth::Full)?;
    report(
        from,
        to,
        copied,
        verify,
        clock,
        "empty that database (drop and create it again) before another copy",
    )
}

/// Copies the PostgreSQL ledger at `url` into a new redb ledger at `path`
/// (refused if a ledger there holds data). On failure a file this call
/// created is removed again.
pub fn postgres_to_redb(
    url: &str,
    password: Option<&str>,
    path: &Path,
) -> Result<MigrationReport, StoreError> {
    let existed = path.exists();
    let result = copy_to_redb(url, password, path, existed);
    if result.is_err() && !existed {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn copy_to_redb(
    url: &str,
    password: Option<&str>,
    path: &Path,
    existed: bool,
) -> Result<MigrationReport, StoreError> {
    let clock = Instant::now();
    let config = postgres::parse_url(url, password)?;
    let from = postgres::describe(&config);
    let to = path.display().to_string();
    let target = redb_side::open_target(path)?;
    let mut client = pg_read::connect(&config, &from)?;
    pg_read::check_has_ledger(&mut client, &from)?;
    let source = PgStore::connect(config, UNCHECKED)?;
    check_source(&Store::Postgres(source), &from)?;

    let op = format!("read the ledger {from}");
    let mut snapshot = client
        .build_transaction()
        .isolation_level(::postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| pg_read::context(&op, e))?;
    let copied = redb_side::copy_into(&target, &from, |sink| pg_read::read(&mut snapshot, sink))?;
    snapshot.commit().map_err(|e| pg_read::context(&op, e))?;
    let verify = target.verify(Depth::Full)?;
    let undo = if existed {
        "delete that file before another copy"
    } else {
        "it was deleted again"
    };
    report(from, to, copied, verify, clock, undo)
}
