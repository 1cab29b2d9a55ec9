//! The ledger on PostgreSQL, for operators who run several rpc-server
//! replicas or keep their money in a database they already replicate and back
//! up. The domain rules are the same code as on redb (`ledger::LedgerTxn` over
//! [`rows::PgRows`]); this module holds the connection pool, the schema
//! migrations and the transactions.
//!
//! Writes apply one at a time across every replica: each write transaction
//! locks the single `ledger_meta` row first (its counters and sequence
//! numbers), as redb's single writer does on one machine. A record is applied
//! by inserting its key into `consumed`, whose primary key is the last guard of
//! exactly-once. The store is synchronous, like the redb one: callers run it on
//! blocking threads.

mod alert_rows;
mod arrays;
mod async_reads;
mod columns;
mod flush;
mod outbox;
mod pool;
mod queries;
mod rows;
mod schema;
mod user_list;
mod writes;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::NoTls;
use postgres::error::SqlState;

use super::{StoreError, StoreOptions, failpoints};
use crate::store::group_commit::GroupCommit;
use crate::store::payments::NewPayment;
use async_reads::AsyncReads;
use pool::PgConn;

pub(crate) use arrays::{
    CONSUMED_INSERT_COLUMNS, CONSUMED_UNNEST, ConsumedColumns, PAYMENT_UNNEST, PENDING_UNNEST,
    PaymentColumns, PendingColumns, REJECTED_INSERT_COLUMNS, REJECTED_UNNEST, RejectedColumns,
    SOURCE_INSERT_COLUMNS, SOURCE_UNNEST, SourceColumns, TALLY_UNNEST, TallyColumns, USER_UNNEST,
    UserColumns,
};
pub(crate) use columns::{
    PAYMENT_COLUMNS, PENDING_COLUMNS, TALLY_COLUMNS, USER_COLUMNS, write_meta,
};
pub use schema::SCHEMA_VERSION;

/// Connections a server keeps to the database at most (besides a pass's own).
const POOL_SIZE: u32 = 32;
/// How long a connection attempt waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection: with the database away, a
/// call fails after this (plus at most one failed try on a stale connection),
/// within 5 s.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);

type Pool = r2d2::Pool<pool::Manager>;
type Conn = r2d2::PooledConnection<pool::Manager>;

/// Handle to a ledger in PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// `None` only while dropping (see `Drop`).
    pool: Option<Pool>,
    /// For the pass connection, which is not pooled (see `begin_pass`).
    config: postgres::Config,
    /// The connection of the running pass, holding the pass lock.
    pass: Mutex<Option<postgres::Client>>,
    /// This server's name, recorded with the passes it runs.
    replica: Mutex<String>,
    /// `postgres://user@host:port/database`, never with the password.
    location: String,
    keep_runs: u64,
    /// Set at open when the stored counters disagree with the rows.
    writes_refused: Mutex<Option<String>>,
    /// The last failure to reach the database, until a call succeeds again.
    failure: Mutex<Option<(String, Instant)>>,
    /// Pass summaries a failure kept from being recorded, with their clean head.
    deferred_runs: Mutex<Vec<(billing_api::AggregateSummary, Option<String>)>>,
    /// Payments waiting together commit together.
    payments: GroupCommit<NewPayment, billing_api::Payment>,
    /// Balance reads on the server's runtime (see `async_reads`).
    async_reads: AsyncReads,
}

impl Drop for Shared {
    /// The synchronous client runs a small runtime of its own per connection,
    /// which must not be dropped on an async runtime's thread: the pool's
    /// connections and the pass connection are closed on a thread of their own.
    fn drop(&mut self) {
        let pool = self.pool.take();
        let pass = lock(&self.pass).take();
        let _ = std::thread::Builder::new()
            .name("ledger-close".into())
            .spawn(move || drop((pool, pass)));
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.shared.location)
            .finish()
    }
}

/// Where `config` points, for messages: never the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("(current user)");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Parses a ledger URL. The error never repeats the URL, which may hold a password.
pub fn parse_url(url: &str, password: Option<&str>) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::InvalidInput(format!(
            "the ledger URL is not a PostgreSQL connection URL ({e}); write it as \
             postgres://USER@HOST:PORT/DATABASE, with the password in --ledger-password-file \
             or PGPASSWORD"
        ))
    })?;
    if config.get_password().is_none()
        && let Some(p) = password
    {
        config.password(p);
    }
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("billing-rpc-server");
    Ok(config)
}

