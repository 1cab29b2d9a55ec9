//! The PostgreSQL ledger in bad situations, against a real PostgreSQL: an
//! unreachable database at start, a schema newer than the binary, the
//! database lost in the middle of a pass, and every pooled connection dropped
//! by the server at once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use billing_api::error_codes;
use billing_api::rpc::BillingApiClient;
use billing_server::store::{Depth, SCHEMA_VERSION, Store, StoreOptions};
use common::*;
use jsonrpsee::core::ClientError;

const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");

#[test]
fn an_unreachable_database_is_one_clear_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let repo = NodeRepo::new();
    let out = Command::new(BIN)
        .args(["aggregate", "--once", "--repo"])
        .arg(repo.path())
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--ledger-url",
            "postgres://billing:hunter2-secret@127.0.0.1:1/ledgerdb",
        ])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains("127.0.0.1:1") && line.contains("ledgerdb") && line.contains("billing@"),
        "names host, port, database and user: {line}"
    );
    assert!(
        line.contains("Check that PostgreSQL runs"),
        "says what to check: {line}"
    );
    assert!(!stderr.contains("hunter2"), "never the password: {stderr}");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_with_both_versions() {
    let db = PgTestDb::create();
    drop(db.store());
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .execute(
            "INSERT INTO ledger_schema_version (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 7)],
        )
        .unwrap();
    let err = Store::connect(&db.url, None, StoreOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("schema version {}", SCHEMA_VERSION + 7))
            && text.contains(&format!("rpc-server's {SCHEMA_VERSION}")),
        "{text}"
    );
}

/// The consumed table has no foreign keys (they cost more than the insert):
/// `verify --full` is what finds an applied record whose user or source row
/// is missing.
#[test]
fn verify_full_reports_applied_records_without_their_user_or_source() {
    let db = PgTestDb::create();
    let store = db.store();
    let clean = store.verify(Depth::Full).unwrap();
    assert!(clean.consistent, "{clean:?}");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "INSERT INTO consumed VALUES ('k-ghost', 1, 'u-ghost', 5, 77); \
             UPDATE ledger_meta SET consumed_records = 1",
        )
        .unwrap();
    let report = store.verify(Depth::Full).unwrap();
    assert!(!report.consistent);
    let found: Vec<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.what.as_str(), f.stored.as_str()))
        .collect();
    assert!(
        found.contains(&("applied records of unknown users", "1"))
            && found.contains(&("applied records without a source", "1")),
        "{found:?}"
    );
    drop(store);
}

/// Server processes (connections) open on database `name`.
fn backends_of(client: &mut postgres::Client, name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .unwrap()
        .get(0)
}

/// Cuts the test database off: every connection is closed and new ones are
/// refused, as when its server is lost; `restore` lets connections in again.
fn cut_off(db: &PgTestDb, allow: bool) {
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let admin = billing_server::test_support::pg_admin_url();
    on_thread(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"
            ))
            .unwrap();
        if !allow {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&name],
                )
                .unwrap();
            // pg_terminate_backend only signals: each backend exits on its
            // own time. Wait until they are all gone, so the cut is real.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let left = backends_of(&mut client, &name);
                if left == 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{left} backends of {name} still alive 30 s after pg_terminate_backend"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    })
}

fn consumed_now(db: &PgTestDb) -> i64 {
    let url = db.url.clone();
    on_thread(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query_one("SELECT count(*) FROM consumed", &[])
            .unwrap()
            .get(0)
    })
}

