//! `list_users` orders and filters on the ledger itself, each test on both
//! backends (a redb file, and a PostgreSQL database of its own).

mod common;

use billing_api::{UserBilling, UserFilter, UserSort};
use billing_server::store::{Depth, Store, StoreError, USER_SCAN, UserQuery};
use common::*;

/// Runs each test on both backends, as `NAME::redb` and `NAME::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn redb() {
                super::$name(super::Backend::Redb)
            }

            #[test]
            fn postgres() {
                super::$name(super::Backend::Postgres)
            }
        }
    )*};
}

/// A ledger of its own on `backend`; the temp dir holds a redb file.
fn ledger(backend: Backend) -> (TestLedger, tempfile::TempDir, Store) {
    let ledger = TestLedger::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let store = on_thread(|| ledger.open(dir.path()));
    (ledger, dir, store)
}

fn query(sort: UserSort, filter: &UserFilter, cursor: Option<&str>) -> UserQuery {
    UserQuery::new(sort, filter.clone(), cursor).unwrap()
}

/// Every page of a walk of `limit` users, and each page's cursor.
fn walk(
    store: &Store,
    sort: UserSort,
    filter: &UserFilter,
    limit: u32,
) -> (Vec<Vec<UserBilling>>, Vec<String>) {
    let (mut pages, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let q = query(sort, filter, cursor.as_deref());
        let page = on_thread(|| store.list_users_by(&q, limit).unwrap());
        assert!(page.items.len() <= limit as usize);
        pages.push(page.items);
        match page.next_cursor {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => return (pages, cursors),
        }
    }
}

fn sids(pages: &[Vec<UserBilling>]) -> Vec<String> {
    pages.iter().flatten().map(|u| u.user_sid.clone()).collect()
}

/// Users with balances and totals consumed (ties included, negatives
/// included), with names and emails: (sid, paid, consumed, name, email).
const USERS: &[(&str, i64, i64, &str, &str)] = &[
    ("u-01", 500, 0, "Ada Lovelace", "ada@example.org"),
    ("u-02", 0, 120, "Charles Babbage", "cb@example.org"),
    ("u-03", 300, 300, "Grace Hopper", "GRACE@navy.example"),
    ("u-04", 0, 0, "Alan Turing", "alan@example.net"),
    ("u-05", 1000, 1500, "Edsger Dijkstra", "ewd@example.nl"),
    ("u-06", 0, 120, "Barbara Liskov", "liskov@example.edu"),
    ("u-07", 900, 400, "Ada Yonath", "yonath@example.il"),
    ("v-01", 0, 0, "Ken Thompson", "ken@example.com"),
    ("v-02", 70, 0, "Dennis Ritchie", "dmr@example.com"),
];

fn fill(store: &Store) {
    on_thread(|| {
        let reqs: Vec<_> = USERS
            .iter()
            .map(|(sid, _, _, name, email)| billing_api::RegisterUser {
                user_sid: sid.to_string(),
                display_name: Some(name.to_string()),
                email: Some(email.to_string()),
            })
            .collect();
        store.register_users(&reqs, 1).unwrap();
    });
    for (sid, paid, consumed, _, _) in USERS {
        if *paid > 0 {
            on_thread(|| pay(store, &format!("p-{sid}"), sid, *paid));
        }
        if *consumed > 0 {
            debit(store, &format!("k-{sid}"), sid, *consumed);
        }
    }
}

/// The users as the test defines them, in `sort`'s order (ties by sid,
/// reversed with the `_desc` orders), through `keep`.
fn expected(sort: UserSort, keep: impl Fn(&str, i64) -> bool) -> Vec<String> {
    let mut rows: Vec<(i64, &str)> = USERS
        .iter()
        .filter(|(sid, paid, consumed, _, _)| keep(sid, paid - consumed))
        .map(|(sid, paid, consumed, _, _)| {
            let key = match sort {
                UserSort::Sid => 0,
                UserSort::BalanceAsc | UserSort::BalanceDesc => paid - consumed,
                UserSort::ConsumedDesc => *consumed,
            };
            (key, *sid)
        })
        .collect();
    rows.sort();
    if matches!(sort, UserSort::BalanceDesc | UserSort::ConsumedDesc) {
        rows.reverse();
    }
    rows.into_iter().map(|(_, s)| s.to_string()).collect()
}

