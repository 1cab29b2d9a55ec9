//! The redb indexes of `list_users`: their key order, the format 3
//! migration that builds them, and `verify` and `--repair` on them.

use billing_api::{UserFilter, UserSort};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::*;
use crate::store::tests::{pay, rec, register};
use crate::store::{Depth, FileBatch, FileOutcome, NodeUpdate, RedbStore, Store, UserQuery};

/// The balance order of a store, every page of 2.
fn by_balance(store: &Store) -> Vec<(i64, String)> {
    crate::test_support::all_pages(|cursor| {
        let query = UserQuery::new(UserSort::BalanceAsc, UserFilter::default(), cursor)?;
        store.list_users_by(&query, 2)
    })
    .into_iter()
    .map(|u| (u.credit_balance_cents, u.user_sid))
    .collect()
}

fn debit(store: &Store, key: &str, sid: &str, cost: i64) {
    let update = NodeUpdate {
        node_name: "n1".into(),
        head_commit: format!("c-{key}"),
        tree_id: format!("t-{key}"),
        files: vec![FileBatch {
            path: "nodes/n1/usage_2026-01-01-00.otoml".into(),
            blob_id: format!("b-{key}"),
            outcome: FileOutcome::Decoded(vec![Ok(rec(key, sid, "n1", cost))]),
        }],
    };
    assert_eq!(store.apply_node(update, 3).unwrap().applied, 1);
}

/// Users with balances 300 (a), -7 (b), 0 (c), -1200 (d), 300 (e).
fn ledger_of_five(store: &Store) {
    for sid in ["a", "b", "c", "d", "e"] {
        register(store, sid);
    }
    pay(store, "p-a", "a", 300).unwrap();
    pay(store, "p-e", "e", 300).unwrap();
    debit(store, "k-b", "b", 7);
    debit(store, "k-d", "d", 1200);
}

#[test]
fn integer_keys_order_by_value_negative_ones_included() {
    let db = Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .unwrap();
    let table: TableDefinition<(i64, &str), ()> = TableDefinition::new("t");
    let values = [0, -1, i64::MIN, 1, -256, 255, i64::MAX, -2];
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        for v in values {
            t.insert((v, "s"), ()).unwrap();
        }
        t.insert((-1, "a"), ()).unwrap();
    }
    txn.commit().unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(table).unwrap();
    let got: Vec<(i64, String)> = t
        .iter()
        .unwrap()
        .map(|e| {
            let (k, _) = e.unwrap();
            let (v, s) = k.value();
            (v, s.to_string())
        })
        .collect();
    let mut want: Vec<(i64, String)> = values.iter().map(|v| (*v, "s".to_string())).collect();
    want.push((-1, "a".into()));
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn the_indexes_follow_every_balance_change() {
    let store = Store::in_memory().unwrap();
    ledger_of_five(&store);
    let names = |v: Vec<(i64, String)>| v.into_iter().map(|(_, s)| s).collect::<Vec<_>>();
    assert_eq!(names(by_balance(&store)), ["d", "b", "c", "a", "e"]);
    // A payment and a debit move their users; the old entries go.
    pay(&store, "p-d", "d", 2000).unwrap();
    debit(&store, "k-a", "a", 301);
    assert_eq!(
        by_balance(&store),
        [
            (-7, "b".to_string()),
            (-1, "a".into()),
            (0, "c".into()),
            (300, "e".into()),
            (800, "d".into())
        ]
    );
    let Store::Redb(redb) = &store else {
        unreachable!()
    };
    let db = redb.db().unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(tables::USERS_BY_BALANCE)
            .unwrap()
            .len()
            .unwrap(),
        5
    );
    assert_eq!(
        txn.open_table(tables::USERS_BY_CONSUMED)
            .unwrap()
            .len()
            .unwrap(),
        5
    );
    let report = store.verify(Depth::Full).unwrap();
    assert!(report.consistent, "{}", report.summary());
}

/// Makes the ledger at `path` look as a format 2 ledger does: no indexes,
/// format 2 stamped.
fn downgrade_to_format_2(path: &std::path::Path) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.delete_table(tables::USERS_BY_BALANCE).unwrap();
    txn.delete_table(tables::USERS_BY_CONSUMED).unwrap();
    txn.open_table(tables::META)
        .unwrap()
        .insert(
            crate::store::format::FORMAT_KEY,
            2u32.to_le_bytes().as_slice(),
        )
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn opening_a_format_2_ledger_builds_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let store = Store::open(&path).unwrap();
    ledger_of_five(&store);
    let before = by_balance(&store);
    drop(store);
    downgrade_to_format_2(&path);

    let store = Store::open(&path).unwrap();
    assert_eq!(by_balance(&store), before);
    let report = store.verify(Depth::Full).unwrap();
    assert!(report.consistent, "{}", report.summary());
    assert!(store.problem().is_none(), "{:?}", store.problem());
    drop(store);
    let db = Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let format = txn.open_table(tables::META).unwrap();
    let stamped = format
        .get(crate::store::format::FORMAT_KEY)
        .unwrap()
        .unwrap();
    assert_eq!(stamped.value(), crate::store::LEDGER_FORMAT.to_le_bytes());
}

#[test]
fn verify_finds_a_damaged_index_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let store = RedbStore::open(&path).unwrap();
    ledger_of_five(&Store::Redb(store.clone()));
    {
        let db = store.db().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut index = txn.open_table(tables::USERS_BY_BALANCE).unwrap();
            // b's entry says -7; move it to a balance b does not have.
            assert!(index.remove((-7, "b")).unwrap().is_some());
            index.insert((-8, "b"), 0).unwrap();
            let mut consumed = txn.open_table(tables::USERS_BY_CONSUMED).unwrap();
            consumed.insert((5, "ghost"), ()).unwrap();
        }
        txn.commit().unwrap();
    }
    let report = store.verify(Depth::Full).unwrap();
    assert!(!report.consistent);
    let text = report.summary();
    assert!(
        text.contains("index users_by_balance, user `b`") && text.contains("balance -7"),
        "{text}"
    );
    assert!(
        text.contains("index users_by_consumed (one entry per user): stored 6 entries"),
        "{text}"
    );
    let quick = store.verify(Depth::Quick).unwrap();
    assert!(!quick.consistent, "the entry counts differ: {quick:?}");
    // A listing that meets the damage says so instead of listing a wrong order.
    let store = Store::Redb(store);
    let err = store
        .list_users_by(
            &UserQuery::new(UserSort::BalanceAsc, UserFilter::default(), None).unwrap(),
            10,
        )
        .unwrap_err();
    assert!(err.to_string().contains("verify --repair"), "{err}");

    store.repair_counters().unwrap();
    let report = store.verify(Depth::Full).unwrap();
    assert!(report.consistent, "{}", report.summary());
    assert_eq!(
        by_balance(&store),
        [
            (-1200, "d".to_string()),
            (-7, "b".into()),
            (0, "c".into()),
            (300, "a".into()),
            (300, "e".into())
        ]
    );
}
