//! Property test: random sequences of registrations, payments and node updates
//! (with duplicate, conflicting, unknown-user and invalid records) against a
//! simple model of the ledger rules.

use std::collections::{BTreeMap, BTreeSet};

use billing_api::{RecordPayment, RegisterUser};
use billing_server::store::{
    FileBatch, FileOutcome, InvalidRecord, NodeUpdate, Store, StoreError, UsageRecord,
};
use billing_server::test_support::PgTestDb;
use proptest::prelude::*;

const USERS: u8 = 5;

#[derive(Debug, Clone)]
enum Rec {
    Valid { key: u8, user: u8, cost: i64 },
    Invalid { index_key: u8 },
}

#[derive(Debug, Clone)]
enum Op {
    Register(u8),
    Pay { id: u8, user: u8, amount: i64 },
    Apply { node: u8, files: Vec<Vec<Rec>> },
    ApplyLastAgain,
    ApplyPending,
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    prop_oneof![
        8 => (0u8..24, 0u8..USERS, 0i64..50).prop_map(|(key, user, cost)| Rec::Valid { key, user, cost }),
        1 => (0u8..24).prop_map(|index_key| Rec::Invalid { index_key }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..USERS).prop_map(Op::Register),
        2 => (0u8..8, 0u8..USERS, 1i64..500).prop_map(|(id, user, amount)| Op::Pay { id, user, amount }),
        4 => (0u8..3, prop::collection::vec(prop::collection::vec(rec_strategy(), 0..8), 0..4))
            .prop_map(|(node, files)| Op::Apply { node, files }),
        1 => Just(Op::ApplyLastAgain),
        1 => Just(Op::ApplyPending),
    ]
}

fn sid(user: u8) -> String {
    format!("u{user}")
}

fn node_name(node: u8) -> String {
    format!("n{node}")
}

/// The ledger rules, written as plainly as possible.
#[derive(Default)]
struct Model {
    users: BTreeSet<String>,
    payments: BTreeMap<String, (String, i64)>,
    paid: BTreeMap<String, i64>,
    consumed: BTreeMap<String, i64>,
    /// key -> (user, node, cost)
    applied: BTreeMap<String, (String, String, i64)>,
    held: BTreeMap<String, (String, String, i64)>,
}

impl Model {
    fn register(&mut self, sid: &str) {
        self.users.insert(sid.to_string());
        let keys: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (u, _, _))| u == sid)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let v = self.held.remove(&key).unwrap();
            *self.consumed.entry(sid.to_string()).or_default() += v.2;
            self.applied.insert(key, v);
        }
    }

    /// Returns (applied, duplicate, conflict, pending).
    fn record(&mut self, key: &str, user: &str, node: &str, cost: i64) -> (u64, u64, u64, u64) {
        let value = (user.to_string(), node.to_string(), cost);
        if let Some(existing) = self.applied.get(key).or_else(|| self.held.get(key)) {
            return if *existing == value {
                (0, 1, 0, 0)
            } else {
                (0, 0, 1, 0)
            };
        }
        if self.users.contains(user) {
            *self.consumed.entry(user.to_string()).or_default() += cost;
            self.applied.insert(key.to_string(), value);
            (1, 0, 0, 0)
        } else {
            self.held.insert(key.to_string(), value);
            (0, 0, 0, 1)
        }
    }
}

fn build_update(node: u8, files: &[Vec<Rec>], pass: usize) -> NodeUpdate {
    let node = node_name(node);
    NodeUpdate {
        node_name: node.clone(),
        head_commit: format!("commit-{pass}"),
        tree_id: format!("tree-{pass}"),
        files: files
            .iter()
            .enumerate()
            .map(|(f, recs)| FileBatch {
                path: format!("nodes/{node}/usage_2026-11-27-{f:02}.otoml"),
                blob_id: format!("blob-{pass}-{f}"),
                outcome: FileOutcome::Decoded(
                    recs.iter()
                        .enumerate()
                        .map(|(index, r)| match r {
                            Rec::Valid { key, user, cost } => Ok(UsageRecord {
                                idempotency_key: format!("k{key}"),
                                user_sid: sid(*user),
                                node_name: node.clone(),
                                cost_cents: *cost,
                                resource: None,
                                quantity: None,
                                unit: None,
                                period_start: None,
                                period_end: None,
                            }),
                            Rec::Invalid { index_key } => Err(InvalidRecord {
                                index,
                                idempotency_key: Some(format!("bad{index_key}")),
                                user_sid: None,
                                reason: "cost_cents must be an integer".into(),
                                raw: "cost_cents = \"x\"".into(),
                            }),
                        })
                        .collect(),
                ),
            })
            .collect(),
    }
}

