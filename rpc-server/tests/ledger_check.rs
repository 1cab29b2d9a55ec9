//! Silent ledger damage is refused loudly: an empty ledger file, counters that
//! disagree with the rows, a user row whose balance disagrees with its totals.
//! Also the bounded runs table (`--keep-runs`).

mod ledger_process;

use billing_server::test_support::{output_text, payment, register};
use std::path::Path;

use billing_api::{AggregateSummary, RegisterUser};
use billing_server::store::{Depth, Store, StoreOptions};
use ledger_process::{ServerProcess, Workspace, run, simulate};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::json;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");

/// A small real ledger: three users, two with payments.
fn make_ledger(path: &Path) {
    let store = Store::open(path).unwrap();
    for sid in ["u-0001", "u-0002", "u-0003"] {
        register(&store, sid, 1);
    }
    for (id, sid, amount) in [("p1", "u-0001", 1_000), ("p2", "u-0002", 250)] {
        store.record_payment(&payment(id, sid, amount), 2).unwrap();
    }
}

/// Rewrites one row of `table` through redb directly.
fn edit_row(
    path: &Path,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        let mut bytes = t.get(key).unwrap().unwrap().value().to_vec();
        edit(&mut bytes);
        t.insert(key, bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn an_empty_ledger_file_is_refused_unless_init_is_given() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 1, 1, 2, 1);
    std::fs::write(ws.ledger(), b"").unwrap();
    let repo = ws.repo();
    let args = ["aggregate", "--once", "--repo", repo.to_str().unwrap()];
    let out = run(&args, &ws.data());
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let message = output_text(&out);
    assert!(message.contains("ledger.redb"), "{message}");
    assert!(message.contains("empty (0 bytes)"), "{message}");
    assert!(
        message.contains("--init") && message.contains("delete the file"),
        "{message}"
    );
    assert_eq!(
        std::fs::metadata(ws.ledger()).unwrap().len(),
        0,
        "left untouched"
    );

    let secret = ws.dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123").unwrap();
    let serve = std::process::Command::new(ledger_process::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "0",
            "--repo",
        ])
        .arg(ws.repo())
        .arg("--data-dir")
        .arg(ws.data())
        .arg("--admin-secret-file")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(!serve.status.success(), "{}", output_text(&serve));
    assert!(
        output_text(&serve).contains("--init"),
        "{}",
        output_text(&serve)
    );

    let mut with_init = args.to_vec();
    with_init.push("--init");
    let out = run(&with_init, &ws.data());
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(std::fs::metadata(ws.ledger()).unwrap().len() > 0);
}

#[test]
fn counters_that_disagree_with_the_rows_are_reported_and_block_writes_until_repaired() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 1, 1, 3, 1);
    make_ledger(&ws.ledger());
    assert_eq!(run(&["verify"], &ws.data()).status.code(), Some(0));
    // MetaRow starts with LedgerCounts::total_users, a postcard varint: 3 -> 4.
    edit_row(&ws.ledger(), META, "ledger", |bytes| {
        assert_eq!(bytes[0], 3);
        bytes[0] = 4;
    });

    let out = run(&["verify"], &ws.data());
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let report = output_text(&out);
    assert!(report.contains("INCONSISTENT"), "{report}");
    assert!(
        report.contains("counter total_users: stored 4, rows say 3"),
        "{report}"
    );
    let out = run(&["verify", "--json"], &ws.data());
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["consistent"], false);
    assert_eq!(report["findings"][0]["what"], "counter total_users");
    assert_eq!(report["stored"]["total_users"], 4);
    assert_eq!(report["recounted"]["total_users"], 3);

    // The server answers reads, refuses writes and says why.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = ServerProcess::start(&ws.data(), &ws.repo());
        let balance = server
            .ok("get_balance", json!({"user_sid": "u-0001"}))
            .await;
        assert_eq!(balance["credit_balance_cents"], 1_000);
        let users = server.ok("list_users", json!({})).await;
        assert_eq!(users["items"].as_array().unwrap().len(), 3);
        let refused = server
            .rpc(
                "record_payment",
                json!({"payment_id": "p3", "user_sid": "u-0003", "amount_cents": 5}),
            )
            .await;
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains("writes refused"), "{message}");
        assert!(
            message.contains("total_users: stored 4, rows say 3"),
            "{message}"
        );
        assert!(
            message.contains("verify --data-dir <dir> --repair"),
            "{message}"
        );
        let (status, body) = server.health().await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["reason"].as_str().unwrap().contains("total_users"),
            "{body}"
        );
        let overview = server.ok("overview", json!({})).await;
        assert_eq!(overview["health"], "failing");
        let log = server.stop();
        assert!(log.contains("ledger check at start failed"), "{log}");
    });

    // The operator repairs the counters; the ledger is whole again.
    let out = run(&["verify", "--repair"], &ws.data());
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("counters rewritten"),
        "{}",
        output_text(&out)
    );
    let store = Store::open(&ws.ledger()).unwrap();
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
    assert!(store.problem().is_none());
}

