//! The database handle behind every `RedbStore` clone, and what happens when the
//! storage fails.
//!
//! After an I/O error (disk full, file size limit, EIO) redb refuses every
//! later operation with "Previous I/O error occurred" until the database is
//! closed and opened again. The handle therefore keeps the `Database` in a
//! swappable slot: the first I/O error marks the ledger as failing (health,
//! log) and starts a recovery thread that drops the database and opens it
//! again, with backoff, until that works. Writes fail fast meanwhile; reads go
//! to the old database as long as it answers. Committed data is never at risk:
//! a failed commit leaves the last committed state, which redb recovers on open.
//!
//! A ledger whose counters disagree with its rows at start (see `verify.rs`)
//! stays readable but refuses writes until an operator fixes it and restarts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use billing_api::AggregateSummary;
use redb::Database;
use tracing::{error, info, warn};

use super::{RedbStore, StoreError};

/// First wait before re-opening a failed database; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Bytes a scratch file next to the ledger must take before re-opening is tried.
const PROBE_BYTES: usize = 1024 * 1024;
/// Pass summaries kept while the ledger cannot record them (oldest dropped first).
const MAX_DEFERRED_RUNS: usize = 100;

/// Shared by every clone of one `RedbStore`.
pub(super) struct Shared {
    /// `None` only while the recovery thread swaps the database.
    db: RwLock<Option<Arc<Database>>>,
    /// Where the database lives, for error messages.
    pub location: Arc<str>,
    /// The file, for re-opening; `None` for an in-memory ledger.
    path: Option<PathBuf>,
    /// Runs kept in the runs table.
    pub keep_runs: u64,
    /// Set by an I/O error, cleared when the database is open again.
    io_failure: Mutex<Option<IoFailure>>,
    recovering: AtomicBool,
    /// Set at open when the stored counters disagree with the rows.
    writes_refused: Mutex<Option<String>>,
    /// Pass summaries a storage failure kept from being recorded, with their clean head.
    pub deferred_runs: Mutex<Vec<(AggregateSummary, Option<String>)>>,
    /// Service writes go before a pass's next part.
    pub gate: super::gate::WriteGate,
    /// Payments waiting together commit together.
    pub payments:
        super::group_commit::GroupCommit<super::payments::NewPayment, billing_api::Payment>,
}

struct IoFailure {
    reason: String,
    since: Instant,
    attempts: u32,
    last_attempt_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(db: Database, location: String, path: Option<PathBuf>, keep_runs: u64) -> Self {
        Shared {
            db: RwLock::new(Some(Arc::new(db))),
            location: location.into(),
            path,
            keep_runs: keep_runs.max(1),
            io_failure: Mutex::new(None),
            recovering: AtomicBool::new(false),
            writes_refused: Mutex::new(None),
            deferred_runs: Mutex::new(Vec::new()),
            gate: Default::default(),
            payments: super::group_commit::GroupCommit::new(),
        }
    }
}

/// Whether a redb error means the storage itself failed (and redb latched it).
pub(super) fn is_io(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_)
            | redb::Error::Backend(_)
            | redb::Error::PreviousIo
            | redb::Error::DatabaseClosed
    )
}

