//! Property test: walks of `list_users` in every order, through filters,
//! page by page, with random payments and debits between the pages. In every
//! walk no user is listed twice, every user whose place (and filter match)
//! did not change is listed, each listed user is as the ledger holds it then
//! and matches the filter, and the walk lists in the order's order.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use billing_api::{UserFilter, UserSort};
use billing_server::store::{Depth, Store, UserQuery};
use billing_server::test_support::{SharedPgStore, shared_pg_store};
use common::*;
use proptest::prelude::*;

const USERS: usize = 6;

fn sid(i: usize) -> String {
    format!("w{i}")
}

#[derive(Debug, Clone)]
enum Op {
    Pay { user: usize, amount: i64 },
    Debit { user: usize, cost: i64 },
    Nothing,
}

#[derive(Debug, Clone)]
struct Walk {
    sort: UserSort,
    filter: UserFilter,
    limit: u32,
    /// Applied one after each page, in turn.
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, 1i64..40).prop_map(|(user, amount)| Op::Pay { user, amount }),
        3 => (0..USERS, 1i64..40).prop_map(|(user, cost)| Op::Debit { user, cost }),
        1 => Just(Op::Nothing),
    ]
}

fn filter() -> impl Strategy<Value = UserFilter> {
    prop_oneof![
        3 => Just(UserFilter::default()),
        1 => Just(UserFilter { overdrawn: Some(true), ..Default::default() }),
        1 => Just(UserFilter { overdrawn: Some(false), ..Default::default() }),
        1 => (-20i64..30).prop_map(|b| UserFilter { below_cents: Some(b), ..Default::default() }),
        1 => Just(UserFilter { sid_prefix: Some("w1".into()), ..Default::default() }),
        1 => Just(UserFilter { text: Some("ODD".into()), ..Default::default() }),
    ]
}

fn walk() -> impl Strategy<Value = Walk> {
    let sort = prop_oneof![
        Just(UserSort::Sid),
        Just(UserSort::BalanceAsc),
        Just(UserSort::BalanceDesc),
        Just(UserSort::ConsumedDesc),
    ];
    (sort, filter(), 1u32..4, prop::collection::vec(op(), 1..8)).prop_map(
        |(sort, filter, limit, ops)| Walk {
            sort,
            filter,
            limit,
            ops,
        },
    )
}

/// Users' (paid, consumed) as the test made them.
struct Model {
    users: BTreeMap<String, (i64, i64)>,
    next_key: u64,
}

impl Model {
    fn balance(&self, sid: &str) -> i64 {
        let (paid, consumed) = self.users[sid];
        paid - consumed
    }

    fn apply(&mut self, store: &Store, op: &Op) {
        match op {
            Op::Pay { user, amount } => {
                self.next_key += 1;
                pay(store, &format!("p{}", self.next_key), &sid(*user), *amount);
                self.users.get_mut(&sid(*user)).unwrap().0 += amount;
            }
            Op::Debit { user, cost } => {
                self.next_key += 1;
                debit(store, &format!("k{}", self.next_key), &sid(*user), *cost);
                self.users.get_mut(&sid(*user)).unwrap().1 += cost;
            }
            Op::Nothing => {}
        }
    }

    /// The user's key in `sort` (ascending orders) or its negation (the
    /// `_desc` ones), so that a walk's positions always increase.
    fn position(&self, sort: UserSort, sid: &str) -> (i64, String, bool) {
        let (paid, consumed) = self.users[sid];
        match sort {
            UserSort::Sid => (0, sid.to_string(), false),
            UserSort::BalanceAsc => (paid - consumed, sid.to_string(), false),
            UserSort::BalanceDesc => (paid - consumed, sid.to_string(), true),
            UserSort::ConsumedDesc => (consumed, sid.to_string(), true),
        }
    }

    fn matches(&self, filter: &UserFilter, sid: &str) -> bool {
        let balance = self.balance(sid);
        filter
            .sid_prefix
            .as_deref()
            .is_none_or(|p| sid.starts_with(p))
            && filter.below_cents.is_none_or(|b| balance < b)
            && filter.overdrawn.is_none_or(|o| (balance < 0) == o)
            && filter
                .text
                .as_deref()
                .is_none_or(|_| name(sid).to_lowercase().contains("odd"))
    }
}

