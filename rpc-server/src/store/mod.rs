//! The ledger: users, payments, applied usage, held and rejected records, node
//! state and aggregation runs, in one redb database.
//!
//! Every domain operation is one write transaction: it commits when the
//! operation returns `Ok` and aborts on `Err`, so a failed operation changes
//! nothing. The store is synchronous; async callers wrap calls in
//! `tokio::task::spawn_blocking`.
//!
//! Exactly-once rests on one table: `CONSUMED_KEYS` maps each applied
//! `idempotency_key` to its row in `CONSUMED_LOG`; a record is applied only by
//! inserting its key there, in the same transaction as the balance change.
//! Records of unknown users wait in `PENDING` (also listed as `unknown_user`
//! rejections) and are applied when the user registers. Counters live in one
//! `META` row updated by the transaction that changes what they count.
//! `recount` recomputes them from the tables, for audits and tests.
//!
//! Layout: `tables.rs` (table definitions), `codec.rs` (row encodings),
//! `ledger/` (applying usage: the domain rules, written once against the
//! `ledger::Rows` trait), `redb_rows.rs` (those rows over redb's tables), `users.rs`, `payments.rs`, `runs.rs` (node
//! state and aggregation runs), `handle.rs` (the database handle, storage
//! failures and recovery), `verify.rs` (consistency check of counters and rows).

mod chunks;
mod codec;
mod format;
mod gate;
mod group_commit;
mod handle;
mod ledger;
mod nodes;
mod payments;
mod redb_rows;
mod runs;
mod tables;
mod tally;
mod users;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use serde::{Deserialize, Serialize};

pub use billing_api::otoml::{InvalidRecord, UsageRecord};
pub use billing_api::{AggregateSummary, ConsumedRecord, Page, Payment, RejectedItem, UserBilling};
pub use format::LEDGER_FORMAT;
pub use nodes::NodeRecord;

pub use chunks::{ChunkItem, NodeChunk, NodeEnd, REJECTION_SAMPLE};
pub use payments::DEFAULT_PAYMENT_KIND;
pub use runs::RunTotals;
pub use verify::{Depth, Finding, VerifyReport};

use codec::{META_KEY, MetaRow};

/// Page cache of a file database. redb's default (1 GiB) would dominate the
/// aggregator's memory budget; the hot tables of a large ledger fit in this.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Largest accepted `payment_id`, in bytes.
pub const MAX_PAYMENT_ID_BYTES: usize = 256;
/// Largest accepted `display_name`, `email`, payment `kind` or `reference`, in bytes.
pub const MAX_TEXT_BYTES: usize = 512;

/// Why a store operation failed. Every message says what failed, with which
/// input, and what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the ledger database {} is already open in another process (or by another handle in \
         this one); stop the running rpc-server first, or ask it to aggregate with its \
         `aggregate_now` RPC",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("{what} `{key}` not found")]
    NotFound { what: &'static str, key: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("arithmetic overflow: {0}; nothing was changed")]
    Overflow(String),
    #[error("ledger storage error: {0}")]
    Storage(String),
    /// The storage failed (disk full, I/O error); the ledger re-opens itself once it works.
    #[error("ledger storage failed: {0}")]
    Io(String),
    /// The ledger's counters disagreed with its rows at start; reads still work.
    #[error("ledger writes refused: {0}")]
    WritesRefused(String),
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                let e: redb::Error = e.into();
                if handle::is_io(&e) {
                    StoreError::Io(e.to_string())
                } else {
                    StoreError::Storage(e.to_string())
                }
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Headline figures, maintained incrementally in the same transaction as the
/// change they count, so reading them is O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    pub total_users: u64,
    /// 128-bit, so that no user's amounts can make it overflow (old rows of 64
    /// bits decode as the same number: both are zigzag varints).
    pub total_balance_cents: i128,
    pub overdrawn_users: u64,
    pub consumed_records: u64,
    /// Records held because their user is unknown (also listed as `unknown_user` rejections).
    pub pending_records: u64,
    /// Every item `list_rejected` returns, held records included.
    pub rejected_items: u64,
}

