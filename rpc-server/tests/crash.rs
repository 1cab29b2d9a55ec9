//! Crash safety: `rpc-server aggregate --once` is killed with SIGKILL at
//! random points many times, then allowed to finish. Balances and the consumed
//! index must be identical to an uninterrupted run on redb, whichever backend
//! the crashed runs used.

mod common;

use billing_server::test_support::register;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use billing_server::store::Store;
use common::{Backend, TestLedger};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");
const USERS: u32 = 12;

fn register_users(ledger: &TestLedger, data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    let store = ledger.open(data_dir);
    // Leave the last user unregistered so held records are part of the picture.
    for i in 0..USERS - 1 {
        register(&store, &billing_server::simulate::user_sid(i), 1);
    }
}

fn aggregate(ledger: &TestLedger, data_dir: &Path, repo: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["aggregate", "--once", "--json", "--data-dir"])
        .arg(data_dir)
        .args(ledger.args())
        .arg("--repo")
        .arg(repo)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// (sid, balance, consumed) of every user, plus ledger counters.
fn ledger_fingerprint(ledger: &TestLedger, data_dir: &Path) -> (Vec<(String, i64, i64)>, u64, u64) {
    let store = ledger.open(data_dir);
    let users = store
        .list_users(None, 1000)
        .unwrap()
        .items
        .into_iter()
        .map(|u| (u.user_sid, u.credit_balance_cents, u.total_consumed_cents))
        .collect();
    let counts = store.overview_counts().unwrap();
    assert_eq!(
        counts,
        store.recount().unwrap(),
        "counters match a full recount"
    );
    (users, counts.consumed_records, counts.pending_records)
}

fn simulate(repo: &Path, hours: u32) {
    let status = Command::new(BIN)
        .args([
            "simulate",
            "--nodes",
            "12",
            "--records",
            "60",
            "--seed",
            "9",
        ])
        .args([
            "--hours",
            &hours.to_string(),
            "--users",
            &USERS.to_string(),
            "--repo",
        ])
        .arg(repo)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn killing_the_aggregation_at_random_points_never_changes_the_outcome_on_redb() {
    killing_at_random_points(Backend::Redb);
}

#[test]
fn killing_the_aggregation_at_random_points_never_changes_the_outcome_on_postgres() {
    killing_at_random_points(Backend::Postgres);
}

fn killing_at_random_points(backend: Backend) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("billing.git");
    simulate(&repo, 4);

    // How long an uninterrupted pass over the first 4 hours takes here, now.
    let scratch = work.path().join("scratch");
    let scratch_ledger = TestLedger::new(backend);
    register_users(&scratch_ledger, &scratch);
    let started = Instant::now();
    assert!(
        aggregate(&scratch_ledger, &scratch, &repo)
            .status()
            .unwrap()
            .success()
    );
    let window = started.elapsed().as_micros() as u64 / 2 + 1;

    // Crashed runs: before each, the nodes commit one more hour, so every run
    // has new work; SIGKILL lands at a random point of it.
    let crashed = work.path().join("crashed");
    let crashed_ledger = TestLedger::new(backend);
    register_users(&crashed_ledger, &crashed);
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    for _ in 0..25 {
        simulate(&repo, 1);
        let mut child = aggregate(&crashed_ledger, &crashed, &repo).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.random_range(0..window)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 5,
        "only {kills} runs were killed mid-pass; the test proves little"
    );
    let finish = || {
        assert!(
            aggregate(&crashed_ledger, &crashed, &repo)
                .status()
                .unwrap()
                .success()
        )
    };
    finish();

    // Reference: one uninterrupted run over the final repo, on redb.
    let reference = work.path().join("reference");
    let reference_ledger = TestLedger::new(Backend::Redb);
    register_users(&reference_ledger, &reference);
    assert!(
        aggregate(&reference_ledger, &reference, &repo)
            .status()
            .unwrap()
            .success()
    );
    let expected = ledger_fingerprint(&reference_ledger, &reference);
    assert_eq!(
        expected.1 + expected.2,
        12 * 29 * 60,
        "every record applied or held"
    );

    assert_eq!(ledger_fingerprint(&crashed_ledger, &crashed), expected);
    // And one more pass changes nothing.
    finish();
    assert_eq!(ledger_fingerprint(&crashed_ledger, &crashed), expected);
}

#[test]
fn aggregate_refuses_clearly_while_a_server_holds_the_ledger() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("billing.git");
    assert!(
        Command::new(BIN)
            .args([
                "simulate",
                "--nodes",
                "1",
                "--hours",
                "1",
                "--records",
                "1",
                "--repo"
            ])
            .arg(&repo)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let held = Store::open(&data.join("ledger.redb")).unwrap();
    let out = aggregate(&TestLedger::new(Backend::Redb), &data, &repo)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ledger.redb"), "{stderr}");
    assert!(
        stderr.contains("aggregate_now"),
        "says what to do instead: {stderr}"
    );
    drop(held);
}