/// Odd users have "Odd" in their name.
fn name(sid: &str) -> String {
    let n: usize = sid[1..].parse().unwrap();
    if n % 2 == 1 {
        format!("Odd user {n}")
    } else {
        format!("Even user {n}")
    }
}

fn walks_list_each_user_once_in_order(
    store: &Store,
    setup: Vec<(i64, i64)>,
    walks: Vec<Walk>,
) -> Result<(), TestCaseError> {
    let reqs: Vec<_> = (0..USERS)
        .map(|i| billing_api::RegisterUser {
            user_sid: sid(i),
            display_name: Some(name(&sid(i))),
            email: None,
        })
        .collect();
    on_thread(|| store.register_users(&reqs, 1).unwrap());
    let mut model = Model {
        users: (0..USERS).map(|i| (sid(i), (0, 0))).collect(),
        next_key: 0,
    };
    for (i, (paid, consumed)) in setup.into_iter().enumerate() {
        // Ties are likely: amounts are multiples of 10.
        if paid > 0 {
            model.apply(
                store,
                &Op::Pay {
                    user: i,
                    amount: paid * 10,
                },
            );
        }
        if consumed > 0 {
            model.apply(
                store,
                &Op::Debit {
                    user: i,
                    cost: consumed * 10,
                },
            );
        }
    }
    for w in walks {
        let start = model.users.clone();
        // Users whose place or filter match changed during the walk.
        let mut moved: BTreeSet<String> = BTreeSet::new();
        let mut listed: Vec<String> = Vec::new();
        let mut last: Option<(i64, String, bool)> = None;
        let mut cursor: Option<String> = None;
        let mut ops = w.ops.iter().cycle();
        loop {
            let query = UserQuery::new(w.sort, w.filter.clone(), cursor.as_deref()).unwrap();
            let page = on_thread(|| store.list_users_by(&query, w.limit).unwrap());
            prop_assert!(page.items.len() <= w.limit as usize);
            for user in &page.items {
                let s = &user.user_sid;
                prop_assert!(!listed.contains(s), "{} listed twice: {:?}", s, listed);
                let (paid, consumed) = model.users[s];
                prop_assert_eq!(
                    (user.total_paid_cents, user.total_consumed_cents),
                    (paid, consumed),
                    "{} as listed",
                    s
                );
                prop_assert!(model.matches(&w.filter, s), "{} does not match", s);
                let at = model.position(w.sort, s);
                if let Some(before) = &last {
                    let forward = if at.2 {
                        (at.0, &at.1) < (before.0, &before.1)
                    } else {
                        (at.0, &at.1) > (before.0, &before.1)
                    };
                    prop_assert!(forward, "{:?} listed after {:?}", at, before);
                }
                last = Some(at);
                listed.push(s.clone());
            }
            let Some(next) = page.next_cursor else { break };
            cursor = Some(next);
            let op = ops.next().unwrap();
            let before: BTreeMap<String, (i64, bool)> = model
                .users
                .keys()
                .map(|s| {
                    (
                        s.clone(),
                        (model.position(w.sort, s).0, model.matches(&w.filter, s)),
                    )
                })
                .collect();
            model.apply(store, op);
            for (s, was) in before {
                if (model.position(w.sort, &s).0, model.matches(&w.filter, &s)) != was {
                    moved.insert(s);
                }
            }
        }
        for s in start.keys() {
            if !moved.contains(s) && model.matches(&w.filter, s) {
                prop_assert!(
                    listed.contains(s),
                    "{} did not move but was not listed: {:?} (moved {:?})",
                    s,
                    listed,
                    moved
                );
            }
        }
    }
    let report = on_thread(|| store.verify(Depth::Full).unwrap());
    prop_assert!(report.consistent, "{}", report.summary());
    Ok(())
}

fn setup() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0i64..4, 0i64..4), USERS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn walks_list_each_user_once_in_order_on_redb(
        setup in setup(),
        walks in prop::collection::vec(walk(), 1..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
        walks_list_each_user_once_in_order(&store, setup, walks)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same on PostgreSQL: one database, emptied before each case.
    #[test]
    fn walks_list_each_user_once_in_order_on_postgres(
        setup in setup(),
        walks in prop::collection::vec(walk(), 1..5),
    ) {
        static DB: SharedPgStore = SharedPgStore::new();
        walks_list_each_user_once_in_order(shared_pg_store(&DB), setup, walks)?;
    }
}
