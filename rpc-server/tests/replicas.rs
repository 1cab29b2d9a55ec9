//! Several servers on one PostgreSQL ledger: each handle below is what one
//! replica opens. One pass at a time, held usage released by any replica, and
//! exactly-once even when two replicas apply the same files at once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use billing_server::store::{FileBatch, FileOutcome, NodeUpdate, Store};
use billing_server::test_support::{rec, register};
use common::PgTestDb;

fn update(node: &str, keys: std::ops::Range<u32>, sid: &str) -> NodeUpdate {
    NodeUpdate {
        node_name: node.into(),
        head_commit: "c1".into(),
        tree_id: "t1".into(),
        files: vec![FileBatch {
            path: format!("nodes/{node}/usage_2026-11-27-10.otoml"),
            blob_id: "b1".into(),
            outcome: FileOutcome::Decoded(
                keys.map(|i| Ok(rec(&format!("k{i}"), sid, node, 1)))
                    .collect(),
            ),
        }],
    }
}

#[test]
fn one_pass_at_a_time_across_replicas() {
    let db = PgTestDb::create();
    let (a, b) = (db.store(), db.store());
    a.begin_pass().unwrap();
    let waited = Arc::new(Barrier::new(2));
    let a_ended = Arc::new(AtomicBool::new(false));
    let other = {
        let (b, waited, a_ended) = (b.clone(), waited.clone(), a_ended.clone());
        std::thread::spawn(move || {
            waited.wait();
            b.begin_pass().unwrap();
            let after_a = a_ended.load(Ordering::SeqCst);
            b.end_pass();
            after_a
        })
    };
    waited.wait();
    // Time for B to ask; it must still be waiting when A ends.
    std::thread::sleep(Duration::from_millis(400));
    a_ended.store(true, Ordering::SeqCst);
    a.end_pass();
    assert!(
        other.join().unwrap(),
        "replica B started its pass while A held the lock"
    );
}

#[test]
fn a_replica_dying_mid_pass_releases_the_lock() {
    let db = PgTestDb::create();
    let b = db.store();
    {
        let a = db.store();
        a.begin_pass().unwrap();
        // A's process ends: its handle and connections go away without end_pass.
        drop(a);
    }
    // The pass connection was closed with the handle; the lock went with it.
    let asked = Instant::now();
    b.begin_pass().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    b.end_pass();
}

#[test]
fn held_usage_is_released_by_a_registration_on_any_replica() {
    let db = PgTestDb::create();
    let (a, b) = (db.store(), db.store());
    let out = a.apply_node(update("n1", 0..5, "newcomer"), 10).unwrap();
    assert_eq!(out.pending, 5);
    let user = register(&b, "newcomer", 1);
    assert_eq!(
        user.total_consumed_cents, 5,
        "applied at registration, on B"
    );
    assert_eq!(a.get_balance("newcomer").unwrap().credit_balance_cents, -5);
    assert_eq!(a.overview_counts().unwrap().pending_records, 0);
}

#[test]
fn two_replicas_applying_the_same_files_at_once_apply_each_record_once() {
    let db = PgTestDb::create();
    let stores: Vec<Store> = (0..4).map(|_| db.store()).collect();
    register(&stores[0], "u", 1);
    let start = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                // Overlapping ranges: every key is offered by at least two replicas.
                let mut applied = 0;
                for node in ["n1", "n2"] {
                    applied += store
                        .apply_node(update(node, 0..2_000, "u"), 10)
                        .unwrap()
                        .applied;
                }
                applied
            })
        })
        .collect();
    let applied: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(applied, 2_000, "keys are global: n2 repeats n1's keys");
    let store = &stores[1];
    assert_eq!(store.overview_counts().unwrap().consumed_records, 2_000);
    assert_eq!(store.get_balance("u").unwrap().credit_balance_cents, -2_000);
    let report = store.verify(billing_server::store::Depth::Full).unwrap();
    assert!(report.consistent, "{}", report.summary());
}

#[test]
fn payments_and_registrations_on_several_replicas_lose_no_update() {
    let db = PgTestDb::create();
    let stores: Vec<Store> = (0..3).map(|_| db.store()).collect();
    register(&stores[0], "u", 1);
    let threads = 24;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, start) = (stores[i % stores.len()].clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                if i % 4 == 0 {
                    // A registration rewrites the user row: it must not undo a payment.
                    register(&store, "u", 1);
                }
                store
                    .record_payment(
                        &billing_api::RecordPayment {
                            payment_id: format!("p{i}"),
                            user_sid: "u".into(),
                            amount_cents: 100,
                            kind: None,
                            reference: None,
                        },
                        2,
                    )
                    .unwrap();
                store
                    .apply_node(
                        update(&format!("n{i}"), i as u32 * 10..i as u32 * 10 + 10, "u"),
                        3,
                    )
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let user = stores[2].get_user("u").unwrap();
    assert_eq!(user.total_paid_cents, 100 * threads as i64);
    assert_eq!(user.total_consumed_cents, 10 * threads as i64);
    assert_eq!(user.credit_balance_cents, 90 * threads as i64);
    let report = stores[1]
        .verify(billing_server::store::Depth::Full)
        .unwrap();
    assert!(report.consistent, "{}", report.summary());
}
