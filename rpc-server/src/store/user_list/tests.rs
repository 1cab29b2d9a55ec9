//! The parts of `list_users` that need no ledger: ranges, cursors, matching.

use super::*;

fn filter() -> UserFilter {
    UserFilter::default()
}

fn user(sid: &str, name: Option<&str>, email: Option<&str>, balance: i64) -> UserBilling {
    UserBilling {
        user_sid: sid.into(),
        display_name: name.map(Into::into),
        email: email.map(Into::into),
        created_at: String::new(),
        credit_balance_cents: balance,
        total_paid_cents: balance.max(0),
        total_consumed_cents: (-balance).max(0),
    }
}

fn invalid(result: Result<UserQuery, StoreError>) -> String {
    match result {
        Err(StoreError::InvalidInput(m)) => m,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn the_end_of_a_prefix_range_is_the_least_string_after_it() {
    assert_eq!(after_prefix("ab").as_deref(), Some("ac"));
    assert_eq!(after_prefix("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(after_prefix("\u{10FFFF}"), None);
    // The surrogates are not characters: the next one after U+D7FF is U+E000.
    assert_eq!(after_prefix("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
    for sid in ["ab", "ab\u{10FFFF}", "abzzz", "ab\u{0}"] {
        assert!(sid < "ac", "{sid:?}");
    }
}

#[test]
fn balance_filters_become_a_balance_range() {
    let range = |below: Option<i64>, overdrawn: Option<bool>| {
        let f = UserFilter {
            below_cents: below,
            overdrawn,
            ..filter()
        };
        key_range(UserSort::BalanceAsc, &f)
    };
    assert_eq!(range(None, None), KeyRange::All);
    assert_eq!(
        range(Some(100), None),
        KeyRange::Balances {
            lo: i64::MIN,
            hi: 99
        }
    );
    assert_eq!(
        range(Some(100), Some(true)),
        KeyRange::Balances {
            lo: i64::MIN,
            hi: -1
        }
    );
    assert_eq!(
        range(Some(100), Some(false)),
        KeyRange::Balances { lo: 0, hi: 99 }
    );
    assert_eq!(range(Some(0), Some(false)), KeyRange::Empty);
    assert_eq!(range(Some(i64::MIN), None), KeyRange::Empty);
    // The other orders read every user and check the filter on each.
    let f = UserFilter {
        overdrawn: Some(true),
        ..filter()
    };
    assert_eq!(key_range(UserSort::ConsumedDesc, &f), KeyRange::All);
    assert_eq!(key_range(UserSort::Sid, &f), KeyRange::All);
}

#[test]
fn text_matches_any_of_sid_name_and_email_ignoring_case() {
    let query = |text: &str| {
        let f = UserFilter {
            text: Some(text.into()),
            ..filter()
        };
        UserQuery::new(UserSort::Sid, f, None).unwrap()
    };
    let ada = user("u-0001", Some("Ada Lovelace"), Some("ADA@Example.org"), 5);
    let ecole = user("u-0002", Some("École Normale"), None, 5);
    assert!(query("LOVELACE").matches(&ada));
    assert!(query("example.ORG").matches(&ada));
    assert!(query("U-000").matches(&ada));
    assert!(!query("babbage").matches(&ada));
    assert!(query("éCOLE").matches(&ecole));
    assert!(query("normale").matches(&ecole));
    assert!(!query("ecole").matches(&ecole));
    // An empty text is no filter.
    assert!(!query("").residual());
}

#[test]
fn every_condition_of_a_filter_must_hold() {
    let f = UserFilter {
        sid_prefix: Some("u-1".into()),
        below_cents: Some(10),
        overdrawn: Some(true),
        text: None,
    };
    let query = UserQuery::new(UserSort::ConsumedDesc, f, None).unwrap();
    assert!(query.residual());
    assert!(query.matches(&user("u-10", None, None, -1)));
    assert!(!query.matches(&user("u-20", None, None, -1)));
    assert!(!query.matches(&user("u-10", None, None, 0)));
    let f = UserFilter {
        overdrawn: Some(false),
        ..filter()
    };
    let query = UserQuery::new(UserSort::BalanceDesc, f, None).unwrap();
    assert!(
        !query.residual(),
        "the balance range holds the whole filter"
    );
    assert!(query.matches(&user("a", None, None, 0)));
    assert!(!query.matches(&user("a", None, None, -1)));
}

#[test]
fn a_cursor_resumes_its_own_order_only() {
    let at = Position {
        key: -42,
        sid: "u-7".into(),
    };
    let balance = cursor::encode(UserSort::BalanceAsc, &at, Some(9));
    let query = UserQuery::new(UserSort::BalanceAsc, filter(), Some(&balance)).unwrap();
    assert_eq!(query.after(), Some(&at));
    assert_eq!(query.version(), Some(9));
    let consumed = cursor::encode(UserSort::ConsumedDesc, &at, None);
    let query = UserQuery::new(UserSort::ConsumedDesc, filter(), Some(&consumed)).unwrap();
    assert_eq!(query.after(), Some(&at));
    // By sid the cursor is the sid, as it always was.
    assert_eq!(cursor::encode(UserSort::Sid, &at, None), "u-7");

    let m = invalid(UserQuery::new(UserSort::Sid, filter(), Some(&balance)));
    assert!(
        m.contains("sort `balance_asc`") && m.contains("sort `sid`"),
        "{m}"
    );
    let m = invalid(UserQuery::new(
        UserSort::BalanceDesc,
        filter(),
        Some(&balance),
    ));
    assert!(
        m.contains("`balance_asc`") && m.contains("`balance_desc`"),
        "{m}"
    );
    let m = invalid(UserQuery::new(UserSort::BalanceAsc, filter(), Some("u-7")));
    assert!(
        m.contains("cursor `u-7`") && m.contains("sort `sid`"),
        "{m}"
    );
    // A balance walk's cursor without its version was not made here.
    let m = invalid(UserQuery::new(
        UserSort::BalanceAsc,
        filter(),
        Some(&cursor::encode(UserSort::BalanceAsc, &at, None)),
    ));
    assert!(m.contains("changed"), "{m}");
    let huge = "x".repeat(5000);
    for sort in [UserSort::Sid, UserSort::BalanceAsc] {
        let m = invalid(UserQuery::new(sort, filter(), Some(&huge)));
        assert!(m.contains("cursor") && m.len() < 600, "{m}");
    }
}

#[test]
fn filter_texts_are_checked() {
    let m = invalid(UserQuery::new(
        UserSort::Sid,
        UserFilter {
            text: Some("a".repeat(MAX_TEXT_BYTES + 1)),
            ..filter()
        },
        None,
    ));
    assert!(
        m.contains("filter.text") && m.contains(&format!("{}", MAX_TEXT_BYTES + 1)),
        "{m}"
    );
    let m = invalid(UserQuery::new(
        UserSort::Sid,
        UserFilter {
            sid_prefix: Some("u\u{1b}".into()),
            ..filter()
        },
        None,
    ));
    assert!(m.contains("filter.sid_prefix"), "{m}");
}
