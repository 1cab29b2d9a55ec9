//! The Users view's query keys on the state machine: `s` (the server's
//! order), `/` (a search of all users on the server), `o` (overdrawn only),
//! and how paging, polling and late answers keep to the query. Keys go
//! through `key_action` and `App::update` exactly as in the run loop.

mod common;

use billing_api::types::UserBilling;
use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_admin::app::{Action, App, PageRequest, RpcAnswer, RpcCall, UserQuery, UserSort, View};
use tui_admin::event::key_action;

fn press(app: &mut App, code: KeyCode) -> Vec<RpcCall> {
    match key_action(app, KeyEvent::new(code, KeyModifiers::NONE)) {
        Some(action) => app.update(action),
        None => vec![],
    }
}

fn typed(app: &mut App, text: &str) {
    for ch in text.chars() {
        press(app, KeyCode::Char(ch));
    }
}

/// The one users request among `calls` (with the state fetch beside it).
fn users_request(calls: &[RpcCall]) -> (PageRequest, UserQuery) {
    let found: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            RpcCall::Users(req, query) => Some((req.clone(), query.clone())),
            _ => None,
        })
        .collect();
    match found.as_slice() {
        [one] => one.clone(),
        _ => panic!("one users request expected: {calls:?}"),
    }
}

#[test]
fn s_asks_the_server_for_the_next_order_from_the_first_page() {
    let mut app = loaded(View::Users);
    let calls = press(&mut app, KeyCode::Char('n'));
    answer(&mut app, calls);
    assert_eq!(app.users.list.page_index(), 1);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let calls = press(&mut app, KeyCode::Char('s'));
        let (req, query) = users_request(&calls);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (req.cursor, req.page_index),
            (None, 0),
            "paging starts again"
        );
        assert_eq!(query, app.users.query);
        assert!(
            app.users.list.items.is_empty(),
            "rows of the old order are gone"
        );
        answer(&mut app, calls);
        assert_eq!(app.users.list.page_index(), 0);
        seen.push(query.sort);
    }
    assert_eq!(
        seen,
        [
            UserSort::BalanceAsc,
            UserSort::BalanceDesc,
            UserSort::ConsumedDesc,
            UserSort::Sid
        ]
    );
    assert_eq!(
        key_action(&app, KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT)),
        None,
        "no page-local reverse any more"
    );
}

#[test]
fn the_lowest_balance_is_one_keypress() {
    let mut app = loaded(View::Users);
    let calls = press(&mut app, KeyCode::Char('s'));
    assert_eq!(users_request(&calls).1.sort, UserSort::BalanceAsc);
    answer(&mut app, calls);
    let order: Vec<&str> = app
        .users
        .visible()
        .iter()
        .map(|u| u.user_sid.as_str())
        .collect();
    assert_eq!(
        order,
        ["u-0005", "u-0001", "u-0003", "u-0004", "u-0000", "u-0002"]
    );
}

#[test]
fn slash_searches_all_users_on_enter_and_esc_clears() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(app.filter_input.as_deref(), Some(""));
    assert!(
        press(&mut app, KeyCode::Char('u')).is_empty(),
        "nothing is sent while typing"
    );
    typed(&mut app, "0004 ");
    assert_eq!(
        app.users.visible().len(),
        6,
        "the page is not filtered locally"
    );
    let calls = press(&mut app, KeyCode::Enter);
    let (req, query) = users_request(&calls);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(req.cursor, None);
    assert_eq!(query.text.as_deref(), Some("u0004"), "trimmed");
    assert_eq!(query.sort, UserSort::Sid);
    assert_eq!(
        query.filter().and_then(|f| f.text).as_deref(),
        Some("u0004"),
        "the server's filter.text"
    );
    assert_eq!(app.filter_input, None);
    answer(&mut app, calls);
    assert_eq!(app.users.visible().len(), 1);
    assert!(app.detail.is_none());

    // `/` again starts from the search; Esc while typing clears it too.
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(app.filter_input.as_deref(), Some("u0004"));
    let calls = press(&mut app, KeyCode::Esc);
    let (req, query) = users_request(&calls);
    assert_eq!((req.cursor, query), (None, UserQuery::default()));
    answer(&mut app, calls);
    assert_eq!(app.users.visible().len(), 6);
    assert!(
        press(&mut app, KeyCode::Esc).is_empty(),
        "nothing to clear, nothing to fetch"
    );

    // Esc on the list clears a search kept with Enter.
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "User 0002");
    let calls = press(&mut app, KeyCode::Enter);
    answer(&mut app, calls);
    assert_eq!(app.users.query.text.as_deref(), Some("User 0002"));
    let calls = press(&mut app, KeyCode::Esc);
    assert_eq!(users_request(&calls).1.text, None);

    // An empty search is no search.
    press(&mut app, KeyCode::Char('/'));
    let calls = press(&mut app, KeyCode::Enter);
    assert_eq!(users_request(&calls).1.filter(), None);
}