impl PgStore {
    /// Connects to the ledger database, creating or migrating its schema.
    pub fn connect(
        async_config: tokio_postgres::Config,
        options: StoreOptions,
    ) -> Result<PgStore, StoreError> {
        let location = describe(&async_config);
        let config = postgres::Config::from(async_config.clone());
        // One connection first, for a clear error when the server is unreachable.
        let mut first = config.connect(NoTls).map_err(|e| {
            StoreError::Io(format!(
                "cannot connect to the ledger database {location}: {}. Check that PostgreSQL \
                 runs there and accepts TCP connections from this host (listen_addresses, \
                 pg_hba.conf), that the database and the user exist, and the password \
                 (--ledger-password-file or PGPASSWORD)",
                billing_api::text::error_chain(&e)
            ))
        })?;
        schema::migrate(&mut first, &location)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(POOL_TIMEOUT)
            // No round trip to test each connection handed out: a connection the
            // server closed fails at its first use, and the call is retried once
            // on another (see `write` and `read`).
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(pool::Manager {
                config: config.clone(),
            });
        let store = PgStore {
            shared: Arc::new(Shared {
                pool: Some(pool),
                config,
                pass: Mutex::new(None),
                replica: Mutex::new(crate::config::default_replica_name()),
                location,
                keep_runs: options.keep_runs.max(1),
                writes_refused: Mutex::new(None),
                failure: Mutex::new(None),
                deferred_runs: Mutex::new(Vec::new()),
                payments: GroupCommit::new(),
                async_reads: AsyncReads::new(async_config),
            }),
        };
        if options.check {
            store.check_at_open()?;
        }
        Ok(store)
    }

    pub fn location(&self) -> &str {
        &self.shared.location
    }

    /// A pooled connection, within [`CONNECT_TIMEOUT`].
    fn conn(&self, op: &str) -> Result<Conn, StoreError> {
        let pool = self.shared.pool.as_ref().expect("set until dropped");
        pool.get().map_err(|e| {
            let e = StoreError::Io(format!(
                "cannot {op}: no connection to the ledger database {} within {}s ({e}); check \
                 that PostgreSQL is up and reachable, and GET /health",
                self.shared.location,
                POOL_TIMEOUT.as_secs()
            ));
            self.note(&Err::<(), _>(e.clone()));
            e
        })
    }

    /// Runs `f` in one transaction: commit on `Ok`, roll back on `Err`. A
    /// connection lost before the commit (a pooled connection the server has
    /// closed since) is replaced once: nothing of the failed attempt committed.
    fn write<T>(
        &self,
        op: &str,
        mut f: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_writable(op)?;
        let result = Attempt::retried(|| self.write_once(op, &mut f));
        let result = result
            .map_err(Attempt::into_error)
            .map_err(|e| self.context(op, e));
        self.note(&result);
        result
    }

