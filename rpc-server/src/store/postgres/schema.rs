//! Schema migrations: numbered SQL files, applied at start in one transaction
//! and recorded in `ledger_schema_version`. Replicas starting together take
//! turns on a transaction advisory lock, so each migration runs once.

use super::super::StoreError;
use super::db_err;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_ledger.sql")),
    (2, include_str!("migrations/0002_consumed_fast_path.sql")),
    (3, include_str!("migrations/0003_resource.sql")),
    (4, include_str!("migrations/0004_user_sort.sql")),
    (5, include_str!("migrations/0005_events.sql")),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Advisory lock key of migrations ("billing-migrate" in ASCII, shortened).
const MIGRATION_LOCK: i64 = 0x6269_6c6c_6d69_6772;

/// Brings the schema to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) fn migrate(client: &mut postgres::Client, location: &str) -> Result<(), StoreError> {
    let context = |e: StoreError| match e {
        StoreError::Storage(m) => StoreError::Storage(format!(
            "cannot prepare the ledger schema in {location}: {m}; check that the user may \
             create tables in this database"
        )),
        other => other,
    };
    let mut txn = client.transaction().map_err(db_err).map_err(context)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db_err)
        .map_err(context)?;
    let exists: bool = txn
        .query_one(
            "SELECT to_regclass('ledger_schema_version') IS NOT NULL",
            &[],
        )
        .map_err(db_err)
        .map_err(context)?
        .get(0);
    if !exists {
        txn.batch_execute(
            "CREATE TABLE ledger_schema_version (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(db_err)
        .map_err(context)?;
    }
    let current: i32 = txn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM ledger_schema_version",
            &[],
        )
        .map_err(db_err)
        .map_err(context)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Storage(format!(
            "the ledger database {location} has schema version {current}, newer than this \
             rpc-server's {SCHEMA_VERSION}: it was written by a newer release. Run that release \
             (or newer); this one would misread the ledger"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(sql).map_err(db_err).map_err(|e| {
            context(match e {
                StoreError::Storage(m) => StoreError::Storage(format!("migration {version}: {m}")),
                other => other,
            })
        })?;
        txn.execute(
            "INSERT INTO ledger_schema_version (version) VALUES ($1)",
            &[version],
        )
        .map_err(db_err)
        .map_err(context)?;
        tracing::info!(ledger = %location, version, "ledger schema migrated");
    }
    txn.commit().map_err(db_err).map_err(context)
}
