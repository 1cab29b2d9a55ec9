//! Unit tests of the ledger. Those in `both!` run on each backend: redb's
//! in-memory backend and a fresh PostgreSQL database (see `test_support`);
//! the rest reach into redb's tables and run on redb only.

use billing_api::{NodeStatus, RegisterUser, RejectReason};

use super::*;

pub(super) use crate::test_support::rec;
use crate::test_support::{file, payment, update};

/// Registers `sid` at 1,000 ms.
pub(super) fn register(store: &Store, sid: &str) -> UserBilling {
    crate::test_support::register(store, sid, 1_000)
}

pub(super) fn pay(store: &Store, id: &str, sid: &str, amount: i64) -> Result<Payment, StoreError> {
    store.record_payment(&payment(id, sid, amount), 2_000)
}

/// Runs each test body on both backends, as `NAME::redb` and `NAME::postgres`.
macro_rules! both {
    ($(fn $name:ident($store:ident) $body:block)*) => {$(
        mod $name {
            use super::*;

            fn run($store: Store) $body

            #[test]
            fn redb() {
                run(Store::in_memory().unwrap());
            }

            #[test]
            fn postgres() {
                let db = crate::test_support::PgTestDb::create();
                run(db.store());
            }
        }
    )*};
}

both! {
    fn a_run_error_quoting_a_nul_character_is_recorded(store) {
        // An error message may quote a hostile file; PostgreSQL's jsonb
        // refuses NUL, so it is stored as U+FFFD there.
        let summary = AggregateSummary {
            errors: vec![billing_api::NodeError {
                node_name: Some("n\0x".into()),
                message: "bad\0byte".into(),
            }],
            ..AggregateSummary::default()
        };
        assert_eq!(store.record_run(&summary, None).unwrap(), 1);
        let stored = store.last_run().unwrap().unwrap();
        let message = &stored.errors[0].message;
        assert!(message.starts_with("bad") && message.ends_with("byte"), "{message}");
    }

    fn register_is_an_idempotent_upsert(store) {
        let first = store
            .register_user(
                &RegisterUser {
                    user_sid: "u1".into(),
                    display_name: Some("Ann".into()),
                    email: None,
                },
                5,
            )
            .unwrap();
        assert_eq!(first.created_at, billing_api::millis_to_rfc3339(5));
        let second = store
            .register_user(
                &RegisterUser {
                    user_sid: "u1".into(),
                    display_name: None,
                    email: Some("a@x".into()),
                },
                99,
            )
            .unwrap();
        assert_eq!(second.display_name.as_deref(), Some("Ann"));
        assert_eq!(second.email.as_deref(), Some("a@x"));
        assert_eq!(second.created_at, first.created_at);
        assert_eq!(store.overview_counts().unwrap().total_users, 1);
        assert!(matches!(
            store.get_user("nobody"),
            Err(StoreError::NotFound { what: "user", .. })
        ));
        assert!(matches!(
            store.register_user(
                &RegisterUser {
                    user_sid: String::new(),
                    display_name: None,
                    email: None
                },
                1
            ),
            Err(StoreError::InvalidInput(_))
        ));
    }

    fn payments_are_idempotent_and_conflicts_change_nothing(store) {
        register(&store, "u1");
        let p = pay(&store, "p1", "u1", 500).unwrap();
        assert_eq!(p.kind, "topup");
        assert_eq!(pay(&store, "p1", "u1", 500).unwrap(), p);
        let err = pay(&store, "p1", "u1", 501).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert!(err.to_string().contains("p1") && err.to_string().contains("501"));
        assert_eq!(store.get_balance("u1").unwrap().credit_balance_cents, 500);
        assert!(matches!(
            pay(&store, "p2", "u1", 0),
            Err(StoreError::InvalidInput(_))
        ));
        assert!(matches!(
            pay(&store, "p3", "ghost", 1),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.list_payments(None, None, 10).unwrap().items.len(), 1);
    }

    fn payment_overflow_is_an_error_and_changes_nothing(store) {
        register(&store, "u1");
        pay(&store, "p1", "u1", i64::MAX).unwrap();
        let err = pay(&store, "p2", "u1", 1).unwrap_err();
        assert!(matches!(err, StoreError::Overflow(_)), "{err}");
        assert_eq!(
            store.get_balance("u1").unwrap().credit_balance_cents,
            i64::MAX
        );
        assert_eq!(store.list_payments(None, None, 10).unwrap().items.len(), 1);
        assert_eq!(store.recount().unwrap(), store.overview_counts().unwrap());
    }

    fn apply_debits_dedups_and_flags_conflicts(store) {
        register(&store, "u1");
        pay(&store, "p1", "u1", 100).unwrap();
        let up = update(
            "n1",
            "c1",
            vec![file(
                "nodes/n1/usage_2026-11-27-10.otoml",
                "b1",
                vec![
                    Ok(rec("k1", "u1", "n1", 30)),
                    Ok(rec("k2", "u1", "n1", 90)),
                    Ok(rec("k1", "u1", "n1", 30)),
                    Ok(rec("k1", "u1", "n1", 31)),
                ],
            )],
        );
        let out = store.apply_node(up.clone(), 10).unwrap();
        assert_eq!(
            out,
            ApplyOutcome {
                files_read: 1,
                applied: 2,
                duplicate: 1,
                conflict: 1,
                cents_debited: 120,
                ..Default::default()
            }
        );
        let bal = store.get_balance("u1").unwrap();
        assert_eq!(bal.credit_balance_cents, -20);
        assert!(bal.overdrawn);
        let rejected = store.list_rejected(None, 10).unwrap().items;
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, RejectReason::Conflict);
        assert_eq!(rejected[0].cost_cents, Some(31));
        assert_eq!(rejected[0].existing.as_ref().unwrap().cost_cents, 30);

        // Same update again: nothing changes.
        let counts = store.overview_counts().unwrap();
        let again = store.apply_node(up, 20).unwrap();
        assert_eq!(again.applied, 0);
        assert_eq!(again.duplicate, 3);
        assert_eq!(store.overview_counts().unwrap(), counts);
        assert_eq!(store.get_balance("u1").unwrap().credit_balance_cents, -20);
        assert_eq!(counts, store.recount().unwrap());
        assert_eq!(counts.overdrawn_users, 1);
        let consumed = store.list_consumed(None, None, 10).unwrap().items;
        assert_eq!(consumed.len(), 2);
        assert_eq!(consumed[0].idempotency_key, "k2");
        assert_eq!(consumed[1].commit_sha, "c1");
        assert_eq!(consumed[1].file_path, "nodes/n1/usage_2026-11-27-10.otoml");
        assert_eq!(consumed[1].node_name, "n1");
        assert_eq!(consumed[1].applied_at, billing_api::millis_to_rfc3339(10));
        let node = store.node("n1").unwrap().unwrap();
        assert_eq!(node.records_consumed_total, 2);
        assert_eq!(node.last_commit_sha.as_deref(), Some("c1"));
        assert_eq!(node.status, NodeStatus::Ok);
        assert_eq!(
            store
                .consumed_files("n1")
                .unwrap()
                .get("nodes/n1/usage_2026-11-27-10.otoml"),
            Some(&"b1".to_string())
        );
    }

    fn unknown_user_is_held_then_applied_on_register(store) {
        let up = update(
            "n1",
            "c1",
            vec![file(
                "f",
                "b",
                vec![
                    Ok(rec("k1", "late", "n1", 7)),
                    Ok(rec("k2", "late", "n1", 8)),
                ],
            )],
        );
        let out = store.apply_node(up.clone(), 10).unwrap();
        assert_eq!(out.pending, 2);
        let counts = store.overview_counts().unwrap();
        assert_eq!((counts.pending_records, counts.rejected_items), (2, 2));
        let items = store.list_rejected(None, 10).unwrap().items;
        assert!(items.iter().all(|i| i.reason == RejectReason::UnknownUser));
        // Held again by a re-read: a duplicate, not a second hold.
        assert_eq!(store.apply_node(up, 11).unwrap().duplicate, 2);
        // Held version conflicts with a different one.
        let out = store
            .apply_node(
                update(
                    "n1",
                    "c2",
                    vec![file("g", "b2", vec![Ok(rec("k1", "late", "n1", 9))])],
                ),
                12,
            )
            .unwrap();
        assert_eq!(out.conflict, 1);

        let user = register(&store, "late");
        assert_eq!(user.credit_balance_cents, -15);
        assert_eq!(user.total_consumed_cents, 15);
        let counts = store.overview_counts().unwrap();
        assert_eq!(counts.pending_records, 0);
        assert_eq!(counts.rejected_items, 1);
        assert_eq!(counts.consumed_records, 2);
        assert_eq!(counts, store.recount().unwrap());
        assert_eq!(store.node("n1").unwrap().unwrap().records_consumed_total, 2);
        let consumed = store.list_consumed(Some("late"), None, 10).unwrap().items;
        assert_eq!(consumed.len(), 2);
        // Applied at registration, with the provenance of where it was first read.
        assert!(
            consumed
                .iter()
                .all(|c| c.commit_sha == "c1" && c.file_path == "f")
        );
        assert!(
            consumed
                .iter()
                .all(|c| c.applied_at == billing_api::millis_to_rfc3339(1_000))
        );
        assert_eq!(store.apply_pending(20).unwrap(), ApplyOutcome::default());
    }

    fn bad_files_and_records_are_rejected_once(store) {
        register(&store, "u1");
        let bad = InvalidRecord {
            index: 1,
            idempotency_key: Some("k9".into()),
            user_sid: Some("u1".into()),
            reason: "cost_cents must be >= 0".into(),
            raw: "cost_cents = -1".into(),
        };
        let up = update(
            "n1",
            "c1",
            vec![
                FileBatch {
                    path: "a".into(),
                    blob_id: "ba".into(),
                    outcome: FileOutcome::Unparseable("expected `=`".into()),
                },
                FileBatch {
                    path: "b".into(),
                    blob_id: "bb".into(),
                    outcome: FileOutcome::TooLarge { size: 10, limit: 5 },
                },
                file("c", "bc", vec![Ok(rec("k1", "u1", "n1", 1)), Err(bad)]),
            ],
        );
        let out = store.apply_node(up.clone(), 1).unwrap();
        assert_eq!(
            (out.files_rejected, out.files_read, out.invalid, out.applied),
            (2, 1, 1, 1)
        );
        assert_eq!(store.overview_counts().unwrap().rejected_items, 3);
        store.apply_node(up, 2).unwrap();
        assert_eq!(store.overview_counts().unwrap().rejected_items, 3);
        let items = store.list_rejected(None, 10).unwrap().items;
        let reasons: Vec<_> = items.iter().map(|i| i.reason).collect();
        assert_eq!(
            reasons,
            [
                RejectReason::Invalid,
                RejectReason::TooLarge,
                RejectReason::Unparseable
            ]
        );
        assert!(items[2].detail.contains("fix the file"));
    }

    fn usage_overflow_rejects_the_record_only(store) {
        register(&store, "u1");
        let up = update(
            "n1",
            "c1",
            vec![file(
                "f",
                "b",
                vec![
                    Ok(rec("k1", "u1", "n1", i64::MAX)),
                    Ok(rec("k2", "u1", "n1", 5)),
                    Ok(rec("k3", "u1", "n1", 1)),
                ],
            )],
        );
        let out = store.apply_node(up, 1).unwrap();
        // k1 applies; k2 and k3 would push total_consumed past i64::MAX.
        assert_eq!((out.applied, out.invalid), (1, 2), "{out:?}");
        let b = store.get_balance("u1").unwrap();
        assert_eq!(b.credit_balance_cents, -i64::MAX);
        assert_eq!(b.total_consumed_cents, i64::MAX);
        let items = store.list_rejected(None, 10).unwrap().items;
        assert!(items.iter().all(|i| i.detail.contains("overflow")));
        assert_eq!(store.recount().unwrap(), store.overview_counts().unwrap());
    }

    fn one_users_huge_charge_blocks_no_one_else(store) {
        register(&store, "mallory");
        register(&store, "victim");
        pay(&store, "p1", "victim", 1000).unwrap();
        let up = update(
            "n1",
            "c1",
            vec![file(
                "f",
                "b",
                vec![
                    Ok(rec("k1", "mallory", "n1", i64::MAX - 10)),
                    Ok(rec("k2", "mallory", "n1", 20)),
                    Ok(rec("k3", "victim", "n1", 5000)),
                ],
            )],
        );
        let out = store.apply_node(up, 1).unwrap();
        // The sum of all balances is 128-bit: only mallory's own total overflows.
        assert_eq!((out.applied, out.invalid), (2, 1), "{out:?}");
        assert_eq!(
            store.get_balance("victim").unwrap().credit_balance_cents,
            -4000
        );
        let items = store.list_rejected(None, 10).unwrap().items;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].idempotency_key.as_deref(), Some("k2"));
        assert!(
            items[0].detail.contains("the user's total consumed"),
            "{}",
            items[0].detail
        );
        assert_eq!(
            store.overview_counts().unwrap().total_balance_cents,
            1000 - 5000 - i128::from(i64::MAX - 10)
        );
        // Payments raise the sum of all balances past i64 without refusing anyone.
        pay(&store, "p2", "victim", i64::MAX - 1000).unwrap();
        pay(&store, "p3", "mallory", i64::MAX).unwrap();
        assert_eq!(
            store.overview_counts().unwrap().total_balance_cents,
            i128::from(i64::MAX) * 2 - 5000 - i128::from(i64::MAX - 10)
        );
        assert_eq!(store.recount().unwrap(), store.overview_counts().unwrap());
    }

    fn pages_walk_everything_once(store) {
        for i in 0..25 {
            register(&store, &format!("u{i:02}"));
            pay(&store, &format!("p{i}"), &format!("u{i:02}"), 10).unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_users(cursor.as_deref(), 10).unwrap();
            seen.extend(page.items.into_iter().map(|u| u.user_sid));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));

        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_payments(None, cursor.as_deref(), 7).unwrap();
            ids.extend(page.items.into_iter().map(|p| p.payment_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(ids.len(), 25);
        assert_eq!(ids[0], "p24");
        assert!(matches!(
            store.list_payments(None, Some("zz"), 7),
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(
            store
                .list_payments(Some("u03"), None, 7)
                .unwrap()
                .items
                .len(),
            1
        );
    }

    fn runs_get_sequential_ids_and_the_clean_head(store) {
        assert_eq!(store.next_run_id().unwrap(), 1);
        assert_eq!(store.last_run().unwrap(), None);
        let summary = AggregateSummary::default();
        assert_eq!(store.record_run(&summary, Some("h1")).unwrap(), 1);
        assert_eq!(store.record_run(&summary, None).unwrap(), 2);
        assert_eq!(store.clean_head().unwrap().as_deref(), Some("h1"));
        assert_eq!(store.last_run().unwrap().unwrap().run_id, 2);
        let runs = store.list_runs(None, 1).unwrap();
        assert_eq!(runs.items[0].run_id, 2);
        let next = store.list_runs(runs.next_cursor.as_deref(), 1).unwrap();
        assert_eq!(next.items[0].run_id, 1);
        assert_eq!(next.next_cursor, None);
        assert_eq!(store.next_run_id().unwrap(), 3);

        store.node_failed("n1", "git said no", 5).unwrap();
        let node = store.nodes().unwrap().remove(0);
        assert_eq!(node.status, NodeStatus::Error);
        assert_eq!(node.last_error.as_deref(), Some("git said no"));
        assert_eq!(
            node.to_api().last_run_at,
            Some(billing_api::millis_to_rfc3339(5))
        );
    }

}

#[test]
fn held_users_are_found_one_by_one() {
    let redb = RedbStore::in_memory().unwrap();
    let store = Store::Redb(redb.clone());
    let max_key = "\u{10FFFF}".repeat(64); // 256 bytes, the longest key allowed
    let records = vec![
        Ok(rec("k1", "a", "n1", 1)),
        Ok(rec(&max_key, "a", "n1", 1)),
        Ok(rec("k2", "b", "n1", 2)),
        Ok(rec("k3", "b", "n1", 2)),
        Ok(rec("k4", "c", "n1", 3)),
    ];
    assert_eq!(
        store
            .apply_node(update("n1", "c1", vec![file("f", "b", records)]), 1)
            .unwrap()
            .pending,
        5
    );
    let held = redb
        .write("test", |txn| super::redb_rows::ledger(txn, 1)?.held_users())
        .unwrap();
    assert_eq!(held, ["a", "b", "c"]);
    assert_eq!(store.apply_pending(2).unwrap().applied, 0);
    assert_eq!(register(&store, "b").total_consumed_cents, 4);
    let counts = store.overview_counts().unwrap();
    assert_eq!(counts.pending_records, 3);
    assert_eq!(counts, store.recount().unwrap());
}

#[test]
fn a_failing_apply_changes_nothing() {
    let redb = RedbStore::in_memory().unwrap();
    let store = Store::Redb(redb.clone());
    register(&store, "u1");
    // Damage the ledger: a consumed key whose row is missing, so meeting it fails.
    redb.write("damage", |txn| {
        txn.open_table(tables::CONSUMED_KEYS)?
            .insert("broken", 999)?;
        Ok(())
    })
    .unwrap();
    let before = store.overview_counts().unwrap();
    let up = update(
        "n1",
        "c1",
        vec![file(
            "f",
            "b",
            vec![
                Ok(rec("k1", "u1", "n1", 5)),
                Ok(rec("broken", "u1", "n1", 5)),
            ],
        )],
    );
    let err = store.apply_node(up, 1).unwrap_err();
    assert!(matches!(err, StoreError::Storage(_)), "{err}");
    assert!(err.to_string().contains("n1"), "{err}");
    // k1 was debited inside the aborted transaction: nothing of it is visible.
    assert_eq!(store.get_balance("u1").unwrap().credit_balance_cents, 0);
    assert_eq!(store.overview_counts().unwrap(), before);
    assert!(store.node("n1").unwrap().is_none());
    assert!(store.consumed_files("n1").unwrap().is_empty());
}

#[test]
fn held_users_are_found_whatever_their_lengths() {
    let redb = RedbStore::in_memory().unwrap();
    let store = Store::Redb(redb.clone());
    let sids = [
        "u1",
        "u10",
        "u1x",
        "u2",
        "v",
        "u",
        "\u{10FFFF}",
        "u1\u{10FFFF}",
    ];
    let records = sids
        .iter()
        .enumerate()
        .flat_map(|(i, sid)| {
            [
                Ok(rec(&format!("k{i}"), sid, "n1", 1)),
                Ok(rec(&format!("\u{10FFFF}{i}"), sid, "n1", 1)),
            ]
        })
        .collect();
    store
        .apply_node(update("n1", "c1", vec![file("f", "b", records)]), 1)
        .unwrap();
    let held = redb
        .write("test", |txn| super::redb_rows::ledger(txn, 1)?.held_users())
        .unwrap();
    let mut expected: Vec<&str> = sids.to_vec();
    expected.sort();
    assert_eq!(held, expected);
}
