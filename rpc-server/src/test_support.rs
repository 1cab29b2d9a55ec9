//! Test support shared by the unit and the integration tests (of this crate,
//! the dashboard's and the simulator's): a fresh PostgreSQL database per test,
//! in the throwaway cluster that `scripts/with-postgres.sh` starts; a whole
//! server on 127.0.0.1:0 ([`RunningServer`]); and the ledger fixtures. Not
//! used by the server itself: compiled for this crate's tests and under the
//! `testkit` feature, which the dashboard's tests and the simulator enable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use billing_api::{RecordPayment, RegisterUser, UserBilling};

use crate::config::{LedgerSettings, ServeSettings, SourceSpec};
use crate::secret::AdminSecret;

use crate::store::{
    FileBatch, FileOutcome, InvalidRecord, NodeUpdate, Store, StoreOptions, UsageRecord,
};

/// A usage record with what the ledger reads: key, user, node and cost.
pub fn rec(key: &str, sid: &str, node: &str, cost: i64) -> UsageRecord {
    UsageRecord {
        idempotency_key: key.into(),
        user_sid: sid.into(),
        node_name: node.into(),
        cost_cents: cost,
        resource: None,
        quantity: None,
        unit: None,
        period_start: None,
        period_end: None,
    }
}

/// A node's update at `commit` (tree `tree-<commit>`) carrying `files`.
pub fn update(node: &str, commit: &str, files: Vec<FileBatch>) -> NodeUpdate {
    NodeUpdate {
        node_name: node.into(),
        head_commit: commit.into(),
        tree_id: format!("tree-{commit}"),
        files,
    }
}

/// A decoded usage file of blob `blob` at `path`.
pub fn file(path: &str, blob: &str, records: Vec<Result<UsageRecord, InvalidRecord>>) -> FileBatch {
    FileBatch {
        path: path.into(),
        blob_id: blob.into(),
        outcome: FileOutcome::Decoded(records),
    }
}

/// Registers `sid` (no name or email) at `now_ms`; panics if the ledger refuses.
pub fn register(store: &Store, sid: &str, now_ms: u64) -> UserBilling {
    let user = RegisterUser {
        user_sid: sid.into(),
        display_name: None,
        email: None,
    };
    store
        .register_user(&user, now_ms)
        .unwrap_or_else(|e| panic!("register {sid}: {e}"))
}

/// A payment of `amount_cents` by `sid`, with no kind or reference.
pub fn payment(id: impl Into<String>, sid: impl Into<String>, amount_cents: i64) -> RecordPayment {
    RecordPayment {
        payment_id: id.into(),
        user_sid: sid.into(),
        amount_cents,
        kind: None,
        reference: None,
    }
}

/// A finished command's exit status, stdout and stderr, as text: what a test
/// shows when the command did not do what it should.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The variable `scripts/with-postgres.sh` sets.
pub const PG_URL_VAR: &str = "BILLING_TEST_PG_URL";

/// A database of its own for one test; dropped with it.
pub struct PgTestDb {
    admin: String,
    name: String,
    /// The URL of the test's database.
    pub url: String,
}

/// The throwaway cluster's URL. Panics, saying how to get one, when there is
/// none: a test that needs PostgreSQL never passes without it.
pub fn pg_admin_url() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{PG_URL_VAR} is not set: this test needs PostgreSQL. Run the tests through \
             scripts/test.sh, or as `scripts/with-postgres.sh cargo test …`, which starts a \
             throwaway PostgreSQL (installing the Debian package postgresql when missing)"
        )
    })
}