/// Everything new of one node in one pass, applied in one transaction.
#[derive(Debug, Clone)]
pub struct NodeUpdate {
    pub node_name: String,
    pub head_commit: String,
    pub tree_id: String,
    pub files: Vec<FileBatch>,
}

/// One usage file of a node, as read at `NodeUpdate::head_commit`.
#[derive(Debug, Clone)]
pub struct FileBatch {
    pub path: String,
    pub blob_id: String,
    pub outcome: FileOutcome,
}

/// What reading one file gave.
#[derive(Debug, Clone)]
pub enum FileOutcome {
    Decoded(Vec<Result<UsageRecord, InvalidRecord>>),
    /// The file could not be decoded as a whole; the error text.
    Unparseable(String),
    /// The file is over the size limit and was not read.
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// The file holds more records than the per-file limit; none was applied.
    TooManyRecords {
        limit: u64,
    },
    /// The file's name is not a real hour; the reason.
    InvalidName(String),
    /// The file is a Git LFS pointer, not usage data.
    LfsPointer,
}

/// What applying records did.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct NodeOutcome {
    pub files_read: u64,
    pub files_rejected: u64,
    /// Files over the size limit. They are not marked consumed and their node
    /// keeps no tree id, so every pass checks them again (a raised limit takes effect).
    pub files_too_large: u64,
    /// Files over the per-file record limit; checked again at every pass, like oversize files.
    pub files_too_many_records: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub pending: u64,
    pub invalid: u64,
    pub cents_debited: i64,
}

impl NodeOutcome {
    /// Adds the figures of another chunk of the same node.
    pub fn add(&mut self, o: &NodeOutcome) {
        self.files_read += o.files_read;
        self.files_rejected += o.files_rejected;
        self.files_too_large += o.files_too_large;
        self.files_too_many_records += o.files_too_many_records;
        self.applied += o.applied;
        self.duplicate += o.duplicate;
        self.conflict += o.conflict;
        self.pending += o.pending;
        self.invalid += o.invalid;
        self.cents_debited = self.cents_debited.saturating_add(o.cents_debited);
    }
}

/// How to open the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Accept an empty (zero-length) ledger file as a new ledger. Without it an
    /// empty file is refused: it is usually a ledger lost to a full disk or a bad copy.
    pub init: bool,
    /// Aggregation runs kept in the runs table (the oldest are dropped; their
    /// figures stay in `RunTotals`). At least 1.
    pub keep_runs: u64,
    /// Check the stored counters against the rows at open (see `verify`); on a
    /// mismatch the store serves reads but refuses writes.
    pub check: bool,
}

/// Default of `StoreOptions::keep_runs`.
pub const DEFAULT_KEEP_RUNS: u64 = 10_000;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            init: false,
            keep_runs: DEFAULT_KEEP_RUNS,
            check: true,
        }
    }
}

/// Handle to the ledger database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<handle::Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Creates every table up front so read transactions never meet a missing table.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(tables::META)?;
    txn.open_table(tables::USERS)?;
    txn.open_table(tables::PAYMENTS)?;
    txn.open_table(tables::PAYMENT_LOG)?;
    txn.open_table(tables::USER_PAYMENTS)?;
    txn.open_table(tables::CONSUMED_KEYS)?;
    txn.open_table(tables::CONSUMED_LOG)?;
    txn.open_table(tables::CONSUMED_SOURCES)?;
    txn.open_table(tables::USER_CONSUMED)?;
    txn.open_table(tables::PENDING)?;
    txn.open_table(tables::USER_PENDING)?;
    txn.open_table(tables::REJECTED)?;
    txn.open_table(tables::REJECTED_FINGERPRINTS)?;
    txn.open_table(tables::REJECTED_COUNTS)?;
    txn.open_table(tables::FILE_TALLIES)?;
    txn.open_table(tables::NODES)?;
    txn.open_table(tables::CONSUMED_FILES)?;
    txn.open_table(tables::RUNS)?;
    txn.commit()?;
    Ok(())
}

