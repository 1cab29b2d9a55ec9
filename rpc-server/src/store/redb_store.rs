//! The ledger on redb: the database handle, its transactions and the
//! headline counters.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::codec::{self, META_KEY, MetaRow};
use super::{
    CACHE_BYTES, LedgerCounts, StoreError, StoreOptions, failpoints, format, gate, handle, tables,
};

/// Handle to the ledger database; cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    pub(super) shared: Arc<handle::Shared>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Creates every table up front so read transactions never meet a missing table.
pub(super) fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(tables::META)?;
    txn.open_table(tables::USERS)?;
    txn.open_table(tables::USERS_BY_BALANCE)?;
    txn.open_table(tables::USERS_BY_CONSUMED)?;
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
    txn.open_table(tables::ALERTS)?;
    txn.open_table(tables::EVENTS)?;
    txn.open_table(tables::DELIVERIES)?;
    txn.open_table(tables::WEBHOOK_CURSORS)?;
    txn.commit()?;
    Ok(())
}

impl RedbStore {
    /// Opens the ledger at `path`, creating it if missing, with default options.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the ledger at `path`, creating it if missing.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<RedbStore, StoreError> {
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
    pub fn in_memory() -> Result<RedbStore, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Storage(format!("cannot create an in-memory ledger: {e}")))?;
        Self::init(db, "(in memory)".to_string(), None, StoreOptions::default())
    }

    pub(super) fn init(
        db: Database,
        location: String,
        path: Option<PathBuf>,
        options: StoreOptions,
    ) -> Result<RedbStore, StoreError> {
        create_tables(&db).map_err(|e| match e {
            StoreError::Storage(m) | StoreError::Io(m) => {
                StoreError::Storage(format!("initialize the ledger on {location}: {m}"))
            }
            other => other,
        })?;
        format::check_and_migrate(&db, &location)?;
        Ok(RedbStore {
            shared: Arc::new(handle::Shared::new(db, location, path, options.keep_runs)),
        })
    }

    /// Runs `f` in one durable write transaction: commit on `Ok`, abort on
    /// `Err`. A service write: it goes before a pass's next part (see `gate`).
    pub(super) fn write<T>(
        &self,
        op: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = self.shared.gate.service();
        self.write_with(op, redb::Durability::Immediate, |txn| f(txn))
    }

    /// A write transaction of an aggregation pass: it first lets waiting
    /// service writes go (for a bounded time), and `f` should end early when
    /// [`RedbStore::service_waiting`] says one waits.
    pub(super) fn write_pass<T>(
        &self,
        op: &str,
        durability: redb::Durability,
        f: impl FnOnce(&mut WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.shared.gate.pass_turn(gate::PASS_MAX_WAIT);
        self.write_with(op, durability, f)
    }

    /// Whether a service write waits for the write lock.
    pub(super) fn service_waiting(&self) -> bool {
        self.shared.gate.service_waiting()
    }

    /// `write` with a chosen durability: a `Durability::None` commit is seen by
    /// every later transaction but reaches the disk only with the next durable
    /// commit (a crash before it undoes it, as if it never ran).
    pub(super) fn write_with<T>(
        &self,
        op: &str,
        durability: redb::Durability,
        f: impl FnOnce(&mut WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_writable(op)?;
        let result = self.db().and_then(|db| {
            failpoints::write_step!("begin");
            let mut txn = db.begin_write().map_err(|e| self.storage(op, e))?;
            txn.set_durability(durability)
                .map_err(|e| self.storage(op, e))?;
            match f(&mut txn) {
                Ok(value) => {
                    failpoints::write_step!("commit");
                    txn.commit().map_err(|e| self.storage(op, e))?;
                    failpoints::write_step!("committed");
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
    pub(super) fn read<T>(
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
    pub(super) fn storage(&self, op: &str, e: impl Into<redb::Error>) -> StoreError {
        let e: redb::Error = e.into();
        let msg = format!("{op} on {}: {e}", self.shared.location);
        if handle::is_io(&e) {
            StoreError::Io(msg)
        } else {
            StoreError::Storage(msg)
        }
    }

    pub(super) fn with_context(&self, op: &str, err: StoreError) -> StoreError {
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
    pub(super) fn meta_read(txn: &ReadTransaction) -> Result<MetaRow, StoreError> {
        let table = txn.open_table(tables::META)?;
        match table.get(META_KEY)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
            None => Ok(MetaRow::default()),
        }
    }

    /// The file's size on disk, in bytes (0 for a ledger in memory).
    pub fn ledger_size_bytes(&self) -> Result<u64, StoreError> {
        match self.path() {
            Some(path) => std::fs::metadata(path).map(|m| m.len()).map_err(|e| {
                StoreError::Storage(format!(
                    "cannot read the size of the ledger {}: {e}",
                    path.display()
                ))
            }),
            None => Ok(0),
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
