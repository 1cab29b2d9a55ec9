//! [`Store`]: the ledger, on one of its backends. Callers (the aggregator,
//! the RPC handlers, the CLI) use only this type and never learn which
//! backend they talk to. Dispatch is one `match` per call, on a type known at
//! compile time inside each arm, so the redb path pays nothing for it.

use std::collections::HashMap;
use std::path::Path;

use billing_api::{
    AggregateSummary, Balance, ConsumedRecord, Page, Payment, RecordPayment, RegisterUser,
    RejectedItem, UserBilling,
};

use super::{
    ApplyOutcome, Depth, LedgerCounts, NodeChunk, NodeRecord, NodeUpdate, PgStore, RedbStore,
    RunTotals, StoreError, StoreOptions, UserQuery, VerifyReport,
};

/// Handle to the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    /// The embedded default: one redb file.
    Redb(RedbStore),
    /// PostgreSQL, shared by any number of replicas.
    Postgres(PgStore),
}

impl Store {
    /// Opens the redb ledger at `path`, creating it if missing, with default options.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        RedbStore::open(path).map(Store::Redb)
    }

    /// Opens the redb ledger at `path`, creating it if missing.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        RedbStore::open_with(path, options).map(Store::Redb)
    }

    /// Connects to the ledger in PostgreSQL at `url` (a `postgres://` URL);
    /// `password` is used when the URL has none.
    pub fn connect(
        url: &str,
        password: Option<&str>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let config = super::postgres::parse_url(url, password)?;
        PgStore::connect(config, options).map(Store::Postgres)
    }

    /// Creates the user, or updates the fields the request gives, and applies
    /// every record held for this user, all in one transaction.
    pub fn register_user(
        &self,
        req: &RegisterUser,
        now_ms: u64,
    ) -> Result<UserBilling, StoreError> {
        let mut users = self.register_users(std::slice::from_ref(req), now_ms)?;
        users.pop().ok_or_else(|| {
            StoreError::Storage(format!("user `{}` missing after upsert", req.user_sid))
        })
    }

    /// Applies everything new of one node, and its new state, in one transaction.
    pub fn apply_node(&self, update: NodeUpdate, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        self.apply_chunk(&NodeChunk::whole(update), now_ms)
    }

    /// A redb ledger in memory, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        RedbStore::in_memory().map(Store::Redb)
    }

    /// Waits until no other server runs a pass on this ledger, and keeps
    /// others from starting one until [`Store::end_pass`]. On redb the file
    /// lock already keeps every other process out.
    pub fn begin_pass(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(s) => s.begin_pass(),
        }
    }

    pub fn end_pass(&self) {
        match self {
            Store::Redb(_) => {}
            Store::Postgres(s) => s.end_pass(),
        }
    }

    /// Names this server in the passes it records (PostgreSQL: several
    /// servers share the ledger).
    pub fn set_replica_name(&self, name: &str) {
        if let Store::Postgres(s) = self {
            s.set_replica_name(name);
        }
    }

    /// The server that recorded the last pass, where several may; `None` on redb.
    pub fn last_run_replica(&self) -> Result<Option<String>, StoreError> {
        match self {
            Store::Redb(_) => Ok(None),
            Store::Postgres(s) => s.last_run_replica(),
        }
    }

    /// `get_balance` for a caller on an async runtime, without a hop to the
    /// blocking pool: redb reads in place (a point read is a few microseconds
    /// of work in memory or the page cache); PostgreSQL reads with its async
    /// client on the runtime, many calls pipelined on a few connections.
    pub async fn read_balance(&self, sid: &str) -> Result<Balance, StoreError> {
        match self {
            Store::Redb(s) => s.get_balance(sid),
            Store::Postgres(s) => s.read_balance(sid).await,
        }
    }

    /// `list_users` for a caller on an async runtime: redb reads on the
    /// blocking pool (a page is more work than a point read), PostgreSQL on
    /// the runtime with its async client.
    pub async fn read_users(
        &self,
        query: UserQuery,
        limit: u32,
    ) -> Result<Page<UserBilling>, StoreError> {
        match self {
            Store::Redb(_) => {
                self.on_blocking_thread(move |s| s.list_users_by(&query, limit))
                    .await
            }
            Store::Postgres(s) => s.read_users(&query, limit).await,
        }
    }

    /// Every user in sid order, a page from `cursor` (the last sid of the
    /// page before).
    pub fn list_users(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<UserBilling>, StoreError> {
        self.list_users_by(&UserQuery::by_sid(cursor)?, limit)
    }

    /// Runs `op` on a blocking thread with a handle to this store: store
    /// work waits on disk or the network, which an async runtime's threads
    /// must not.
    pub async fn on_blocking_thread<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| StoreError::Storage(format!("store task failed: {e}")))?
    }

    /// The backend's name, for logs and `GET /health`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Redb(_) => "redb",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// Forwards each method to the backend.
macro_rules! delegate {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$meta])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Redb(s) => s.$name($($arg),*),
                        Store::Postgres(s) => s.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