#[test]
fn o_toggles_overdrawn_users_only() {
    let mut app = loaded(View::Users);
    let calls = press(&mut app, KeyCode::Char('o'));
    let (req, query) = users_request(&calls);
    assert_eq!(req.cursor, None);
    assert!(query.overdrawn);
    assert_eq!(query.filter().and_then(|f| f.overdrawn), Some(true));
    answer(&mut app, calls);
    let sids: Vec<&str> = app
        .users
        .visible()
        .iter()
        .map(|u| u.user_sid.as_str())
        .collect();
    assert_eq!(sids, ["u-0001", "u-0005"]);
    let calls = press(&mut app, KeyCode::Char('o'));
    let (_, query) = users_request(&calls);
    assert_eq!((query.overdrawn, query.filter()), (false, None));
}

#[test]
fn paging_polling_and_refresh_keep_the_query() {
    let mut app = loaded(View::Users);
    for keys in [
        &[KeyCode::Char('s')][..],
        &[KeyCode::Char('o')],
        &[KeyCode::Char('/')],
    ] {
        for key in keys {
            let calls = press(&mut app, *key);
            answer(&mut app, calls);
        }
    }
    typed(&mut app, "example");
    let calls = press(&mut app, KeyCode::Enter);
    answer(&mut app, calls);
    let query = app.users.query.clone();
    assert_eq!(
        (query.sort, query.text.as_deref(), query.overdrawn),
        (UserSort::BalanceAsc, Some("example"), true)
    );

    let calls = press(&mut app, KeyCode::Char('n'));
    let (req, sent) = users_request(&calls);
    assert_eq!((req.cursor.as_deref(), req.page_index), (Some("u-0005"), 1));
    assert_eq!(sent, query, "the cursor goes with the query it came from");
    answer(&mut app, calls);

    let calls = tick(&mut app, now_millis() + 5_000);
    let (req, sent) = users_request(&calls);
    assert_eq!((req.cursor.as_deref(), req.page_index), (Some("u-0005"), 1));
    assert_eq!(sent, query, "polling re-fetches the page on screen");
    answer(&mut app, calls);

    let calls = press(&mut app, KeyCode::Char('p'));
    let (req, sent) = users_request(&calls);
    assert_eq!((req.cursor, sent), (None, query.clone()));
    answer(&mut app, calls);

    let calls = app.update(Action::Answer(RpcAnswer::RunNotified(run(50, 10, false))));
    assert_eq!(users_request(&calls).1, query, "a finished pass too");
}

#[test]
fn an_answer_to_an_older_query_is_dropped() {
    let mut app = loaded(View::Users);
    let by_balance = press(&mut app, KeyCode::Char('s'));
    let highest_first = press(&mut app, KeyCode::Char('s'));
    answer(&mut app, by_balance);
    assert!(
        !app.users.list.loaded && app.users.list.items.is_empty(),
        "the late answer of the order before is not shown"
    );
    answer(&mut app, highest_first);
    assert_eq!(app.users.query.sort, UserSort::BalanceDesc);
    assert_eq!(app.users.visible()[0].user_sid, "u-0002");

    // Even an answer that claims the newest request is dropped when it was
    // asked for another query.
    let calls = press(&mut app, KeyCode::Char('r'));
    let (req, _) = users_request(&calls);
    app.update(Action::Answer(RpcAnswer::Users(
        req,
        UserQuery::default(),
        Ok(page(vec![user(9, 1, 0)], None)),
    )));
    assert_eq!(app.users.visible()[0].user_sid, "u-0002");
}

