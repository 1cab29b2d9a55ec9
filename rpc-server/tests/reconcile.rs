//! `reconcile`: the ledger compared with the billing repo at head finds each
//! injected difference exactly, and nothing on a clean ledger, on both
//! backends; and the command works beside a running server.

mod common;
mod ledger_process;

use std::collections::BTreeSet;
use std::path::Path;

use billing_api::{CheckKind, CheckResult, ReconcileReport};
use common::{
    Backend, NodeRepo, TestLedger, aggregator_on, batch, on_thread, pay, register, usage_path,
};

/// Removes an applied record from the consumed index, as damage would.
fn forget_applied(ledger: &TestLedger, data_dir: &Path, key: &str) {
    match &ledger.pg {
        Some(db) => on_thread(|| {
            let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
            let n = client
                .execute("DELETE FROM consumed WHERE idempotency_key = $1", &[&key])
                .unwrap();
            assert_eq!(n, 1);
        }),
        None => {
            use redb::{ReadableTable, TableDefinition};
            const KEYS: TableDefinition<&str, u64> = TableDefinition::new("consumed_keys");
            const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("consumed_log");
            let db = redb::Database::open(data_dir.join("ledger.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut keys = txn.open_table(KEYS).unwrap();
                let seq = keys
                    .remove(key)
                    .unwrap()
                    .expect("the key was applied")
                    .value();
                let mut log = txn.open_table(LOG).unwrap();
                assert!(log.remove(seq).unwrap().is_some());
                assert!(log.get(seq).unwrap().is_none());
            }
            txn.commit().unwrap();
        }
    }
}

fn keys_of<'a>(items: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    items.map(str::to_string).collect()
}

async fn reconcile_finds_each_injected_difference(backend: Backend) {
    let repo = NodeRepo::new();
    repo.commit(
        &[
            (
                &usage_path("node-a", 0),
                &batch("node-a", &[("a-0-0", "u-1", 10), ("a-0-1", "u-1", 20)]),
            ),
            (
                &usage_path("node-a", 1),
                &batch("node-a", &[("a-1-0", "u-2", 10), ("a-1-1", "u-2", 5)]),
            ),
            (
                &usage_path("node-b", 0),
                &batch("node-b", &[("b-0-0", "u-2", 7), ("b-0-1", "u-3", 8)]),
            ),
        ],
        "hour 0 and 1",
    );
    let data = tempfile::tempdir().unwrap();
    let ledger = TestLedger::new(backend);
    let aggregator = aggregator_on(&ledger, repo.path(), data.path(), 1 << 20);
    register(aggregator.store(), &["u-1", "u-2"]);
    let summary = aggregator.run_pass().await.unwrap();
    assert_eq!((summary.records_applied, summary.records_pending), (5, 1));
    on_thread(|| pay(aggregator.store(), "p-1", "u-1", 500));

    // A clean ledger: nothing to report (the held record of u-3 is accounted for).
    let clean: ReconcileReport = aggregator.reconcile().await.unwrap();
    assert!(clean.consistent, "{clean:#?}");
    assert_eq!(
        (clean.repo.files, clean.repo.records, clean.repo.cents),
        (3, 6, 60)
    );
    assert_eq!(
        (clean.ledger.applied_records, clean.ledger.applied_cents),
        (5, 52)
    );
    assert_eq!((clean.ledger.held_records, clean.ledger.users), (1, 2));
    // The server remembers both checks for the dashboard (aggregator_state).
    let verified = aggregator.verify().await.unwrap();
    assert_eq!(verified.result, CheckResult::Consistent, "{verified:?}");
    let checks = aggregator.checks();
    assert_eq!(checks.last_verify, Some(verified));
    let last = checks.last_reconcile.unwrap();
    assert_eq!(
        (last.kind, last.result),
        (CheckKind::Reconcile, CheckResult::Consistent)
    );
    assert!(last.summary.contains("6 records in 3 files"), "{last:?}");
    assert!(checks.running.is_none());

    // Damage the consumed index, rewrite an applied file, add a file and remove one.
    drop(aggregator);
    forget_applied(&ledger, data.path(), "a-0-1");
    repo.commit(
        &[
            (
                &usage_path("node-a", 1),
                &batch("node-a", &[("a-1-0", "u-2", 99), ("a-1-1", "u-2", 5)]),
            ),
            (
                &usage_path("node-b", 1),
                &batch("node-b", &[("b-1-0", "u-1", 1), ("b-1-1", "u-2", 2)]),
            ),
        ],
        "rewrite hour 1 of node-a, add hour 1 of node-b",
    );
    repo.git(&["rm", "-q", &usage_path("node-b", 0)]);
    let removed_at = repo.commit(&[], "remove hour 0 of node-b");
    let aggregator = aggregator_on(&ledger, repo.path(), data.path(), 1 << 20);
    let report = aggregator.reconcile().await.unwrap();
    let last = aggregator.checks().last_reconcile.unwrap();
    assert_eq!(last.result, CheckResult::Differences, "{last:?}");
    assert_eq!(
        last.summary,
        "3 unapplied, 1 orphaned, 1 rewritten, 2 ledger figures differ; see `rpc-server reconcile`"
    );
    // The forgotten record breaks the ledger's own sums too.
    let verified = aggregator.verify().await.unwrap();
    assert_eq!(verified.result, CheckResult::Differences, "{verified:?}");

    assert!(!report.consistent);
    assert_eq!(report.head_commit.as_deref(), Some(removed_at.as_str()));
    assert_eq!(
        keys_of(report.unapplied.iter().map(|u| u.idempotency_key.as_str())),
        keys_of(["a-0-1", "b-1-0", "b-1-1"].into_iter()),
        "{report:#?}"
    );
    let lost = report
        .unapplied
        .iter()
        .find(|u| u.idempotency_key == "a-0-1")
        .unwrap();
    assert_eq!(
        (
            lost.node_name.as_str(),
            lost.user_sid.as_str(),
            lost.cost_cents
        ),
        ("node-a", "u-1", 20)
    );
    assert_eq!(lost.file_path, usage_path("node-a", 0));

    assert_eq!(report.rewritten.len(), 1, "{report:#?}");
    let w = &report.rewritten[0];
    assert_eq!(
        (w.applied.idempotency_key.as_str(), w.applied.cost_cents),
        ("a-1-0", 10)
    );
    assert_eq!(w.at_head.cost_cents, 99);
    assert_eq!(w.applied.file_path, usage_path("node-a", 1));

    // b-0-1 was held, not applied: only b-0-0 is an orphaned charge.
    assert_eq!(
        keys_of(report.orphaned.iter().map(|o| o.idempotency_key.as_str())),
        keys_of(["b-0-0"].into_iter()),
        "{report:#?}"
    );
    let orphan = &report.orphaned[0];
    assert_eq!(
        (orphan.node_name.as_str(), orphan.cost_cents),
        ("node-b", 7)
    );
    assert_eq!(orphan.file_path, usage_path("node-b", 0));
    assert!(!orphan.commit_sha.is_empty());

    // u-1's stored balance still has the forgotten debit; its rows no longer do.
    assert!(
        report.balances.iter().any(|b| b.what.contains("`u-1`")),
        "{:#?}",
        report.balances
    );
    assert!(
        !report.balances.iter().any(|b| b.what.contains("`u-2`")),
        "{:#?}",
        report.balances
    );
    assert_eq!(report.more_differences, 0);
    // It changed nothing: a second run reports the same.
    let again = aggregator.reconcile().await.unwrap();
    assert_eq!(
        (again.unapplied, again.orphaned, again.rewritten),
        (report.unapplied, report.orphaned, report.rewritten)
    );
}