fn all_consumed(store: &Store, user: Option<&str>) -> Vec<billing_api::ConsumedRecord> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_consumed(user, cursor.as_deref(), 7).unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn check(store: &Store, model: &Model) {
    let counts = store.overview_counts().unwrap();
    assert_eq!(
        counts,
        store.recount().unwrap(),
        "counters drifted from a recount"
    );
    assert_eq!(counts.total_users, model.users.len() as u64);
    assert_eq!(counts.consumed_records, model.applied.len() as u64);
    assert_eq!(counts.pending_records, model.held.len() as u64);

    let consumed = all_consumed(store, None);
    let keys: BTreeSet<&str> = consumed
        .iter()
        .map(|c| c.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), consumed.len(), "a key was applied twice");
    for c in &consumed {
        let (user, node, cost) = &model.applied[&c.idempotency_key];
        assert_eq!(
            (&c.user_sid, &c.node_name, &c.cost_cents),
            (user, node, cost)
        );
    }

    let node_totals: u64 = store
        .nodes()
        .unwrap()
        .iter()
        .map(|n| n.records_consumed_total)
        .sum();
    assert_eq!(node_totals, counts.consumed_records);

    for sid in &model.users {
        let b = store.get_balance(sid).unwrap();
        let paid: i64 = store
            .list_payments(Some(sid), None, 1000)
            .unwrap()
            .items
            .iter()
            .map(|p| p.amount_cents)
            .sum();
        let used: i64 = all_consumed(store, Some(sid))
            .iter()
            .map(|c| c.cost_cents)
            .sum();
        assert_eq!(b.total_paid_cents, paid);
        assert_eq!(b.total_consumed_cents, used);
        assert_eq!(b.credit_balance_cents, paid - used);
        assert_eq!(
            b.total_paid_cents,
            model.paid.get(sid).copied().unwrap_or(0)
        );
        assert_eq!(
            b.total_consumed_cents,
            model.consumed.get(sid).copied().unwrap_or(0)
        );
    }
}

/// One case: `ops` applied to `store` (empty) and to the model, checked after each step.
fn follows_the_rules(store: &Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut last: Option<NodeUpdate> = None;
    for (pass, op) in ops.into_iter().enumerate() {
        let now = 1_000 + pass as u64;
        match op {
            Op::Register(u) => {
                let sid = sid(u);
                store
                    .register_user(
                        &RegisterUser {
                            user_sid: sid.clone(),
                            display_name: None,
                            email: None,
                        },
                        now,
                    )
                    .unwrap();
                model.register(&sid);
            }
            Op::Pay { id, user, amount } => {
                let (pid, sid) = (format!("p{id}"), sid(user));
                let result = store.record_payment(
                    &RecordPayment {
                        payment_id: pid.clone(),
                        user_sid: sid.clone(),
                        amount_cents: amount,
                        kind: None,
                        reference: None,
                    },
                    now,
                );
                match model.payments.get(&pid) {
                    Some(stored) if *stored == (sid.clone(), amount) => {
                        prop_assert_eq!(result.unwrap().amount_cents, amount);
                    }
                    Some(_) => prop_assert!(
                        matches!(result, Err(StoreError::Conflict(_))),
                        "{:?}",
                        result
                    ),
                    None if !model.users.contains(&sid) => {
                        prop_assert!(
                            matches!(result, Err(StoreError::NotFound { .. })),
                            "{:?}",
                            result
                        )
                    }
                    None => {
                        result.unwrap();
                        model.payments.insert(pid, (sid.clone(), amount));
                        *model.paid.entry(sid).or_default() += amount;
                    }
                }
            }
            Op::Apply { node, files } => {
                let update = build_update(node, &files, pass);
                let mut expected = (0, 0, 0, 0);
                let mut invalid = 0;
                for r in files.iter().flatten() {
                    match r {
                        Rec::Valid { key, user, cost } => {
                            let (a, d, c, p) = model.record(
                                &format!("k{key}"),
                                &sid(*user),
                                &node_name(node),
                                *cost,
                            );
                            expected = (
                                expected.0 + a,
                                expected.1 + d,
                                expected.2 + c,
                                expected.3 + p,
                            );
                        }
                        Rec::Invalid { .. } => invalid += 1,
                    }
                }
                let out = store.apply_node(update.clone(), now).unwrap();
                prop_assert_eq!(
                    (out.applied, out.duplicate, out.conflict, out.pending),
                    expected
                );
                prop_assert_eq!(out.invalid, invalid);
                prop_assert_eq!(out.files_read, files.len() as u64);
                last = Some(update);
            }
            Op::ApplyLastAgain => {
                if let Some(update) = last.clone() {
                    let before = store.overview_counts().unwrap();
                    let out = store.apply_node(update, now).unwrap();
                    prop_assert_eq!(out.applied, 0);
                    prop_assert_eq!(out.pending, 0);
                    prop_assert_eq!(out.cents_debited, 0);
                    // Held records of since-registered users were applied at registration,
                    // so a re-read finds them applied: still no change.
                    prop_assert_eq!(store.overview_counts().unwrap(), before);
                }
            }
            Op::ApplyPending => {
                // register_user already applied everything that could be.
                let out = store.apply_pending(now).unwrap();
                prop_assert_eq!(out.applied, 0);
            }
        }
        check(store, &model);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn ledger_follows_the_rules_on_redb(ops in prop::collection::vec(op_strategy(), 1..30)) {
        follows_the_rules(&Store::in_memory().unwrap(), ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same rules on PostgreSQL: one database, emptied before each case.
    #[test]
    fn ledger_follows_the_rules_on_postgres(ops in prop::collection::vec(op_strategy(), 1..30)) {
        static DB: std::sync::OnceLock<(PgTestDb, Store)> = std::sync::OnceLock::new();
        let (db, store) = DB.get_or_init(|| {
            let db = PgTestDb::create();
            let store = db.store();
            (db, store)
        });
        db.reset();
        follows_the_rules(store, ops)?;
    }
}