const SORTS: [UserSort; 4] = [
    UserSort::Sid,
    UserSort::BalanceAsc,
    UserSort::BalanceDesc,
    UserSort::ConsumedDesc,
];

fn every_order_walks_every_user_once_in_order(backend: Backend) {
    let (_ledger, _dir, store) = ledger(backend);
    fill(&store);
    for sort in SORTS {
        for limit in [1, 2, 4, 100] {
            let (pages, _) = walk(&store, sort, &UserFilter::default(), limit);
            assert_eq!(
                sids(&pages),
                expected(sort, |_, _| true),
                "{sort:?}, pages of {limit}"
            );
        }
    }
    // The 3 lowest balances, in one page: the question the balance index answers.
    let page = on_thread(|| {
        store
            .list_users_by(
                &query(UserSort::BalanceAsc, &UserFilter::default(), None),
                3,
            )
            .unwrap()
    });
    let lowest: Vec<(i64, &str)> = page
        .items
        .iter()
        .map(|u| (u.credit_balance_cents, u.user_sid.as_str()))
        .collect();
    assert_eq!(lowest, [(-500, "u-05"), (-120, "u-02"), (-120, "u-06")]);
    assert!(page.next_cursor.is_some());
    let report = on_thread(|| store.verify(Depth::Full).unwrap());
    assert!(report.consistent, "{}", report.summary());
}

/// Which users a filter keeps, by sid and balance.
type Keep = Box<dyn Fn(&str, i64) -> bool>;

fn filters_list_exactly_the_matching_users_in_every_order(backend: Backend) {
    let (_ledger, _dir, store) = ledger(backend);
    fill(&store);
    let cases: Vec<(UserFilter, Keep)> = vec![
        (
            UserFilter {
                overdrawn: Some(true),
                ..Default::default()
            },
            Box::new(|_, b| b < 0),
        ),
        (
            UserFilter {
                overdrawn: Some(false),
                ..Default::default()
            },
            Box::new(|_, b| b >= 0),
        ),
        (
            UserFilter {
                below_cents: Some(0),
                ..Default::default()
            },
            Box::new(|_, b| b < 0),
        ),
        (
            UserFilter {
                below_cents: Some(71),
                overdrawn: Some(false),
                ..Default::default()
            },
            Box::new(|_, b| (0..71).contains(&b)),
        ),
        (
            UserFilter {
                sid_prefix: Some("v-".into()),
                ..Default::default()
            },
            Box::new(|s, _| s.starts_with("v-")),
        ),
        (
            UserFilter {
                sid_prefix: Some("u-0".into()),
                below_cents: Some(1),
                ..Default::default()
            },
            Box::new(|s, b| s.starts_with("u-0") && b < 1),
        ),
        // Case-insensitive, in the name, the email or the sid.
        (
            UserFilter {
                text: Some("ADA ".into()),
                ..Default::default()
            },
            Box::new(|s, _| s == "u-01" || s == "u-07"),
        ),
        (
            UserFilter {
                text: Some("Example.COM".into()),
                ..Default::default()
            },
            Box::new(|s, _| s.starts_with("v-")),
        ),
        (
            UserFilter {
                text: Some("navy".into()),
                ..Default::default()
            },
            Box::new(|s, _| s == "u-03"),
        ),
        (
            UserFilter {
                text: Some("U-0".into()),
                overdrawn: Some(true),
                ..Default::default()
            },
            Box::new(|s, b| s.starts_with("u-0") && b < 0),
        ),
        (
            UserFilter {
                below_cents: Some(i64::MIN),
                ..Default::default()
            },
            Box::new(|_, _| false),
        ),
    ];
    for (filter, keep) in &cases {
        for sort in SORTS {
            for limit in [1, 3, 50] {
                let (pages, _) = walk(&store, sort, filter, limit);
                assert_eq!(
                    sids(&pages),
                    expected(sort, keep),
                    "{sort:?} {filter:?}, pages of {limit}"
                );
            }
        }
    }
}