delegate! {
    /// What the ledger holds for each of `keys`, in one snapshot.
    fn key_states(&self, keys: &[&str]) -> Result<Vec<super::KeyState>, StoreError>;
    /// O(1) headline counters.
    fn overview_counts(&self) -> Result<LedgerCounts, StoreError>;
    /// Recomputes the counters from every row (a full scan); for audits and tests.
    fn recount(&self) -> Result<LedgerCounts, StoreError>;
    /// What is wrong with the ledger, if anything.
    fn problem(&self) -> Option<String>;
    /// Pass summaries waiting to be recorded.
    fn deferred_runs(&self) -> usize;
    /// Checks the stored counters and indexes against the rows.
    fn verify(&self, depth: Depth) -> Result<VerifyReport, StoreError>;
    /// Rewrites the counters from a recount.
    fn repair_counters(&self) -> Result<LedgerCounts, StoreError>;
    /// Head commit of the last pass that had no errors.
    fn clean_head(&self) -> Result<Option<String>, StoreError>;
    /// Stores a pass summary under a new run id, and `clean_head` if given.
    fn record_run(&self, summary: &AggregateSummary, clean_head: Option<&str>) -> Result<u64, StoreError>;
    fn run_totals(&self) -> Result<RunTotals, StoreError>;
    fn next_run_id(&self) -> Result<u64, StoreError>;
    fn last_run(&self) -> Result<Option<AggregateSummary>, StoreError>;
    /// Aggregation runs, newest first.
    fn list_runs(&self, cursor: Option<&str>, limit: u32) -> Result<Page<AggregateSummary>, StoreError>;
    fn node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Every known node, sorted by name.
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Node -> the newest usage hour consumed from it (a file name), for every node with one.
    fn newest_hours(&self) -> Result<HashMap<String, String>, StoreError>;
    /// The ledger's size on disk, in bytes (0 for a ledger in memory).
    fn ledger_size_bytes(&self) -> Result<u64, StoreError>;
    /// Path -> blob id of every file of the node already consumed.
    fn consumed_files(&self, node_name: &str) -> Result<HashMap<String, String>, StoreError>;
    /// Records that a pass failed on this node; its consumed position is kept.
    fn node_failed(&self, node_name: &str, error: &str, now_ms: u64) -> Result<(), StoreError>;
    /// `register_user` for many users in one transaction.
    fn register_users(&self, reqs: &[RegisterUser], now_ms: u64) -> Result<Vec<UserBilling>, StoreError>;
    fn get_user(&self, sid: &str) -> Result<UserBilling, StoreError>;
    fn get_balance(&self, sid: &str) -> Result<Balance, StoreError>;
    /// A page of users in an order, through a filter (see `user_list`).
    fn list_users_by(&self, query: &UserQuery, limit: u32) -> Result<Page<UserBilling>, StoreError>;
    /// Sets (or with `None` clears) a user's own low-balance threshold.
    fn set_user_threshold(&self, sid: &str, cents: Option<i64>, now_ms: u64) -> Result<billing_api::UserThreshold, StoreError>;
    /// Stores the default low-balance threshold (`--low-balance-cents`).
    fn set_low_balance_default(&self, cents: i64, now_ms: u64) -> Result<(), StoreError>;
    /// Writes node events for nodes whose staleness changed, and `aggregation.failed` if given.
    fn record_events(&self, nodes: &[super::alerts::outbox::NodeChange], failed: Option<serde_json::Value>, now_ms: u64) -> Result<Vec<u64>, StoreError>;
    /// Events due for delivery to `url`, each leased for `lease_ms`.
    fn claim_deliveries(&self, url: &str, lease_ms: u64, max: usize, now_ms: u64) -> Result<Vec<super::alerts::outbox::Due>, StoreError>;
    /// How delivery attempts to `url` ended.
    fn record_deliveries(&self, url: &str, attempts: &[super::alerts::outbox::Attempted], now_ms: u64) -> Result<(), StoreError>;
    /// Events newest first, with their deliveries to `urls`.
    fn list_events(&self, cursor: Option<&str>, limit: u32, kind: Option<billing_api::EventType>, urls: &[String]) -> Result<Page<billing_api::Event>, StoreError>;
    /// Credits a payment, idempotent by `payment_id`.
    fn record_payment(&self, req: &RecordPayment, now_ms: u64) -> Result<Payment, StoreError>;
    /// Payments, newest first; only `user_sid`'s if given.
    fn list_payments(&self, user_sid: Option<&str>, cursor: Option<&str>, limit: u32) -> Result<Page<Payment>, StoreError>;
    /// Applies one chunk of a node's new files.
    fn apply_chunk(&self, chunk: &NodeChunk, now_ms: u64) -> Result<ApplyOutcome, StoreError>;
    /// Applies every held record whose user now exists.
    fn apply_pending(&self, now_ms: u64) -> Result<ApplyOutcome, StoreError>;
    /// Applied records, newest first; only `user_sid`'s if given.
    fn list_consumed(&self, user_sid: Option<&str>, cursor: Option<&str>, limit: u32) -> Result<Page<ConsumedRecord>, StoreError>;
    /// Held and rejected records and files, newest first.
    fn list_rejected(&self, cursor: Option<&str>, limit: u32) -> Result<Page<RejectedItem>, StoreError>;
}