impl Store {
    /// Opens the ledger at `path`, creating it if missing, with default options.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the ledger at `path`, creating it if missing.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if !options.init
            && let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && meta.len() == 0
        {
            return Err(StoreError::Storage(format!(
                "the ledger database {} is empty (0 bytes): it was probably cut short by a full \
                 disk or a failed copy, and opening it would start a new, empty ledger. Restore \
                 it from a backup; or, to really start a fresh ledger, delete the file or pass \
                 --init",
                path.display()
            )));
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch => StoreError::Locked {
                    path: path.to_path_buf(),
                },
                other => StoreError::Storage(format!(
                    "cannot open the ledger database {}: {other}; check that the path is a \
                     writable file of this aggregator",
                    path.display()
                )),
            })?;
        let store = Self::init(
            db,
            path.display().to_string(),
            Some(path.to_path_buf()),
            options,
        )?;
        if options.check {
            store.check_at_open()?;
        }
        Ok(store)
    }

    /// A ledger in memory, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Storage(format!("cannot create an in-memory ledger: {e}")))?;
        Self::init(db, "(in memory)".to_string(), None, StoreOptions::default())
    }

    fn init(
        db: Database,
        location: String,
        path: Option<PathBuf>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        create_tables(&db).map_err(|e| match e {
            StoreError::Storage(m) | StoreError::Io(m) => {
                StoreError::Storage(format!("initialize the ledger on {location}: {m}"))
            }
            other => other,
        })?;
        format::check_and_migrate(&db, &location)?;
        Ok(Store {
            shared: Arc::new(handle::Shared::new(db, location, path, options.keep_runs)),
        })
    }

    /// Runs `f` in one durable write transaction: commit on `Ok`, abort on
    /// `Err`. A service write: it goes before a pass's next part (see `gate`).
    fn write<T>(
        &self,
        op: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = self.shared.gate.service();
        self.write_with(op, redb::Durability::Immediate, |txn| f(txn))
    }

    /// A write transaction of an aggregation pass: it first lets waiting
    /// service writes go (for a bounded time), and `f` should end early when
    /// [`Store::service_waiting`] says one waits.
    fn write_pass<T>(
        &self,
        op: &str,
        durability: redb::Durability,
        f: impl FnOnce(&mut WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.shared.gate.pass_turn(gate::PASS_MAX_WAIT);
        self.write_with(op, durability, f)
    }

    /// Whether a service write waits for the write lock.
    fn service_waiting(&self) -> bool {
        self.shared.gate.service_waiting()
    }

    /// `write` with a chosen durability: a `Durability::None` commit is seen by
    /// every later transaction but reaches the disk only with the next durable
    /// commit (a crash before it undoes it, as if it never ran).
    fn write_with<T>(
        &self,
        op: &str,
        durability: redb::Durability,
        f: impl FnOnce(&mut WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_writable(op)?;
        let result = self.db().and_then(|db| {
            let mut txn = db.begin_write().map_err(|e| self.storage(op, e))?;
            txn.set_durability(durability)
                .map_err(|e| self.storage(op, e))?;
            match f(&mut txn) {
                Ok(value) => {
                    txn.commit().map_err(|e| self.storage(op, e))?;
                    Ok(value)
                }
                Err(err) => {
                    // Dropping would abort too; aborting explicitly surfaces nothing new, so
                    // the operation's own error is the one worth reporting.
                    let _ = txn.abort();
                    Err(self.with_context(op, err))
                }
            }
        });
        if let Err(e) = &result {
            self.note_error(e);
        }
        result
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    fn read<T>(
        &self,
        op: &str,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = self.db().and_then(|db| {
            let txn = db.begin_read().map_err(|e| self.storage(op, e))?;
            f(&txn).map_err(|e| self.with_context(op, e))
        });
        if let Err(e) = &result {
            self.note_error(e);
        }
        result
    }

    /// Wraps a redb error of the transaction itself (begin, commit).
    fn storage(&self, op: &str, e: impl Into<redb::Error>) -> StoreError {
        let e: redb::Error = e.into();
        let msg = format!("{op} on {}: {e}", self.shared.location);
        if handle::is_io(&e) {
            StoreError::Io(msg)
        } else {
            StoreError::Storage(msg)
        }
    }

    fn with_context(&self, op: &str, err: StoreError) -> StoreError {
        let location = &*self.shared.location;
        match err {
            StoreError::Storage(msg) if !msg.contains(location) => {
                StoreError::Storage(format!("{op} on {location}: {msg}"))
            }
            StoreError::Io(msg) if !msg.contains(location) => {
                StoreError::Io(format!("{op} on {location}: {msg}"))
            }
            other => other,
        }
    }

    /// The counters, sequence numbers and clean head.
    fn meta_read(txn: &ReadTransaction) -> Result<MetaRow, StoreError> {
        let table = txn.open_table(tables::META)?;
        match table.get(META_KEY)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
            None => Ok(MetaRow::default()),
        }
    }

    /// O(1) headline counters.
    pub fn overview_counts(&self) -> Result<LedgerCounts, StoreError> {
        self.read("read the ledger counters", |txn| {
            Ok(Self::meta_read(txn)?.counts)
        })
    }

    /// Recomputes the counters from every table (a full scan); for audits and tests.
    pub fn recount(&self) -> Result<LedgerCounts, StoreError> {
        use redb::ReadableTableMetadata;
        self.read("recount the ledger", |txn| {
            let mut counts = LedgerCounts::default();
            let mut total: i128 = 0;
            let users = txn.open_table(tables::USERS)?;
            for entry in users.range::<&str>(..)? {
                let (_, row) = entry?;
                let row: codec::UserRow = codec::decode_owned(row.value(), "user")?;
                counts.total_users += 1;
                total += i128::from(row.balance_cents);
                if row.balance_cents < 0 {
                    counts.overdrawn_users += 1;
                }
            }
            counts.total_balance_cents = total;
            counts.consumed_records = txn.open_table(tables::CONSUMED_KEYS)?.len()?;
            counts.pending_records = txn.open_table(tables::PENDING)?.len()?;
            counts.rejected_items = txn.open_table(tables::REJECTED)?.len()?;
            Ok(counts)
        })
    }
}

/// Page size actually used: at least 1, at most `billing_api::MAX_PAGE_LIMIT`.
fn clamp_limit(limit: u32) -> usize {
    limit.clamp(1, billing_api::MAX_PAGE_LIMIT) as usize
}

fn bad_cursor(cursor: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "cursor `{}` is not one this list returned; pass back `next_cursor` unchanged, \
         or omit it to start from the beginning",
        billing_api::text::echo(cursor)
    ))
}