    fn write_once<T>(
        &self,
        op: &str,
        f: &mut impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, Attempt> {
        let mut conn = self.conn(op).map_err(Attempt::NoConnection)?;
        let result: Result<T, Attempt> = (|| {
            failpoints::write_step!("begin", Attempt::BeforeCommit);
            let mut txn = conn
                .client
                .transaction()
                .map_err(|e| Attempt::BeforeCommit(db_err(e)))?;
            let value = f(&mut txn).map_err(Attempt::BeforeCommit)?;
            failpoints::write_step!("commit", Attempt::BeforeCommit);
            txn.commit().map_err(|e| Attempt::AtCommit(db_err(e)))?;
            failpoints::write_step!("committed", Attempt::AtCommit);
            Ok(value)
        })();
        result.map_err(|a| a.seen_on(&conn))
    }

    /// A write of the aggregation pass: on the pass's own connection, which
    /// holds the pass lock, so that losing that connection fails the pass
    /// instead of letting it go on unlocked. Outside a pass, like `write`.
    fn write_pass<T>(
        &self,
        op: &str,
        mut f: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = lock(&self.shared.pass);
        let Some(client) = slot.as_mut() else {
            drop(slot);
            return self.write(op, f);
        };
        self.check_writable(op)?;
        let result = transact(client, &mut f).map_err(|e| self.context(op, e));
        self.note(&result);
        result
    }

    fn check_writable(&self, op: &str) -> Result<(), StoreError> {
        match lock(&self.shared.writes_refused).as_ref() {
            Some(reason) => Err(StoreError::WritesRefused(format!("cannot {op}: {reason}"))),
            None => Ok(()),
        }
    }

    /// Waits for the pass lock, a session advisory lock held by one replica
    /// at a time on a connection of its own for the whole pass: if the
    /// replica dies or loses that connection, the server drops the lock and
    /// any open transaction with it, and another replica's pass can start.
    pub fn begin_pass(&self) -> Result<(), StoreError> {
        let location = &self.shared.location;
        let mut client = self.shared.config.connect(NoTls).map_err(|e| {
            StoreError::Io(format!(
                "cannot open the pass connection to the ledger database {location}: {}; \
                 check that PostgreSQL is up and reachable",
                billing_api::text::error_chain(&e)
            ))
        })?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&PASS_LOCK])
            .map_err(|e| self.context("take the pass lock", db_err(e)))?;
        if let Some(old) = lock(&self.shared.pass).replace(client) {
            close(old);
        }
        Ok(())
    }

    /// Ends the pass: closing its connection releases the pass lock.
    pub fn end_pass(&self) {
        if let Some(client) = lock(&self.shared.pass).take() {
            close(client);
        }
    }

    /// Names this server in the passes it records.
    pub fn set_replica_name(&self, name: &str) {
        *lock(&self.shared.replica) = name.to_string();
    }

    /// Runs `f` in one read-only snapshot, on another connection once if the
    /// first turns out to be closed.
    pub(in crate::store) fn read<T>(
        &self,
        op: &str,
        f: impl Fn(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = Attempt::retried(|| self.read_once(op, &f));
        let result = result
            .map_err(Attempt::into_error)
            .map_err(|e| self.context(op, e));
        self.note(&result);
        result
    }

    fn read_once<T>(
        &self,
        op: &str,
        f: &impl Fn(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, Attempt> {
        let mut conn = self.conn(op).map_err(Attempt::NoConnection)?;
        let used = |e: StoreError| Attempt::BeforeCommit(e);
        let result: Result<T, Attempt> = (|| {
            let mut txn = conn
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| used(db_err(e)))?;
            let value = f(&mut txn).map_err(used)?;
            txn.commit().map_err(|e| used(db_err(e)))?;
            Ok(value)
        })();
        result.map_err(|a| a.seen_on(&conn))
    }

    /// Runs one statement (or a few that need no snapshot together) on a
    /// pooled connection, on another once if the first turns out to be closed.
    fn on_conn<T>(
        &self,
        op: &str,
        f: impl Fn(&mut PgConn) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let once = || {
            let mut conn = self.conn(op).map_err(Attempt::NoConnection)?;
            let result = f(&mut conn).map_err(|e| Attempt::BeforeCommit(db_err(e)));
            result.map_err(|a| a.seen_on(&conn))
        };
        let result = Attempt::retried(once);
        let result = result
            .map_err(Attempt::into_error)
            .map_err(|e| self.context(op, e));
        self.note(&result);
        result
    }

    /// The row of user `sid`: one round trip on a prepared statement.
    fn user_row(&self, op: &str, sid: &str) -> Result<Option<postgres::Row>, StoreError> {
        self.on_conn(op, |conn| conn.client.query_opt(&conn.user_by_sid, &[&sid]))
    }

    /// Remembers or clears a failure to reach the database (for `problem`).
    fn note<T>(&self, result: &Result<T, StoreError>) {
        let mut failure = lock(&self.shared.failure);
        match result {
            Err(StoreError::Io(reason)) => {
                if failure.is_none() {
                    tracing::error!(ledger = %self.shared.location, %reason, "ledger database unreachable");
                }
                let since = failure.as_ref().map_or_else(Instant::now, |f| f.1);
                *failure = Some((reason.clone(), since));
            }
            Ok(_) if failure.is_some() => {
                tracing::info!(ledger = %self.shared.location, "ledger database reachable again");
                *failure = None;
            }
            _ => {}
        }
    }

    fn context(&self, op: &str, err: StoreError) -> StoreError {
        let location = &self.shared.location;
        match err {
            StoreError::Storage(msg) if !msg.contains(location.as_str()) => {
                StoreError::Storage(format!("{op} on {location}: {msg}"))
            }
            StoreError::Io(msg) if !msg.contains(location.as_str()) => StoreError::Io(format!(
                "{op} on {location}: {msg}; check that PostgreSQL is up and reachable, then retry"
            )),
            other => other,
        }
    }

    /// What is wrong with the ledger, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Some((reason, since)) = lock(&self.shared.failure).as_ref() {
            return Some(format!(
                "the ledger database has been failing for {}s: {reason}",
                since.elapsed().as_secs()
            ));
        }
        lock(&self.shared.writes_refused).clone()
    }

    /// Pass summaries waiting to be recorded.
    pub fn deferred_runs(&self) -> usize {
        lock(&self.shared.deferred_runs).len()
    }

    /// The quick check at open: on a mismatch, refuse writes and say why.
    fn check_at_open(&self) -> Result<(), StoreError> {
        let report = self.verify(super::Depth::Quick)?;
        if !report.consistent {
            let reason = format!(
                "the ledger {} is inconsistent: {}. Reads still work; writes are refused until \
                 an operator fixes it: run `rpc-server verify --ledger-url <url>` for the full \
                 report, then `rpc-server verify --ledger-url <url> --repair` to rewrite the \
                 counters from the rows, and restart",
                report.ledger,
                report.summary()
            );
            tracing::error!(%reason, "ledger check at start failed");
            *lock(&self.shared.writes_refused) = Some(reason);
        }
        Ok(())
    }
}

