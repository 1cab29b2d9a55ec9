//! Exactly-once edge cases of the ledger store: orderings of held, applied,
//! duplicate and conflicting records, overflow, and pagination of the
//! per-user consumed list.

use billing_api::{RecordPayment, RegisterUser};
use billing_server::store::{
    FileBatch, FileOutcome, InvalidRecord, NodeUpdate, Store, UsageRecord,
};
use billing_server::test_support::{file, rec};

/// One file of `node` at `commit`, its blob named after both.
fn update(
    node: &str,
    commit: &str,
    path: &str,
    records: Vec<Result<UsageRecord, InvalidRecord>>,
) -> NodeUpdate {
    let blob = format!("blob-{commit}-{path}");
    billing_server::test_support::update(node, commit, vec![file(path, &blob, records)])
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
                vec![
                    Ok(rec("k1", "a", "n1", i64::MAX)),
                    Ok(rec("k2", "b", "n1", 2)),
                ],
            ),
            3,
        )
        .unwrap();
    assert_eq!((out.applied, out.invalid), (2, 0), "{out:?}");
    assert_eq!(store.get_balance("b").unwrap().credit_balance_cents, 8);
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
}

/// The sum of all balances fits in i64 even when a partial sum, in the order
/// `recount` walks users, does not.
#[test]
fn recount_sums_balances_that_fit_in_any_order() {
    let store = Store::in_memory().unwrap();
    for sid in ["a", "b", "c"] {
        register(&store, sid);
    }
    pay(&store, "p1", "c", 5);
    let out = store
        .apply_node(
            update(
                "n1",
                "c1",
                "f",
                vec![
                    Ok(rec("k1", "a", "n1", i64::MAX)),
                    Ok(rec("k2", "b", "n1", 2)),
                ],
            ),
            3,
        )
        .unwrap();
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
    register(&store, "a");
    let invalid = |index: usize, reason: &str| InvalidRecord {
        index,
        idempotency_key: Some(format!("k{index}")),
        user_sid: Some("a".into()),
        reason: reason.into(),
        raw: format!("idempotency_key = \"k{index}\""),
    };
    let read = |commit: &str, records| NodeUpdate {
        node_name: "n1".into(),
        head_commit: commit.into(),
        tree_id: format!("tree-{commit}"),
        files: vec![FileBatch {
            path: "nodes/n1/usage_2026-11-27-10.otoml".into(),
            blob_id: "blob-b".into(),
            outcome: FileOutcome::Decoded(records),
        }],
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

mod model {
    //! Random sequences against a plain model of the ledger rules, with
    //! overflow-sized amounts, bulk registrations, re-reads under new
    //! provenance (force-push) and failed nodes.

    use std::collections::{BTreeMap, BTreeSet};

    use billing_api::{RecordPayment, RegisterUser};
    use billing_server::store::{FileBatch, FileOutcome, NodeUpdate, Store};
    use billing_server::test_support::PgTestDb;
    use billing_server::test_support::rec;
    use proptest::prelude::*;

    const USERS: u8 = 6;

    #[derive(Debug, Clone)]
    struct Rec {
        key: u8,
        user: u8,
        cost: i64,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Register(Vec<u8>),
        Pay {
            id: u8,
            user: u8,
            amount: i64,
        },
        Apply {
            node: u8,
            files: Vec<Vec<Rec>>,
        },
        /// Re-read an earlier update at a new commit and path (history rewritten).
        Replay {
            which: usize,
            node: u8,
        },
        ApplyPending,
        NodeFailed(u8),
    }

    fn amount(small: std::ops::Range<i64>) -> impl Strategy<Value = i64> {
        prop_oneof![
            12 => small,
            1 => (i64::MAX / 3)..=i64::MAX,
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        let cost = prop_oneof![12 => amount(0..50), 1 => i64::MIN..0];
        let rec = (0u8..30, 0u8..USERS, cost).prop_map(|(key, user, cost)| Rec { key, user, cost });
        prop_oneof![
            2 => prop::collection::vec(0u8..USERS, 1..4).prop_map(Op::Register),
            2 => (0u8..10, 0u8..USERS, amount(1..500))
                .prop_map(|(id, user, amount)| Op::Pay { id, user, amount }),
            5 => (0u8..3, prop::collection::vec(prop::collection::vec(rec, 0..8), 1..4))
                .prop_map(|(node, files)| Op::Apply { node, files }),
            2 => (0usize..64, 0u8..3).prop_map(|(which, node)| Op::Replay { which, node }),
            1 => Just(Op::ApplyPending),
            1 => (0u8..3).prop_map(Op::NodeFailed),
        ]
    }

    fn sid(user: u8) -> String {
        format!("u{user}")
    }

    type Value = (String, String, i64);

    #[derive(Default, Debug)]
    struct Model {
        users: BTreeSet<String>,
        payments: BTreeMap<String, (String, i64)>,
        paid: BTreeMap<String, i64>,
        consumed: BTreeMap<String, i64>,
        applied: BTreeMap<String, Value>,
        held: BTreeMap<String, Value>,
        total: i128,
    }

    #[derive(Default, Debug, PartialEq)]
    struct Counts {
        applied: u64,
        duplicate: u64,
        conflict: u64,
        pending: u64,
        invalid: u64,
    }

    impl Model {
        /// Debits unless one of the user's figures would overflow (the sum of
        /// all balances is 128-bit and never refuses).
        fn debit(&mut self, key: &str, v: Value, c: &mut Counts) {
            let sid = v.0.clone();
            let paid = self.paid.get(&sid).copied().unwrap_or(0);
            let used = self.consumed.get(&sid).copied().unwrap_or(0);
            let ok = used.checked_add(v.2).is_some() && (paid - used).checked_sub(v.2).is_some();
            if ok {
                *self.consumed.entry(sid).or_default() += v.2;
                self.total -= i128::from(v.2);
                self.applied.insert(key.to_string(), v);
                c.applied += 1;
            } else {
                c.invalid += 1;
            }
        }

        /// `apply_pending`: every held record of a registered user, by user then key.
        fn retry_held(&mut self, c: &mut Counts) {
            let mut keys: Vec<(String, String)> = self
                .held
                .iter()
                .filter(|(_, v)| self.users.contains(&v.0))
                .map(|(k, v)| (v.0.clone(), k.clone()))
                .collect();
            keys.sort();
            for (_, key) in keys {
                let v = self.held.remove(&key).unwrap();
                self.debit(&key, v, c);
            }
        }

        fn register(&mut self, sid: &str, c: &mut Counts) {
            self.users.insert(sid.to_string());
            let keys: Vec<String> = self
                .held
                .iter()
                .filter(|(_, v)| v.0 == sid)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                let v = self.held.remove(&key).unwrap();
                self.debit(&key, v, c);
            }
        }

        fn pay(&mut self, id: &str, sid: &str, amount: i64) -> Result<(), &'static str> {
            match self.payments.get(id) {
                Some(p) if *p == (sid.to_string(), amount) => return Ok(()),
                Some(_) => return Err("conflict"),
                None => {}
            }
            if !self.users.contains(sid) {
                return Err("not found");
            }
            let paid = self.paid.get(sid).copied().unwrap_or(0);
            let used = self.consumed.get(sid).copied().unwrap_or(0);
            let ok =
                paid.checked_add(amount).is_some() && (paid - used).checked_add(amount).is_some();
            if !ok {
                return Err("overflow");
            }
            self.payments
                .insert(id.to_string(), (sid.to_string(), amount));
            *self.paid.entry(sid.to_string()).or_default() += amount;
            self.total += i128::from(amount);
            Ok(())
        }

        fn record(&mut self, key: &str, v: Value, c: &mut Counts) {
            if v.2 < 0 {
                c.invalid += 1;
                return;
            }
            if let Some(existing) = self.applied.get(key).or_else(|| self.held.get(key)) {
                if *existing == v {
                    c.duplicate += 1;
                } else {
                    c.conflict += 1;
                }
                return;
            }
            if self.users.contains(&v.0) {
                self.debit(key, v, c);
            } else {
                self.held.insert(key.to_string(), v);
                c.pending += 1;
            }
        }
    }

    fn build(node: &str, files: &[Vec<Rec>], tag: usize) -> NodeUpdate {
        NodeUpdate {
            node_name: node.to_string(),
            head_commit: format!("commit-{tag}"),
            tree_id: format!("tree-{tag}"),
            files: files
                .iter()
                .enumerate()
                .map(|(f, recs)| FileBatch {
                    path: format!("nodes/{node}/usage_2026-11-{tag:02}-{f:02}.otoml"),
                    blob_id: format!("blob-{tag}-{f}"),
                    outcome: FileOutcome::Decoded(
                        recs.iter()
                            .map(|r| Ok(rec(&format!("k{}", r.key), &sid(r.user), node, r.cost)))
                            .collect(),
                    ),
                })
                .collect(),
        }
    }

    fn walk(store: &Store, user: Option<&str>, limit: u32) -> Vec<billing_api::ConsumedRecord> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list_consumed(user, cursor.as_deref(), limit).unwrap();
            assert!(page.items.len() <= limit as usize);
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    fn check(store: &Store, m: &Model, limit: u32) {
        let counts = store.overview_counts().unwrap();
        assert_eq!(counts, store.recount().unwrap(), "counters drifted");
        assert_eq!(counts.total_users, m.users.len() as u64);
        assert_eq!(counts.consumed_records, m.applied.len() as u64);
        assert_eq!(counts.pending_records, m.held.len() as u64);
        assert_eq!(counts.total_balance_cents, m.total);
        let all = walk(store, None, 1000);
        assert_eq!(all.len(), m.applied.len());
        assert_eq!(walk(store, None, limit), all, "global pages differ");
        let node_totals: u64 = store
            .nodes()
            .unwrap()
            .iter()
            .map(|n| n.records_consumed_total)
            .sum();
        assert_eq!(node_totals, counts.consumed_records);
        for c in &all {
            let v = &m.applied[&c.idempotency_key];
            assert_eq!((&c.user_sid, &c.node_name, c.cost_cents), (&v.0, &v.1, v.2));
        }
        let mut overdrawn = 0;
        for sid in &m.users {
            let mine: Vec<_> = all.iter().filter(|c| &c.user_sid == sid).cloned().collect();
            assert_eq!(
                walk(store, Some(sid), limit),
                mine,
                "per-user pages of {sid}"
            );
            let b = store.get_balance(sid).unwrap();
            let paid = m.paid.get(sid).copied().unwrap_or(0);
            let used = m.consumed.get(sid).copied().unwrap_or(0);
            assert_eq!(
                (
                    b.total_paid_cents,
                    b.total_consumed_cents,
                    b.credit_balance_cents
                ),
                (paid, used, paid - used),
                "{sid}"
            );
            let paid_listed: i128 = store
                .list_payments(Some(sid), None, 1000)
                .unwrap()
                .items
                .iter()
                .map(|p| i128::from(p.amount_cents))
                .sum();
            let used_listed: i128 = mine.iter().map(|c| i128::from(c.cost_cents)).sum();
            assert_eq!(paid_listed, i128::from(paid));
            assert_eq!(used_listed, i128::from(used));
            if paid - used < 0 {
                overdrawn += 1;
            }
        }
        assert_eq!(counts.overdrawn_users, overdrawn);
    }

    /// Applies `files` of `node` to the model and the store: the store counts
    /// what the model does.
    fn apply_matches(
        store: &Store,
        m: &mut Model,
        node: &str,
        files: &[Vec<Rec>],
        step: usize,
        now: u64,
    ) -> Result<(), TestCaseError> {
        let mut c = Counts::default();
        for r in files.iter().flatten() {
            m.record(
                &format!("k{}", r.key),
                (sid(r.user), node.to_string(), r.cost),
                &mut c,
            );
        }
        let out = store.apply_node(build(node, files, step), now).unwrap();
        prop_assert_eq!(
            Counts {
                applied: out.applied,
                duplicate: out.duplicate,
                conflict: out.conflict,
                pending: out.pending,
                invalid: out.invalid
            },
            c
        );
        Ok(())
    }

    /// One case: `ops` applied to `store` (empty) and to the model.
    fn matches_the_model(store: &Store, ops: Vec<Op>, limit: u32) -> Result<(), TestCaseError> {
        let mut m = Model::default();
        let mut history: Vec<Vec<Vec<Rec>>> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let now = 1_000 + step as u64;
            match op {
                Op::Register(users) => {
                    let reqs: Vec<RegisterUser> = users
                        .iter()
                        .map(|u| RegisterUser {
                            user_sid: sid(*u),
                            display_name: None,
                            email: None,
                        })
                        .collect();
                    let mut c = Counts::default();
                    for u in &users {
                        m.register(&sid(*u), &mut c);
                    }
                    if reqs.len() == 1 {
                        store.register_user(&reqs[0], now).unwrap();
                    } else {
                        store.register_users(&reqs, now).unwrap();
                    }
                }
                Op::Pay { id, user, amount } => {
                    let (pid, sid) = (format!("p{id}"), sid(user));
                    let expected = m.pay(&pid, &sid, amount);
                    let got = store.record_payment(
                        &RecordPayment {
                            payment_id: pid,
                            user_sid: sid,
                            amount_cents: amount,
                            kind: None,
                            reference: None,
                        },
                        now,
                    );
                    prop_assert_eq!(expected.is_ok(), got.is_ok(), "{:?} vs {:?}", expected, got);
                }
                Op::Apply { node, files } => {
                    apply_matches(store, &mut m, &format!("n{node}"), &files, step, now)?;
                    history.push(files);
                }
                Op::Replay { which, node } => {
                    if history.is_empty() {
                        continue;
                    }
                    let files = history[which % history.len()].clone();
                    apply_matches(store, &mut m, &format!("n{node}"), &files, step, now)?;
                }
                Op::ApplyPending => {
                    let mut c = Counts::default();
                    m.retry_held(&mut c);
                    let out = store.apply_pending(now).unwrap();
                    prop_assert_eq!(out.applied, c.applied);
                }
                Op::NodeFailed(node) => {
                    let node = format!("n{node}");
                    let before = store.node(&node).unwrap();
                    store.node_failed(&node, "boom", now).unwrap();
                    let after = store.node(&node).unwrap().unwrap();
                    prop_assert_eq!(after.status, billing_api::NodeStatus::Error);
                    if let Some(before) = before {
                        prop_assert_eq!(
                            after.records_consumed_total,
                            before.records_consumed_total
                        );
                        prop_assert_eq!(after.tree_id, before.tree_id);
                        prop_assert_eq!(after.last_commit_sha, before.last_commit_sha);
                    }
                }
            }
            check(store, &m, limit);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn ledger_matches_the_model_on_redb(
            ops in prop::collection::vec(op_strategy(), 1..40),
            limit in 1u32..4,
        ) {
            matches_the_model(&Store::in_memory().unwrap(), ops, limit)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The same model on PostgreSQL: one database, emptied before each case.
        #[test]
        fn ledger_matches_the_model_on_postgres(
            ops in prop::collection::vec(op_strategy(), 1..40),
            limit in 1u32..4,
        ) {
            static DB: std::sync::OnceLock<(PgTestDb, Store)> = std::sync::OnceLock::new();
            let (db, store) = DB.get_or_init(|| {
                let db = PgTestDb::create();
                let store = db.store();
                (db, store)
            });
            db.reset();
            matches_the_model(store, ops, limit)?;
        }
    }
}
