//! The ledger on a real redb file: persistence across reopen and exclusive access.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use billing_api::{RecordPayment, RegisterUser};
use billing_server::store::{FileBatch, FileOutcome, NodeUpdate, Store, StoreError, UsageRecord};

const HOLDER_ENV: &str = "BILLING_STORE_TEST_HOLD";

fn user(sid: &str) -> RegisterUser {
    RegisterUser {
        user_sid: sid.into(),
        display_name: None,
        email: None,
    }
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    {
        let store = Store::open(&path).unwrap();
        store.register_user(&user("u1"), 1).unwrap();
        store
            .record_payment(
                &RecordPayment {
                    payment_id: "p1".into(),
                    user_sid: "u1".into(),
                    amount_cents: 1_000,
                    kind: None,
                    reference: Some("invoice 7".into()),
                },
                2,
            )
            .unwrap();
        let update = NodeUpdate {
            node_name: "n1".into(),
            head_commit: "c1".into(),
            tree_id: "t1".into(),
            files: vec![FileBatch {
                path: "nodes/n1/usage_2026-11-27-10.otoml".into(),
                blob_id: "b1".into(),
                outcome: FileOutcome::Decoded(vec![Ok(UsageRecord {
                    idempotency_key: "k1".into(),
                    user_sid: "u1".into(),
                    node_name: "n1".into(),
                    cost_cents: 250,
                    resource: None,
                    quantity: None,
                    unit: None,
                    period_start: None,
                    period_end: None,
                })]),
            }],
        };
        assert_eq!(store.apply_node(update, 3).unwrap().applied, 1);
    }
    let store = Store::open(&path).unwrap();
    let balance = store.get_balance("u1").unwrap();
    assert_eq!(balance.credit_balance_cents, 750);
    assert_eq!(
        store.node("n1").unwrap().unwrap().tree_id.as_deref(),
        Some("t1")
    );
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
    assert_eq!(store.overview_counts().unwrap().consumed_records, 1);
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let _first = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(err @ StoreError::Locked { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains("ledger.redb"), "{msg}");
            assert!(msg.contains("aggregate_now"), "{msg}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

/// Child half of `open_held_by_another_process_is_locked`: holds the store
/// until its stdin closes.
#[test]
#[ignore = "helper process of open_held_by_another_process_is_locked"]
fn hold_store_open() {
    let Ok(path) = std::env::var(HOLDER_ENV) else {
        panic!(
            "{HOLDER_ENV} is not set: this is the child half of \
             open_held_by_another_process_is_locked, which runs it; run that test instead"
        );
    };
    let _store = Store::open(std::path::Path::new(&path)).unwrap();
    println!("holding");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn open_held_by_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hold_store_open", "--ignored", "--nocapture"])
        .env(HOLDER_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "holder exited early");
        if line.trim() == "holding" {
            break;
        }
    }
    let result = Store::open(&path);
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(
        matches!(result, Err(StoreError::Locked { .. })),
        "expected Locked, got {result:?}"
    );
    // Once the holder is gone the file opens again.
    Store::open(&path).unwrap();
}