#[tokio::test]
async fn losing_the_database_mid_pass_fails_fast_and_the_next_pass_recovers() {
    let repo = NodeRepo::new();
    let (nodes, hours, per_file) = (8, 10, 400);
    let mut files = Vec::new();
    for n in 0..nodes {
        for h in 0..hours {
            let node = format!("node-{n}");
            let records: Vec<(String, String, i64)> = (0..per_file)
                .map(|i| (format!("{node}-{h}-{i}"), format!("u-{}", i % 50), 1))
                .collect();
            let refs: Vec<(&str, &str, i64)> = records
                .iter()
                .map(|(k, u, c)| (k.as_str(), u.as_str(), *c))
                .collect();
            files.push((usage_path(&node, h), batch(&node, &refs)));
        }
    }
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    repo.commit(&files, "usage");
    let total = (nodes * hours * per_file) as i64;

    let server = TestServer::start_on(Backend::Postgres, repo.path()).await;
    let db = server.ledger.pg.as_ref().unwrap();
    let sids: Vec<String> = (0..50).map(|i| format!("u-{i}")).collect();
    let sids: Vec<&str> = sids.iter().map(String::as_str).collect();
    register(server.aggregator.store(), &sids);
    let client = server.client();

    // The pass runs; once some of it is applied, the database goes away.
    let pass = {
        let aggregator = server.aggregator.clone();
        tokio::spawn(async move { aggregator.run_pass().await })
    };
    let started = Instant::now();
    while consumed_now(db) == 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cut_off(db, false);
    let outcome = pass.await.unwrap();
    let partly = consumed_now_after_restore(db);
    assert!(
        partly > 0 && partly < total,
        "the loss came mid-pass: {partly} of {total} applied before it"
    );
    if let Err(failed) = &outcome {
        assert!(
            failed.message.contains("postgres://"),
            "the failure names the ledger: {}",
            failed.message
        );
    }

    // While it is away, calls fail with -32603 and a clear message, quickly.
    cut_off(db, false);
    let asked = Instant::now();
    let err = client.get_balance("u-1".into()).await.unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    match err {
        ClientError::Call(e) => {
            assert_eq!(e.code(), error_codes::INTERNAL, "{e:?}");
            assert!(e.message().contains("postgres://"), "{}", e.message());
        }
        other => panic!("not a call error: {other:?}"),
    }

    // Back again: the next pass applies the rest, each record once.
    cut_off(db, true);
    let next = server.aggregator.run_pass().await.unwrap();
    assert_eq!(
        next.records_applied as i64 + partly,
        total,
        "every record applied once ({partly} before the loss)"
    );
    let counts = on_thread(|| server.aggregator.store().overview_counts().unwrap());
    assert_eq!(counts.consumed_records as i64, total);
    let report = on_thread(|| {
        server
            .aggregator
            .store()
            .verify(billing_server::store::Depth::Full)
            .unwrap()
    });
    assert!(report.consistent, "{}", report.summary());
    assert_eq!(
        client
            .get_balance("u-1".into())
            .await
            .unwrap()
            .credit_balance_cents,
        -(total / 50)
    );
}

/// Records applied so far, read with connections allowed for a moment.
fn consumed_now_after_restore(db: &PgTestDb) -> i64 {
    cut_off(db, true);
    consumed_now(db)
}

/// After the server closed every connection (a restart, a failover), all the
/// idle connections of the pool are dead, and each is found out only when
/// used: the first call afterwards still works, whatever the number of them.
#[test]
fn the_first_call_after_the_server_dropped_every_connection_works() {
    let db = PgTestDb::create();
    let store = db.store();
    register(&store, &["u-1"]);
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let backends = || {
        let admin = billing_server::test_support::pg_admin_url();
        let name = name.clone();
        on_thread(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            backends_of(&mut client, &name)
        })
    };
    // Calls at once open several pooled connections, idle afterwards.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..20 {
                    store.overview_counts().unwrap();
                }
            });
        }
    });
    let idle = backends();
    assert!(idle >= 3, "the pool holds several connections: {idle}");

    cut_off(&db, false);
    // Counted while connections are refused: once they are allowed again,
    // the pool may open its one minimum idle connection in the background.
    assert_eq!(backends(), 0, "the server closed every connection");
    cut_off(&db, true);
    store
        .clean_head()
        .expect("a read after the server dropped the pool's connections");
    register(&store, &["u-2"]);
    assert_eq!(store.overview_counts().unwrap().total_users, 2);
    drop(store);
}