/// Key of the pass lock ("billing-pass" in ASCII, shortened).
const PASS_LOCK: i64 = 0x6269_6c6c_7061_7373;

/// How a write attempt failed: before its commit (nothing committed, safe to
/// retry) or at it (the outcome is unknown, never retried).
enum Attempt {
    /// No connection within the pool's timeout: the database is away.
    NoConnection(StoreError),
    /// Before the commit, on a pooled connection the server had closed since
    /// it was last used (a restart, a failover, an administrator).
    Closed(StoreError),
    BeforeCommit(StoreError),
    AtCommit(StoreError),
}

impl Attempt {
    fn into_error(self) -> StoreError {
        match self {
            Attempt::NoConnection(e)
            | Attempt::Closed(e)
            | Attempt::BeforeCommit(e)
            | Attempt::AtCommit(e) => e,
        }
    }

    /// A failure before the commit on a connection that is closed now is `Closed`.
    fn seen_on(self, conn: &PgConn) -> Attempt {
        match self {
            Attempt::BeforeCommit(e) if conn.client.is_closed() => Attempt::Closed(e),
            other => other,
        }
    }

    /// Runs `attempt`, again on another connection while it fails on one the
    /// server had closed: when the server drops its connections, every idle
    /// one in the pool is dead, each is found out only by using it and is
    /// then dropped from the pool, so at most [`POOL_SIZE`] such tries. Any
    /// other loss of the connection before the commit is tried once more.
    /// Nothing of a failed attempt committed, so trying again is safe.
    fn retried<T>(mut attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T, Attempt> {
        let (mut closed, mut other) = (POOL_SIZE, 1);
        loop {
            let result = attempt();
            match &result {
                Err(Attempt::Closed(_)) if closed > 0 => closed -= 1,
                Err(Attempt::BeforeCommit(StoreError::Io(_))) if other > 0 => other -= 1,
                _ => return result,
            }
        }
    }
}

/// Runs `f` in a transaction on `client`: commit on `Ok`, roll back on `Err`.
fn transact<T>(
    client: &mut postgres::Client,
    f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    failpoints::write_step!("begin");
    let mut txn = client.transaction().map_err(db_err)?;
    let value = f(&mut txn)?;
    failpoints::write_step!("commit");
    txn.commit().map_err(db_err)?;
    failpoints::write_step!("committed");
    Ok(value)
}

/// Closes a connection on a thread of its own: the synchronous client must
/// not be dropped on an async runtime's thread.
fn close(client: postgres::Client) {
    let _ = std::thread::Builder::new()
        .name("ledger-close".into())
        .spawn(move || drop(client));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A database error as a store error: unreachable or failing storage is `Io`
/// (retry once the database works), anything else `Storage`.
pub(crate) fn db_err(e: postgres::Error) -> StoreError {
    let text = billing_api::text::error_chain(&e);
    let Some(code) = e.code() else {
        return StoreError::Io(text);
    };
    let class = &code.code()[..2];
    // 08: connection exception; 53: insufficient resources (disk full, out of
    // memory); 57: operator intervention (shutdown); 58: system error (I/O).
    if matches!(class, "08" | "53" | "57" | "58") || code == &SqlState::READ_ONLY_SQL_TRANSACTION {
        StoreError::Io(text)
    } else {
        StoreError::Storage(text)
    }
}

/// A count or sequence number as stored (BIGINT).
pub(crate) fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count or sequence number.
pub(crate) fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A run as stored (JSON), without the NUL characters `jsonb` refuses: an
/// error message may quote a hostile file.
pub(crate) fn run_json(row: &super::codec::RunRow) -> Result<serde_json::Value, StoreError> {
    let mut row = row.clone();
    for (node, message) in &mut row.errors {
        if let Some(n) = node {
            *n = clean(n).into_owned();
        }
        *message = clean(message).into_owned();
    }
    serde_json::to_value(&row).map_err(|e| StoreError::Storage(format!("cannot encode a run: {e}")))
}

/// Text PostgreSQL can store: it refuses NUL characters, which free text from
/// a hostile file (a rejection's detail) may hold.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}