/// A filter the order cannot skip to reads at most USER_SCAN users a page:
/// a page may come back empty with a cursor, and the walk still finds
/// everything.
fn a_filtered_scan_is_bounded_per_page(backend: Backend) {
    let (_ledger, _dir, store) = ledger(backend);
    let n = USER_SCAN + 20;
    on_thread(|| {
        let reqs: Vec<_> = (0..n)
            .map(|i| billing_api::RegisterUser {
                user_sid: format!("s-{i:06}"),
                display_name: (i == 3 || i == n - 5).then(|| "Needle".to_string()),
                email: None,
            })
            .collect();
        store.register_users(&reqs, 1).unwrap();
    });
    let filter = UserFilter {
        text: Some("needle".into()),
        ..Default::default()
    };
    for sort in SORTS {
        let q = query(sort, &filter, None);
        let first = on_thread(|| store.list_users_by(&q, 10).unwrap());
        let (pages, cursors) = walk(&store, sort, &filter, 10);
        let mut found = sids(&pages);
        found.sort();
        assert_eq!(
            found,
            [format!("s-{:06}", 3), format!("s-{:06}", n - 5)],
            "{sort:?}"
        );
        // Every user is at balance 0 and consumed 0: every order reads them by sid
        // within the tie, so the second needle is past the first USER_SCAN users.
        assert_eq!(pages.len(), 2, "{sort:?}: {cursors:?}");
        assert_eq!(first.items.len(), 1, "{sort:?}");
        assert!(first.next_cursor.is_some(), "{sort:?}");
    }
    // A range the index skips to needs no scan: the last few sids in one page.
    let filter = UserFilter {
        sid_prefix: Some(format!("s-{:05}", (n - 1) / 10)),
        ..Default::default()
    };
    let (pages, _) = walk(&store, UserSort::Sid, &filter, 100);
    assert_eq!(pages.len(), 1);
    assert!(!pages[0].is_empty());
}

fn a_cursor_of_another_order_is_refused(backend: Backend) {
    let (_ledger, _dir, store) = ledger(backend);
    fill(&store);
    let none = UserFilter::default();
    let page = on_thread(|| {
        store
            .list_users_by(&query(UserSort::ConsumedDesc, &none, None), 2)
            .unwrap()
    });
    let cursor = page.next_cursor.unwrap();
    for sort in [UserSort::Sid, UserSort::BalanceAsc, UserSort::BalanceDesc] {
        match UserQuery::new(sort, none.clone(), Some(&cursor)) {
            Err(StoreError::InvalidInput(m)) => {
                assert!(m.contains("`consumed_desc`"), "{m}");
            }
            other => panic!("{sort:?}: {other:?}"),
        }
    }
}

/// Writes between pages: a user already listed whose balance then moves
/// ahead of the cursor is not listed again; users whose balance did not
/// change are all listed; a user not listed yet whose balance changed may be
/// passed over.
fn a_walk_lists_no_user_twice_while_balances_change(backend: Backend) {
    let (_ledger, _dir, store) = ledger(backend);
    fill(&store);
    let none = UserFilter::default();
    // Balance order: u-05 -500, u-02 -120, u-06 -120, u-03 0, u-04 0, v-01 0, v-02 70, …
    let q = query(UserSort::BalanceAsc, &none, None);
    let first = on_thread(|| store.list_users_by(&q, 2).unwrap());
    let listed: Vec<_> = first.items.iter().map(|u| u.user_sid.clone()).collect();
    assert_eq!(listed, ["u-05", "u-02"]);
    // u-05, listed, jumps to the end; u-06, not listed yet, drops to the start.
    on_thread(|| pay(&store, "top-up", "u-05", 10_000));
    debit(&store, "drop", "u-06", 10_000);
    let mut cursor = first.next_cursor;
    let mut rest = Vec::new();
    while let Some(c) = cursor {
        let q = query(UserSort::BalanceAsc, &none, Some(&c));
        let page = on_thread(|| store.list_users_by(&q, 2).unwrap());
        rest.extend(page.items.into_iter().map(|u| u.user_sid));
        cursor = page.next_cursor;
    }
    assert_eq!(rest, ["u-03", "u-04", "v-01", "v-02", "u-01", "u-07"]);
    // A new walk sees everyone where they are now.
    let (pages, _) = walk(&store, UserSort::BalanceAsc, &none, 3);
    let now = sids(&pages);
    assert_eq!(now.first().map(String::as_str), Some("u-06"));
    assert_eq!(now.last().map(String::as_str), Some("u-05"));
    assert_eq!(now.len(), USERS.len());
}

on_both!(
    every_order_walks_every_user_once_in_order,
    filters_list_exactly_the_matching_users_in_every_order,
    a_filtered_scan_is_bounded_per_page,
    a_cursor_of_another_order_is_refused,
    a_walk_lists_no_user_twice_while_balances_change,
);
