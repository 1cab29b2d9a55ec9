//! Balance events against a model, on both backends. The model is written
//! from the rules in the README ("Events"), not from the store: per user a
//! stored level (`ok` until an event says otherwise) and a threshold; a
//! transaction's net change (`before` → `after`) is an event when a debit
//! takes the balance into a worse level (both `balance.low` and
//! `balance.overdrawn` when one debit crosses both lines), or when the balance
//! ends at or above the threshold while the stored level is not `ok`
//! (`balance.recovered`). An overdrawn user raised to `low` re-arms quietly.

use billing_api::{Event, EventType};
use billing_server::store::{FileBatch, FileOutcome, NodeUpdate, Store};
use billing_server::test_support::{SharedPgStore, payment, rec, register, shared_pg_store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// One transaction debiting a user by each cost.
    Debit(usize, Vec<i64>),
    TopUp(usize, i64),
    Threshold(usize, Option<i64>),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, prop::collection::vec(0..900i64, 1..4)).prop_map(|(u, c)| Op::Debit(u, c)),
        3 => (0..3usize, 1..2_500i64).prop_map(|(u, a)| Op::TopUp(u, a)),
        1 => (0..3usize, prop::option::of(0..1_500i64)).prop_map(|(u, t)| Op::Threshold(u, t)),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    Ok,
    Low,
    Overdrawn,
}

#[derive(Default)]
struct Model {
    balance: [i64; 3],
    level: [Option<Level>; 3],
    own: [Option<i64>; 3],
    /// (type, user, balance after) in order.
    events: Vec<(EventType, String, i64)>,
}

impl Model {
    fn change(&mut self, u: usize, after: i64, default: i64) {
        let before = self.balance[u];
        self.balance[u] = after;
        if before == after {
            return;
        }
        let threshold = self.own[u].unwrap_or(default);
        let now = if after < 0 {
            Level::Overdrawn
        } else if after < threshold {
            Level::Low
        } else {
            Level::Ok
        };
        let stored = self.level[u].unwrap_or(Level::Ok);
        let sid = sid(u);
        let mut emit = |t| self.events.push((t, sid.clone(), after));
        match now {
            n if n == stored => {}
            Level::Ok => {
                emit(EventType::BalanceRecovered);
                self.level[u] = Some(Level::Ok);
            }
            Level::Overdrawn if after < before => {
                if stored == Level::Ok && threshold > 0 {
                    emit(EventType::BalanceLow);
                }
                emit(EventType::BalanceOverdrawn);
                self.level[u] = Some(Level::Overdrawn);
            }
            Level::Low if stored == Level::Ok && after < before => {
                emit(EventType::BalanceLow);
                self.level[u] = Some(Level::Low);
            }
            Level::Low if stored == Level::Overdrawn => self.level[u] = Some(Level::Low),
            _ => {}
        }
    }
}

fn sid(u: usize) -> String {
    format!("u-{u}")
}

/// Every event, oldest first.
fn all_events(store: &Store) -> Vec<Event> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_events(cursor.as_deref(), 7, None, &[]).unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.reverse();
    out
}

fn matches_the_model(store: &Store, ops: Vec<Op>, default: i64) -> Result<(), TestCaseError> {
    store.set_low_balance_default(default, 1).unwrap();
    for u in 0..3 {
        register(store, &sid(u), 1);
    }
    let mut m = Model::default();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Debit(u, costs) => {
                let records = costs
                    .iter()
                    .enumerate()
                    .map(|(j, c)| Ok(rec(&format!("k-{i}-{j}"), &sid(u), "n1", *c)))
                    .collect();
                store
                    .apply_node(
                        NodeUpdate {
                            node_name: "n1".into(),
                            head_commit: format!("c{i}"),
                            tree_id: format!("t{i}"),
                            files: vec![FileBatch {
                                path: format!("nodes/n1/usage_2026-11-27-{:02}.otoml", i % 24),
                                blob_id: format!("b{i}"),
                                outcome: FileOutcome::Decoded(records),
                            }],
                        },
                        2,
                    )
                    .unwrap();
                let after = m.balance[u] - costs.iter().sum::<i64>();
                m.change(u, after, default);
            }
            Op::TopUp(u, amount) => {
                store
                    .record_payment(&payment(format!("p-{i}"), sid(u), amount), 3)
                    .unwrap();
                let after = m.balance[u] + amount;
                m.change(u, after, default);
            }
            Op::Threshold(u, cents) => {
                let set = store.set_user_threshold(&sid(u), cents, 4).unwrap();
                prop_assert_eq!(set.effective_cents, cents.unwrap_or(default));
                m.own[u] = cents;
            }
        }
    }
    let events = all_events(store);
    let got: Vec<(EventType, String, i64)> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.data["user_sid"].as_str().unwrap().to_string(),
                e.data["balance_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    prop_assert_eq!(got, m.events);
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.dedup();
    prop_assert_eq!(ids.len(), events.len(), "event ids are unique");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn balance_events_match_the_model_on_redb(
        ops in prop::collection::vec(op_strategy(), 1..40),
        default in prop_oneof![Just(500i64), Just(0i64), 1..1_000i64],
    ) {
        matches_the_model(&Store::in_memory().unwrap(), ops, default)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn balance_events_match_the_model_on_postgres(
        ops in prop::collection::vec(op_strategy(), 1..30),
        default in prop_oneof![Just(500i64), 1..1_000i64],
    ) {
        static DB: SharedPgStore = SharedPgStore::new();
        matches_the_model(shared_pg_store(&DB), ops, default)?;
    }
}

#[test]
fn a_threshold_for_an_unknown_user_or_out_of_range_is_refused() {
    let store = Store::in_memory().unwrap();
    let err = store.set_user_threshold("nobody", Some(10), 1).unwrap_err();
    assert!(err.to_string().contains("user `nobody` not found"), "{err}");
    register(&store, "u", 1);
    let err = store.set_user_threshold("u", Some(-1), 1).unwrap_err();
    assert!(err.to_string().contains("between 0 and"), "{err}");
    let err = store
        .list_events(Some("page-2"), 10, None, &[])
        .unwrap_err();
    assert!(err.to_string().contains("not an event id"), "{err}");
}

#[test]
fn a_backup_snapshot_keeps_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = billing_server::store::RedbStore::open(&dir.path().join("ledger.redb")).unwrap();
    let wrapped = Store::Redb(store.clone());
    matches_the_model(
        &wrapped,
        vec![
            Op::TopUp(0, 1_000),
            Op::Debit(0, vec![700]),
            Op::Threshold(1, Some(50)),
        ],
        400,
    )
    .unwrap();
    wrapped
        .claim_deliveries("http://hook.local/", 1_000, 10, 5)
        .unwrap();
    let copy = dir.path().join("copy.redb");
    store.snapshot_into(&copy).unwrap();
    drop(wrapped);
    drop(store);
    let restored = Store::open(&copy).unwrap();
    let urls = ["http://hook.local/".to_string()];
    assert_eq!(all_events(&restored).len(), 1, "the balance.low");
    assert_eq!(
        restored.list_events(None, 10, None, &urls).unwrap().items[0].data["user_sid"],
        "u-0"
    );
    assert_eq!(
        restored
            .set_user_threshold("u-1", None, 6)
            .unwrap()
            .effective_cents,
        400,
        "the default threshold came along"
    );
}