/// Parses a sequence-number cursor.
fn seq_cursor(cursor: Option<&str>) -> Result<Option<u64>, StoreError> {
    cursor
        .map(|c| c.parse::<u64>().map_err(|_| bad_cursor(c)))
        .transpose()
}

/// Checks a required identifier: non-empty, at most `max` bytes, and free of
/// control and bidirectional-text characters (`billing_api::text`).
pub(crate) fn check_id(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > max {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1..={max} bytes, got {} bytes",
            value.len()
        )));
    }
    billing_api::text::check_chars(what, value).map_err(StoreError::InvalidInput)
}

/// Checks an optional free-text field: at most `MAX_TEXT_BYTES`, and free of
/// control and bidirectional-text characters.
fn check_text(what: &str, value: Option<&str>) -> Result<(), StoreError> {
    match value {
        Some(v) if v.len() > MAX_TEXT_BYTES => Err(StoreError::InvalidInput(format!(
            "{what} must be at most {MAX_TEXT_BYTES} bytes, got {} bytes",
            v.len()
        ))),
        Some(v) => billing_api::text::check_chars(what, v).map_err(StoreError::InvalidInput),
        None => Ok(()),
    }
}

/// Builds a page from up to `limit + 1` fetched items: the extra one only says
/// that there is a next page.
fn page<T>(mut items: Vec<(String, T)>, limit: usize) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|(c, _)| c.clone())
    } else {
        None
    };
    Page {
        items: items.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}

#[cfg(test)]
mod tests;