#[test]
fn a_refresh_keeps_the_selected_user_when_the_order_moves_it() {
    let mut app = loaded(View::Users);
    let calls = press(&mut app, KeyCode::Char('s'));
    answer(&mut app, calls);
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(
        app.users.visible()[app.users.list.selected].user_sid,
        "u-0001"
    );
    // u-0001 paid meanwhile: it moves to the end of the page.
    let calls = press(&mut app, KeyCode::Char('r'));
    let (req, query) = users_request(&calls);
    let mut rows = users_for(&query);
    let moved = rows.remove(1);
    rows.push(UserBilling {
        credit_balance_cents: 99_999_999,
        ..moved
    });
    app.update(Action::Answer(RpcAnswer::Users(
        req,
        query,
        Ok(page(rows, None)),
    )));
    assert_eq!(app.users.list.selected, 5);
    assert_eq!(app.users.visible()[5].user_sid, "u-0001");
}

#[test]
fn s_and_o_act_on_the_users_list_only() {
    let mut app = loaded(View::Payments);
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert!(press(&mut app, KeyCode::Char('o')).is_empty());
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Enter);
    assert!(app.detail.is_some());
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert!(press(&mut app, KeyCode::Char('o')).is_empty());
    assert_eq!(app.users.query, UserQuery::default());
}

/// A search reads at most 10,000 users a page; a sid it does not find on
/// its first page is opened with `get_balance`, one read. With more to read
/// the search stays (n reads on); when nobody matches at all it is dropped.
#[test]
fn a_search_that_finds_nobody_opens_the_sid() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "u-0777123");
    let calls = press(&mut app, KeyCode::Enter);
    let (req, query) = users_request(&calls);
    assert_eq!(query.text.as_deref(), Some("u-0777123"));
    assert!(app.detail.is_none(), "the search answers first");
    let more = app.update(Action::Answer(RpcAnswer::Users(
        req,
        query.clone(),
        Ok(page(vec![], Some("opaque"))),
    )));
    assert_eq!(more, vec![RpcCall::Detail("u-0777123".into())]);
    assert_eq!(
        app.detail.as_ref().map(|d| d.user_sid.as_str()),
        Some("u-0777123")
    );
    assert_eq!(app.users.query, query, "the search stays: n reads on");
    answer(&mut app, more);
    press(&mut app, KeyCode::Esc);
    assert!(app.detail.is_none());
    assert_eq!(app.users.list.next_cursor.as_deref(), Some("opaque"));

    // Nobody matches anywhere: the sid opens and the search is not kept.
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "u-4242");
    let calls = press(&mut app, KeyCode::Enter);
    let (req, query) = users_request(&calls);
    let more = app.update(Action::Answer(RpcAnswer::Users(
        req,
        query,
        Ok(page(vec![], None)),
    )));
    let (req, query) = users_request(&more);
    assert_eq!((req.cursor, query), (None, UserQuery::default()));
    assert!(more.contains(&RpcCall::Detail("u-4242".into())), "{more:?}");
    assert_eq!(app.users.query.text, None);
}

#[test]
fn a_search_that_finds_users_opens_nothing() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "User 0002");
    let calls = press(&mut app, KeyCode::Enter);
    answer(&mut app, calls);
    assert!(app.detail.is_none());
    assert_eq!(app.users.visible().len(), 1);
    // Nor does a later empty page of the same search (only its first answer counts).
    let calls = press(&mut app, KeyCode::Char('r'));
    let (req, query) = users_request(&calls);
    let more = app.update(Action::Answer(RpcAnswer::Users(
        req,
        query,
        Ok(page(vec![], None)),
    )));
    assert!(more.is_empty() && app.detail.is_none(), "{more:?}");
}
