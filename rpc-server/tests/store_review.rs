//! Exactly-once edge cases of the ledger store: orderings of held, applied,
//! duplicate and conflicting records, overflow, and pagination of the
//! per-user consumed list.

use billing_api::{RecordPayment, RegisterUser};
use billing_server::store::{
    FileBatch, FileOutcome, InvalidRecord, NodeUpdate, Store, UsageRecord,
};

fn rec(key: &str, sid: &str, node: &str, cost: i64) -> Result<UsageRecord, InvalidRecord> {
    Ok(UsageRecord {
        idempotency_key: key.into(),
        user_sid: sid.into(),
        node_name: node.into(),
        cost_cents: cost,
        resource: None,
        quantity: None,
        unit: None,
        period_start: None,
        period_end: None,
    })
}

fn update(
    node: &str,
    commit: &str,
    path: &str,
    records: Vec<Result<UsageRecord, InvalidRecord>>,
) -> NodeUpdate {
    NodeUpdate {
        node_name: node.into(),
        head_commit: commit.into(),
        tree_id: format!("tree-{commit}"),
        files: vec![FileBatch {
            path: path.into(),
            blob_id: format!("blob-{commit}-{path}"),
            outcome: FileOutcome::Decoded(records),
        }],
    }
}

fn register(store: &Store, sid: &str) {
    store
        .register_user(
            &RegisterUser {
                user_sid: sid.into(),
                display_name: None,
                email: None,
            },
            1,
        )
        .unwrap();
}

fn pay(store: &Store, id: &str, sid: &str, amount: i64) {
    store
        .record_payment(
            &RecordPayment {
                payment_id: id.into(),
                user_sid: sid.into(),
                amount_cents: amount,
                kind: None,
                reference: None,
            },
            2,
        )
        .unwrap();
}

/// A record whose own user's figures and the sum of all balances fit in i64
/// must apply, whatever else the same transaction applied.
#[test]
fn a_record_that_overflows_nothing_applies_after_a_huge_one() {
    let store = Store::in_memory().unwrap();
    register(&store, "a");
    register(&store, "b");
    pay(&store, "p1", "b", 10);
    let out = store
        .apply_node(
            update(
                "n1",
                "c1",
                "f",
                vec![rec("k1", "a", "n1", i64::MAX), rec("k2", "b", "n1", 2)],
            ),
            3,
        )
        .unwrap();
    assert_eq!((out.applied, out.invalid), (2, 0), "{out:?}");
    assert_eq!(store.get_balance("b").unwrap().credit_balance_cents, 8);
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
}
