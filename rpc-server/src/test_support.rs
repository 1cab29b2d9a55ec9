//! Test support shared by the unit and the integration tests: a fresh
//! PostgreSQL database per test, in the throwaway cluster that
//! `scripts/with-postgres.sh` starts, and the usage-record fixture. Not used
//! by the server itself.

use std::sync::atomic::{AtomicU64, Ordering};

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
