//! Edge cases of the ledger store's exactly-once rules, each once: a small
//! charge applied after a near-`i64::MAX` one in the same pass, a sum of
//! balances whose partial sums overflow, and a record rejected only when its
//! blob is read again. The random sequences against the model of the ledger
//! rules are in `store_invariants.rs`.

mod common;

use billing_server::store::{InvalidRecord, NodeUpdate, Store};
use billing_server::test_support::{file, rec, update};
use common::{pay, register};

/// One file of node `n1`: `i64::MAX` cents for user `a`, then 2 for user `b`.
fn huge_then_small() -> NodeUpdate {
    let records = vec![
        Ok(rec("k1", "a", "n1", i64::MAX)),
        Ok(rec("k2", "b", "n1", 2)),
    ];
    update("n1", "c1", vec![file("f", "blob-c1-f", records)])
}

/// A record whose own user's figures and the sum of all balances fit in i64
/// must apply, whatever else the same transaction applied.
#[test]
fn a_record_that_overflows_nothing_applies_after_a_huge_one() {
    let store = Store::in_memory().unwrap();
    register(&store, &["a", "b"]);
    pay(&store, "p1", "b", 10);
    let out = store.apply_node(huge_then_small(), 3).unwrap();
    assert_eq!((out.applied, out.invalid), (2, 0), "{out:?}");
    assert_eq!(store.get_balance("b").unwrap().credit_balance_cents, 8);
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
}

/// The sum of all balances fits in i64 even when a partial sum, in the order
/// `recount` walks users, does not.
#[test]
fn recount_sums_balances_that_fit_in_any_order() {
    let store = Store::in_memory().unwrap();
    register(&store, &["a", "b", "c"]);
    pay(&store, "p1", "c", 5);
    let out = store.apply_node(huge_then_small(), 3).unwrap();
    assert_eq!(out.applied, 2, "{out:?}");
    let counts = store.overview_counts().unwrap();
    assert_eq!(counts.total_balance_cents, 3 - i128::from(i64::MAX));
    assert_eq!(store.recount().unwrap(), counts);
}

/// A blob read again (a force-push back to it) with a verdict that changed in
/// between (`--max-record-cents` lowered): a record valid the first time and
/// invalid now must be listed, not only counted. Found by the simulator
/// (`scripts/sim.sh --seed 51 --steps 96`).
#[test]
fn a_record_rejected_only_on_a_second_read_of_its_blob_is_listed() {
    let store = Store::in_memory().unwrap();
    register(&store, &["a"]);
    let invalid = |index: usize, reason: &str| InvalidRecord {
        index,
        idempotency_key: Some(format!("k{index}")),
        user_sid: Some("a".into()),
        reason: reason.into(),
        raw: format!("idempotency_key = \"k{index}\""),
    };
    let read = |commit: &str, records| {
        let path = "nodes/n1/usage_2026-11-27-10.otoml";
        update("n1", commit, vec![file(path, "blob-b", records)])
    };
    let first = vec![
        Err(invalid(0, "cost_cents must be >= 0, got -1")),
        Ok(rec("k1", "a", "n1", 600)),
        Err(invalid(2, "cost_cents must be >= 0, got -2")),
    ];
    let out = store.apply_node(read("c1", first), 3).unwrap();
    assert_eq!((out.applied, out.invalid), (1, 2), "{out:?}");
    let again = vec![
        Err(invalid(0, "cost_cents must be >= 0, got -1")),
        Err(invalid(1, "cost_cents 600 is over the limit of 500")),
        Err(invalid(2, "cost_cents must be >= 0, got -2")),
    ];
    let out = store.apply_node(read("c2", again), 4).unwrap();
    assert_eq!(out.invalid, 3, "{out:?}");
    let listed: Vec<Option<u32>> = store
        .list_rejected(None, 100)
        .unwrap()
        .items
        .iter()
        .map(|item| item.record_index)
        .collect();
    assert_eq!(listed.len(), 3, "each rejected record once: {listed:?}");
    assert!(listed.contains(&Some(1)), "{listed:?}");
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
}