impl PgTestDb {
    /// Creates an empty database in the test cluster.
    pub fn create() -> PgTestDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = pg_admin_url();
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        on_thread(|| {
            let mut client =
                postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
                    panic!("cannot connect to the test PostgreSQL at {admin}: {e}")
                });
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        });
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PgTestDb { admin, name, url }
    }

    /// Empties the ledger in this database (as a new one), for tests that
    /// run many cases on one database.
    pub fn reset(&self) {
        on_thread(|| {
            let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
            client
                .batch_execute(
                    "TRUNCATE users, payments, consumed_sources, consumed, pending, rejected, \
                     rejected_fingerprints, file_tallies, nodes, consumed_files, runs, alerts, \
                     events, deliveries, webhook_cursors, ledger_settings CASCADE; \
                     UPDATE ledger_meta SET total_users = 0, total_balance_cents = 0, \
                     overdrawn_users = 0, consumed_records = 0, pending_records = 0, \
                     rejected_items = 0, consumed_seq = 0, payment_seq = 0, rejected_seq = 0, \
                     run_seq = 0, user_seq = 0, group_seq = 0, source_seq = 0, \
                     clean_head = NULL, run_totals = '{}'",
                )
                .unwrap_or_else(|e| panic!("cannot reset the ledger in {}: {e}", self.url));
        })
    }

    /// A store on this database.
    pub fn store(&self) -> Store {
        self.store_with(StoreOptions::default())
    }

    pub fn store_with(&self, options: StoreOptions) -> Store {
        on_thread(|| {
            Store::connect(&self.url, None, options)
                .unwrap_or_else(|e| panic!("cannot open the ledger in {}: {e}", self.url))
        })
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        on_thread(|| {
            if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
                let _ = client.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        })
    }
}

/// A PostgreSQL ledger that the cases of one property test share (a
/// database per case would cost a `CREATE DATABASE` each): declare
/// `static DB: SharedPgStore = SharedPgStore::new();` in the test.
pub type SharedPgStore = std::sync::OnceLock<(PgTestDb, Store)>;

/// The store of `shared`, created on first use and emptied before each case.
pub fn shared_pg_store(shared: &'static SharedPgStore) -> &'static Store {
    let (db, store) = shared.get_or_init(|| {
        let db = PgTestDb::create();
        let store = db.store();
        (db, store)
    });
    db.reset();
    store
}

/// Runs `f` on a thread of its own and returns its result: the PostgreSQL
/// ledger's synchronous client must not run on an async runtime's thread, and
/// async tests call the store through this.
pub fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Every item of a paged listing, in the order the pages give them; panics
/// on a failed page.
pub fn all_pages<T>(
    page: impl FnMut(Option<&str>) -> Result<crate::store::Page<T>, crate::store::StoreError>,
) -> Vec<T> {
    crate::store::all_pages(page).expect("a page of a listing")
}

/// A running server; `stop` ends it.
pub struct RunningServer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Serves the git billing repo `repo` (branch main) with its ledger in
    /// `data`, no scheduler, and `secret` as the admin secret.
    pub async fn start(repo: String, data: PathBuf, secret: &str) -> RunningServer {
        Self::start_with(repo, data, secret, None).await
    }

    /// [`RunningServer::start`] with the scheduler running a pass every
    /// `interval` when given.
    pub async fn start_with(
        repo: String,
        data: PathBuf,
        secret: &str,
        interval: Option<Duration>,
    ) -> RunningServer {
        std::fs::create_dir_all(&data).unwrap();
        let settings = ServeSettings {
            ledger: LedgerSettings::new(
                data,
                SourceSpec::Git {
                    repo,
                    branch: "main".into(),
                },
            ),
            replica_name: "test".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            interval,
            secret: AdminSecret::new(secret, "test").unwrap(),
            metrics_listen: None,
            stale_after: crate::aggregate::freshness::DEFAULT_STALE_AFTER,
            low_balance_cents: 500,
            webhooks: None,
        };
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<std::net::SocketAddr>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            let listener = crate::server::bind(settings.listen).unwrap();
            crate::server::serve(
                settings,
                listener,
                |at| addr_tx.send(at.api).unwrap(),
                shutdown,
            )
            .await
            .unwrap();
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .expect("server listens within 30 s")
            .unwrap();
        RunningServer {
            url: format!("http://{addr}"),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