impl RedbStore {
    /// The current database, or why there is none.
    /// The ledger file; `None` for an in-memory ledger.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.shared.path.as_deref()
    }

    /// Where the ledger lives, for messages.
    pub fn location(&self) -> &str {
        &self.shared.location
    }

    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
        let slot = self
            .shared
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            Some(db) => Ok(db.clone()),
            None => Err(StoreError::Io(format!(
                "the ledger database {} is being re-opened after a storage failure ({}); \
                 retry in a moment, and see GET /health",
                self.shared.location,
                self.io_failure_reason().unwrap_or_default()
            ))),
        }
    }

    /// Refuses a write while the ledger is failing or refuses writes.
    pub(super) fn check_writable(&self, op: &str) -> Result<(), StoreError> {
        if let Some(reason) = lock(&self.shared.writes_refused).as_ref() {
            return Err(StoreError::WritesRefused(format!("cannot {op}: {reason}")));
        }
        if let Some(failure) = lock(&self.shared.io_failure).as_ref() {
            return Err(StoreError::Io(format!(
                "cannot {op}: the ledger {} failed earlier ({}) and is being re-opened \
                 (attempt {}); free space on its filesystem (or fix the I/O error); \
                 GET /health answers 200 again once the ledger works",
                self.shared.location,
                failure.reason,
                failure.attempts + 1
            )));
        }
        Ok(())
    }

    /// Notes an error of an operation: an I/O error marks the ledger failing
    /// and starts re-opening it.
    pub(super) fn note_error(&self, err: &StoreError) {
        let StoreError::Io(reason) = err else { return };
        {
            let mut failure = lock(&self.shared.io_failure);
            if failure.is_none() {
                error!(
                    ledger = %self.shared.location,
                    %reason,
                    "ledger storage failed; writes fail until the database is re-opened, \
                     which is retried with backoff (free space on the data dir's filesystem)"
                );
                *failure = Some(IoFailure {
                    reason: reason.clone(),
                    since: Instant::now(),
                    attempts: 0,
                    last_attempt_error: None,
                });
            }
        }
        if self.shared.path.is_some() && !self.shared.recovering.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("ledger-recovery".into())
                .spawn(move || recover(weak));
            if let Err(e) = spawned {
                self.shared.recovering.store(false, Ordering::Release);
                error!(error = %e, "cannot start the ledger recovery thread");
            }
        }
    }

    fn io_failure_reason(&self) -> Option<String> {
        lock(&self.shared.io_failure)
            .as_ref()
            .map(|f| f.reason.clone())
    }

    /// Refuses writes from now on (reads still work); health says why.
    pub(super) fn refuse_writes(&self, reason: String) {
        *lock(&self.shared.writes_refused) = Some(reason);
    }

    /// What is wrong with the ledger, if anything: a storage failure being
    /// recovered, or counters that disagree with the rows.
    pub fn problem(&self) -> Option<String> {
        if let Some(f) = lock(&self.shared.io_failure).as_ref() {
            let mut text = format!(
                "ledger storage failed {}s ago: {}; re-opening the database with backoff \
                 ({} attempts so far)",
                f.since.elapsed().as_secs(),
                f.reason,
                f.attempts
            );
            if let Some(last) = &f.last_attempt_error {
                text += &format!("; last attempt: {last}");
            }
            return Some(text);
        }
        lock(&self.shared.writes_refused).clone()
    }

    /// Drops the failed database and opens it again. Only once a scratch file
    /// of 1 MiB can be written next to it: until then re-opening would fail
    /// too, and the old handle keeps answering the reads redb still serves.
    fn reopen(&self) -> Result<(), StoreError> {
        let Some(path) = &self.shared.path else {
            return Err(StoreError::Storage(
                "an in-memory ledger cannot be re-opened".into(),
            ));
        };
        probe_space(path)?;
        let old = self
            .shared
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            // redb refuses a second open while the old database lives; operations
            // in flight hold clones for a moment (they fail fast on it).
            while Arc::strong_count(&old) > 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        let db = Database::builder()
            .set_cache_size(super::CACHE_BYTES)
            .open(path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        super::redb_store::create_tables(&db).map_err(|e| {
            StoreError::Io(format!(
                "cannot write to {} after opening it: {e}",
                path.display()
            ))
        })?;
        *self
            .shared
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(db));
        Ok(())
    }

    /// Keeps a pass summary the ledger could not record; recorded once it works.
    pub(super) fn defer_run(&self, summary: AggregateSummary, clean_head: Option<String>) {
        let mut deferred = lock(&self.shared.deferred_runs);
        if deferred.len() >= MAX_DEFERRED_RUNS {
            let dropped = deferred.remove(0);
            warn!(
                started_at = %dropped.0.started_at,
                "dropping the oldest unrecorded pass summary: {MAX_DEFERRED_RUNS} are waiting"
            );
        }
        deferred.push((summary, clean_head));
    }

    /// Pass summaries waiting to be recorded.
    pub fn deferred_runs(&self) -> usize {
        lock(&self.shared.deferred_runs).len()
    }
}

fn probe_space(ledger: &std::path::Path) -> Result<(), StoreError> {
    use std::io::Write;
    let probe = ledger.with_extension("redb.space-probe");
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        StoreError::Io(format!(
            "cannot write a {} KiB scratch file {} yet ({e})",
            PROBE_BYTES / 1024,
            probe.display()
        ))
    })
}

/// The recovery thread: re-opens the database with backoff until it works,
/// then records the pass summaries that were waiting.
fn recover(weak: Weak<Shared>) {
    let mut delay = FIRST_BACKOFF;
    loop {
        std::thread::sleep(delay);
        let Some(shared) = weak.upgrade() else { return };
        let store = RedbStore { shared };
        match store.reopen() {
            Ok(()) => {
                let failed_for = lock(&store.shared.io_failure)
                    .take()
                    .map(|f| f.since.elapsed())
                    .unwrap_or_default();
                store.shared.recovering.store(false, Ordering::Release);
                info!(
                    ledger = %store.shared.location,
                    ?failed_for,
                    "ledger database re-opened after a storage failure; writes work again"
                );
                match store.record_deferred_runs() {
                    Ok(0) => {}
                    Ok(n) => info!(runs = n, "recorded pass summaries kept during the failure"),
                    Err(e) => {
                        warn!(error = %e, "could not record the pass summaries kept during the failure")
                    }
                }
                return;
            }
            Err(e) => {
                let mut failure = lock(&store.shared.io_failure);
                if let Some(f) = failure.as_mut() {
                    f.attempts += 1;
                    f.last_attempt_error = Some(e.to_string());
                    warn!(
                        ledger = %store.shared.location,
                        attempt = f.attempts,
                        error = %e,
                        retry_in = ?(delay * 2).min(MAX_BACKOFF),
                        "re-opening the ledger failed"
                    );
                }
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
}
