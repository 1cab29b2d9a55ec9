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
//! state and aggregation runs), `user_index.rs` and `user_list/` (`list_users`
//! by balance or consumed, filtered), `handle.rs` (the database handle, storage
//! failures and recovery), `verify.rs` (consistency check of counters and rows).

pub mod alerts;
mod backend;
pub mod backup;
mod chunks;
mod codec;
#[doc(hidden)]
pub mod failpoints;
mod format;
mod gate;
mod group_commit;
mod handle;
mod ledger;
mod lookup;
pub mod migrate;
mod nodes;
mod payments;
mod postgres;
mod redb_rows;
mod redb_store;
mod runs;
mod summary;
mod tables;
mod tally;
mod user_index;
mod user_list;
mod users;
mod verify;
mod window;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use backend::Store;
pub use billing_api::otoml::{InvalidRecord, UsageRecord};
pub use billing_api::{AggregateSummary, ConsumedRecord, Page, Payment, RejectedItem, UserBilling};
pub use format::LEDGER_FORMAT;
pub use lookup::KeyState;
pub use nodes::NodeRecord;
pub use postgres::{PgStore, SCHEMA_VERSION, describe as postgres_describe};
pub use redb_store::RedbStore;

pub use chunks::{ChunkItem, NodeChunk, NodeEnd, REJECTION_SAMPLE};
pub use payments::DEFAULT_PAYMENT_KIND;
pub use runs::RunTotals;
pub use user_list::{USER_SCAN, UserQuery};
pub use verify::{Depth, Finding, VerifyReport};
pub use window::{WINDOW_SCAN, Window, all_pages};

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
pub struct ApplyOutcome {
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
    /// `files_rejected` by reason, each reason once.
    pub files_rejected_by: Vec<(billing_api::RejectReason, u64)>,
    /// The files rejected whole (the aggregator logs them as each chunk commits).
    pub rejected_files: Vec<RejectedFile>,
}

/// A file rejected whole, for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedFile {
    pub path: String,
    pub reason: billing_api::RejectReason,
    pub detail: String,
}

impl ApplyOutcome {
    /// Counts a file rejected whole for `reason`.
    pub fn file_rejected(&mut self, reason: billing_api::RejectReason, n: u64) {
        self.files_rejected += n;
        match self
            .files_rejected_by
            .iter_mut()
            .find(|(r, _)| *r == reason)
        {
            Some((_, count)) => *count += n,
            None => self.files_rejected_by.push((reason, n)),
        }
    }

    /// Adds the figures of another chunk of the same node.
    pub fn add(&mut self, o: &ApplyOutcome) {
        self.files_read += o.files_read;
        for (reason, n) in &o.files_rejected_by {
            self.file_rejected(*reason, *n);
        }
        self.rejected_files.extend(o.rejected_files.iter().cloned());
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
pub(crate) fn check_identifier(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
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