#[test]
fn a_damaged_user_row_breaks_the_balance_invariant_and_is_named() {
    let ws = Workspace::new();
    make_ledger(&ws.ledger());
    // UserRow: id, last_group, display_name (None), email (None), created_at_ms,
    // then balance_cents as a zigzag varint: 1000 -> 2000 = [0xd0, 0x0f]. Flip a bit.
    edit_row(&ws.ledger(), USERS, "u-0001", |bytes| {
        let at = bytes.windows(2).position(|w| w == [0xd0, 0x0f]).unwrap();
        bytes[at] ^= 0x04;
    });
    let store = Store::open_with(
        &ws.ledger(),
        StoreOptions {
            check: false,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let report = store.verify(Depth::Quick).unwrap();
    assert!(!report.consistent);
    let listed: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(
        listed.iter().any(|f| f.contains("user `u-0001` balance")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|f| f.starts_with("counter total_balance_cents")),
        "{listed:?}"
    );
    drop(store);
    // At open, the same damage refuses writes and keeps reads.
    let store = Store::open(&ws.ledger()).unwrap();
    assert!(store.problem().unwrap().contains("u-0001"));
    assert!(store.get_balance("u-0002").is_ok());
    let err = store
        .register_user(
            &RegisterUser {
                user_sid: "u-0009".into(),
                display_name: None,
                email: None,
            },
            3,
        )
        .unwrap_err();
    assert!(err.to_string().contains("writes refused"), "{err}");
    // A repair of the counters cannot fix a damaged row: verify still fails.
    drop(store);
    let out = run(&["verify", "--repair"], &ws.data());
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("backup"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn the_runs_table_keeps_the_last_n_runs_and_totals_over_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let options = StoreOptions {
        keep_runs: 5,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&path, options).unwrap();
    for i in 0..12u64 {
        let summary = AggregateSummary {
            records_applied: i,
            cents_debited: 10,
            ..AggregateSummary::default()
        };
        assert_eq!(store.record_run(&summary, None).unwrap(), i + 1);
    }
    let runs = store.list_runs(None, 100).unwrap().items;
    let ids: Vec<u64> = runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, vec![12, 11, 10, 9, 8]);
    let totals = store.run_totals().unwrap();
    assert_eq!(totals.runs_recorded, 12);
    assert_eq!(totals.runs_pruned, 7);
    assert_eq!(totals.records_applied, (0..12).sum::<u64>());
    assert_eq!(totals.cents_debited, 120);
    assert_eq!(store.next_run_id().unwrap(), 13);
    drop(store);

    // Reopened with a smaller bound, the next run prunes down to it.
    let store = Store::open_with(
        &path,
        StoreOptions {
            keep_runs: 2,
            ..options
        },
    )
    .unwrap();
    store
        .record_run(&AggregateSummary::default(), None)
        .unwrap();
    let ids: Vec<u64> = store
        .list_runs(None, 100)
        .unwrap()
        .items
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(ids, vec![13, 12]);
    assert_eq!(store.run_totals().unwrap().runs_recorded, 13);
    assert_eq!(store.run_totals().unwrap().runs_pruned, 11);
}

#[test]
fn keep_runs_is_a_flag_of_aggregate() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 1, 1, 2, 1);
    let repo = ws.repo();
    let args = [
        "aggregate",
        "--once",
        "--keep-runs",
        "2",
        "--repo",
        repo.to_str().unwrap(),
    ];
    for _ in 0..4 {
        let out = run(&args, &ws.data());
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let zero = [
        "aggregate",
        "--once",
        "--keep-runs",
        "0",
        "--repo",
        repo.to_str().unwrap(),
    ];
    let out = run(&zero, &ws.data());
    assert!(
        output_text(&out).contains("--keep-runs must be at least 1"),
        "{}",
        output_text(&out)
    );
    let store = Store::open(&ws.ledger()).unwrap();
    let ids: Vec<u64> = store
        .list_runs(None, 100)
        .unwrap()
        .items
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(ids, vec![4, 3]);
    let db_check = redb::Database::open(ws.ledger());
    assert!(db_check.is_err(), "the store holds the file");
    drop(store);
    let db = redb::Database::open(ws.ledger()).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(
        txn.open_table(META)
            .unwrap()
            .get("run_totals")
            .unwrap()
            .is_some()
    );
}