on_both_backends!(reconcile_finds_each_injected_difference);

/// Over RPC: `verify` and `reconcile` are remembered in `aggregator_state`,
/// which the dashboard's Aggregator view shows.
#[tokio::test]
async fn the_last_checks_show_in_aggregator_state() {
    use billing_api::rpc::BillingApiClient;
    let repo = NodeRepo::new();
    repo.commit(
        &[(
            &usage_path("node-a", 0),
            &batch("node-a", &[("k-1", "u-1", 3)]),
        )],
        "hour 0",
    );
    let server = common::TestServer::start_on(Backend::Redb, repo.path()).await;
    let client = server.client();
    let before = client.aggregator_state().await.unwrap();
    assert_eq!(
        (
            before.last_verify,
            before.last_reconcile,
            before.check_running
        ),
        (None, None, None)
    );
    client
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();
    // Not aggregated yet: the record is unapplied.
    client.reconcile().await.unwrap();
    let verified = client.verify().await.unwrap();
    assert_eq!(verified.result, CheckResult::Consistent);
    assert!(verified.summary.contains("1 users checked"), "{verified:?}");
    let state = client.aggregator_state().await.unwrap();
    assert_eq!(state.last_verify, Some(verified));
    let reconciled = state.last_reconcile.unwrap();
    assert_eq!(
        (reconciled.result, reconciled.summary.as_str()),
        (
            CheckResult::Differences,
            "1 unapplied; see `rpc-server reconcile`"
        )
    );
    assert!(state.check_running.is_none());
    client.aggregate_now().await.unwrap();
    client.reconcile().await.unwrap();
    let state = client.aggregator_state().await.unwrap();
    assert_eq!(
        state.last_reconcile.unwrap().result,
        CheckResult::Consistent
    );
}

/// The command asks the server that holds the ledger, and exits 0 or 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_works_beside_a_running_server() {
    use ledger_process::{BIN, SECRET, ServerProcess, Workspace, simulate};
    let ws = Workspace::new();
    simulate(&ws.repo(), 3, 2, 10, 11);
    let server = ServerProcess::start(&ws.data(), &ws.repo());
    for i in 0..8 {
        server
            .ok(
                "register_user",
                serde_json::json!({"user_sid": format!("u-{i:04}")}),
            )
            .await;
    }
    server.ok("aggregate_now", serde_json::json!({})).await;
    let (data, repo) = (ws.data(), ws.repo());
    let reconcile = move || {
        std::process::Command::new(BIN)
            .args(["reconcile", "--json", "--data-dir"])
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .env("BILLING_ADMIN_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(reconcile.clone())
        .await
        .unwrap();
    let text = format!("{out:?}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: ReconcileReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report.repo.records, report.ledger.applied_records),
        (60, 60)
    );

    // A new hour the server has not aggregated yet: reported, exit 3.
    simulate(&ws.repo(), 3, 1, 10, 11);
    let out = tokio::task::spawn_blocking(reconcile.clone())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let report: ReconcileReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.unapplied.len(), 30, "{report:#?}");
    server.stop();
}
