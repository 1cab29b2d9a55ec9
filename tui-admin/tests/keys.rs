//! Key handling on the state machine: key presses go through `key_action`
//! and `App::update` exactly as in the run loop, and the tests check both the
//! state and the RPC calls each step asks for.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_admin::app::{Action, App, Popup, RpcCall, View};
use tui_admin::event::key_action;

fn press(app: &mut App, code: KeyCode) -> Vec<RpcCall> {
    press_with(app, code, KeyModifiers::NONE)
}

fn press_with(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<RpcCall> {
    match key_action(app, KeyEvent::new(code, modifiers)) {
        Some(action) => app.update(action),
        None => vec![],
    }
}

fn typed(app: &mut App, text: &str) {
    for ch in text.chars() {
        press(app, KeyCode::Char(ch));
    }
}

#[test]
fn q_and_ctrl_c_quit() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('q'));
    assert!(app.should_quit);

    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    press_with(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.should_quit, "Ctrl-C quits even while typing a filter");
}

#[test]
fn q_while_typing_a_filter_is_text() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "q");
    assert!(!app.should_quit);
    assert_eq!(app.filter_input.as_deref(), Some("q"));
}

#[test]
fn tab_number_keys_and_back_tab_switch_views() {
    let (mut app, first) = fresh();
    answer(&mut app, first);
    assert_eq!(app.view, View::Overview);
    let calls = press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Users);
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, RpcCall::Users(r, _) if r.cursor.is_none())),
        "switching fetches the view's first page: {calls:?}"
    );
    answer(&mut app, calls);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.view, View::Aggregator);
    press(&mut app, KeyCode::Char('5'));
    assert_eq!(app.view, View::Rejected);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Events);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Overview, "Tab wraps around");
    press_with(&mut app, KeyCode::BackTab, KeyModifiers::SHIFT);
    assert_eq!(app.view, View::Events);
    assert!(
        press(&mut app, KeyCode::Char('7')).is_empty() && app.view == View::Events,
        "a number past the last view does nothing"
    );
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view, View::Payments);
}

#[test]
fn movement_keys_stay_inside_the_page() {
    let mut app = loaded(View::Users);
    assert_eq!(app.users.list.selected, 0);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.users.list.selected, 0, "no wrap above the first row");
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.users.list.selected, 2);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.users.list.selected, 1);
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(app.users.list.selected, 5);
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.users.list.selected, 5, "no wrap below the last row");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.users.list.selected, 0);
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.users.list.selected, 5, "PgDn clamps to the last row");
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.users.list.selected, 0);
}

#[test]
fn pages_follow_cursors_and_come_back() {
    let mut app = loaded(View::Users);
    assert_eq!(app.users.list.next_cursor.as_deref(), Some("u-0005"));
    press(&mut app, KeyCode::Char('j'));
    let calls = press(&mut app, KeyCode::Char('n'));
    let [RpcCall::Users(req, _)] = calls.as_slice() else {
        panic!("n asks for the next page: {calls:?}");
    };
    assert_eq!(req.cursor.as_deref(), Some("u-0005"));
    assert_eq!(req.page_index, 1);
    answer(&mut app, calls);
    assert_eq!(app.users.list.page_index(), 1);
    assert_eq!(
        app.users.list.selected, 0,
        "a new page starts at its first row"
    );
    assert_eq!(app.users.list.items.len(), 6, "only one page is held");

    let calls = press(&mut app, KeyCode::Char('p'));
    let [RpcCall::Users(req, _)] = calls.as_slice() else {
        panic!("p asks for the previous page: {calls:?}");
    };
    assert_eq!(req.cursor, None);
    assert_eq!(req.page_index, 0);
    answer(&mut app, calls);
    assert_eq!(app.users.list.page_index(), 0);
    assert!(
        press(&mut app, KeyCode::Char('p')).is_empty(),
        "no page before the first"
    );
}

#[test]
fn a_stale_page_answer_is_dropped() {
    let mut app = loaded(View::Users);
    let slow = press(&mut app, KeyCode::Char('r'));
    let fast = press(&mut app, KeyCode::Char('n'));
    answer(&mut app, fast);
    assert_eq!(app.users.list.page_index(), 1);
    // The refresh of page 1 answers after the move to page 2: ignored.
    answer(&mut app, slow);
    assert_eq!(app.users.list.page_index(), 1);
}

#[test]
fn payments_filter_by_user_runs_on_the_server() {
    let mut app = loaded(View::Payments);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "u-0001");
    let calls = press(&mut app, KeyCode::Enter);
    assert!(
        matches!(calls.as_slice(), [RpcCall::Payments(req, Some(user))] if user == "u-0001" && req.cursor.is_none()),
        "{calls:?}"
    );
    answer(&mut app, calls);
    let calls = press(&mut app, KeyCode::Esc);
    assert!(
        matches!(calls.as_slice(), [RpcCall::Payments(_, None)]),
        "Esc drops the user filter: {calls:?}"
    );
    assert_eq!(app.payments.user, None);
}

#[test]
fn enter_opens_the_selected_user_and_esc_goes_back() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('j'));
    let calls = press(&mut app, KeyCode::Enter);
    assert_eq!(calls, vec![RpcCall::Detail("u-0001".into())]);
    answer(&mut app, calls);
    let detail = app.detail.as_ref().expect("detail open");
    assert!(detail.data.data.as_ref().unwrap().balance.overdrawn);
    // Movement does nothing under the detail; Esc returns to the same row.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Esc);
    assert!(app.detail.is_none());
    assert_eq!(app.view, View::Users);
    assert_eq!(app.users.list.selected, 1);
}

#[test]
fn enter_on_a_payment_opens_its_user() {
    let mut app = loaded(View::Payments);
    press(&mut app, KeyCode::Char('j'));
    let calls = press(&mut app, KeyCode::Enter);
    assert_eq!(calls, vec![RpcCall::Detail("u-0000".into())]);
}

#[test]
fn a_asks_first_then_runs_and_shows_the_summary() {
    let mut app = loaded(View::Overview);
    assert!(
        press(&mut app, KeyCode::Char('a')).is_empty(),
        "nothing runs before confirming"
    );
    assert_eq!(app.popup, Some(Popup::ConfirmAggregate));
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(app.popup, None, "n cancels");

    press(&mut app, KeyCode::Char('a'));
    let calls = press(&mut app, KeyCode::Char('y'));
    assert_eq!(calls, vec![RpcCall::AggregateNow]);
    assert_eq!(app.popup, Some(Popup::Aggregating));
    assert!(app.is_loading());
    let more = app.update(Action::Answer(tui_admin::app::RpcAnswer::Aggregated(Ok(
        run(49, 321, false),
    ))));
    assert!(
        more.contains(&RpcCall::Overview) && more.contains(&RpcCall::AggregatorState),
        "a finished pass refreshes at once: {more:?}"
    );
    assert!(matches!(&app.popup, Some(Popup::Summary(s)) if s.run_id == 49));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.popup, None);
}

#[test]
fn shift_r_reconciles_polls_its_progress_and_refreshes_when_done() {
    use billing_api::CheckKind;
    use tui_admin::app::RpcAnswer;
    let mut app = loaded(View::Aggregator);
    let calls = press(&mut app, KeyCode::Char('R'));
    assert_eq!(calls, vec![RpcCall::Check(CheckKind::Reconcile)]);
    assert!(app.check.is_some() && app.is_loading());
    // One check at a time from here: R and V do nothing while it runs.
    assert!(press(&mut app, KeyCode::Char('R')).is_empty());
    assert!(press(&mut app, KeyCode::Char('V')).is_empty());
    // The state (with the server's progress) every second, not every tick.
    let t0 = app.now_millis;
    assert!(tick(&mut app, t0 + 500).is_empty());
    assert_eq!(tick(&mut app, t0 + 1_000), vec![RpcCall::AggregatorState]);
    assert!(
        tick(&mut app, t0 + 1_100).is_empty(),
        "not while the last state request is in flight"
    );
    answer(&mut app, vec![RpcCall::AggregatorState]);
    assert_eq!(tick(&mut app, t0 + 2_100), vec![RpcCall::AggregatorState]);
    answer(&mut app, vec![RpcCall::AggregatorState]);
    // Done: the view refreshes at once, the check is over.
    let more = app.update(Action::Answer(RpcAnswer::Checked(
        CheckKind::Reconcile,
        Ok(()),
    )));
    assert!(more.contains(&RpcCall::AggregatorState), "{more:?}");
    assert!(app.check.is_none() && app.check_error.is_none());
    answer(&mut app, more);
    assert!(tick(&mut app, t0 + 3_200).is_empty());

    // A failure is kept on the view until the next check.
    let calls = press(&mut app, KeyCode::Char('V'));
    assert_eq!(calls, vec![RpcCall::Check(CheckKind::Verify)]);
    fail(
        &mut app,
        calls,
        tui_admin::app::ErrorKind::Unreachable,
        "no answer within 15s",
    );
    assert_eq!(
        app.check_error.as_deref(),
        Some("verify: no answer within 15s")
    );
    press(&mut app, KeyCode::Char('R'));
    assert_eq!(app.check_error, None);
}

#[test]
fn a_failed_pass_is_shown() {
    let mut app = loaded(View::Overview);
    press(&mut app, KeyCode::Char('a'));
    let calls = press(&mut app, KeyCode::Enter);
    fail(
        &mut app,
        calls,
        tui_admin::app::ErrorKind::Server,
        "server error -32003: repo unreachable",
    );
    assert!(matches!(&app.popup, Some(Popup::AggregateFailed(m)) if m.contains("-32003")));
}

#[test]
fn question_mark_toggles_help_and_keys_under_it_do_nothing() {
    let mut app = loaded(View::Users);
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.popup, Some(Popup::Help));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.users.list.selected, 0);
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(app.popup, None);
}

#[test]
fn r_refreshes_the_current_view_but_never_doubles_a_request_in_flight() {
    let mut app = loaded(View::Users);
    let calls = press(&mut app, KeyCode::Char('r'));
    assert!(
        calls.iter().any(|c| matches!(c, RpcCall::Users(..))),
        "{calls:?}"
    );
    assert!(calls.contains(&RpcCall::AggregatorState));
    let again = press(&mut app, KeyCode::Char('r'));
    assert!(again.is_empty(), "still in flight: {again:?}");
}

#[test]
fn ticks_poll_at_the_refresh_interval() {
    let mut app = loaded(View::Aggregator);
    let t0 = now_millis();
    assert!(tick(&mut app, t0 + 500).is_empty());
    let calls = tick(&mut app, t0 + 2_000);
    assert_eq!(calls, vec![RpcCall::AggregatorState]);
    answer(&mut app, calls);
    assert!(tick(&mut app, t0 + 3_000).is_empty());
    assert_eq!(tick(&mut app, t0 + 4_000), vec![RpcCall::AggregatorState]);
}

#[test]
fn a_run_notification_refreshes_at_once() {
    let mut app = loaded(View::Overview);
    let calls = app.update(Action::Answer(tui_admin::app::RpcAnswer::RunNotified(run(
        50, 10, false,
    ))));
    assert!(calls.contains(&RpcCall::Overview), "{calls:?}");
    assert!(calls.contains(&RpcCall::Runs), "{calls:?}");
    app.update(Action::Answer(tui_admin::app::RpcAnswer::Live(true)));
    assert!(app.live);
}

#[test]
fn unknown_keys_do_nothing() {
    let app = loaded(View::Users);
    assert_eq!(
        key_action(&app, KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE)),
        None
    );
    assert_eq!(
        key_action(&app, KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE)),
        None
    );
}

#[test]
fn six_shows_the_events_and_enter_and_esc_open_and_close_one() {
    let (mut app, first) = fresh();
    answer(&mut app, first);
    let calls = press(&mut app, KeyCode::Char('6'));
    assert_eq!(app.view, View::Events);
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, RpcCall::Events(r) if r.cursor.is_none())),
        "showing the view fetches its first page: {calls:?}"
    );
    answer(&mut app, calls);
    assert_eq!(app.events.list.items.len(), 6);

    press(&mut app, KeyCode::Char('j'));
    assert!(
        press(&mut app, KeyCode::Enter).is_empty(),
        "the event is on the page already"
    );
    let Some(Popup::Event(detail)) = &app.popup else {
        panic!("Enter opens the event: {:?}", app.popup);
    };
    assert_eq!(detail.event.id, "evt_000000000005");
    assert_eq!(detail.scroll, 0);
    // j/k scroll the popup, not the list; G goes to its end, g back.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('k'));
    assert!(matches!(&app.popup, Some(Popup::Event(d)) if d.scroll == 1));
    press(&mut app, KeyCode::Char('G'));
    let lines = tui_admin::event_text::detail_lines(&events()[1], app.now_millis).len();
    assert!(matches!(&app.popup, Some(Popup::Event(d)) if d.scroll == lines - 1));
    press(&mut app, KeyCode::Char('g'));
    assert!(matches!(&app.popup, Some(Popup::Event(d)) if d.scroll == 0));
    assert_eq!(app.events.list.selected, 1);

    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
    assert_eq!(app.view, View::Events);
    assert_eq!(app.events.list.selected, 1, "Esc returns to the same row");
    // Enter closes it too.
    press(&mut app, KeyCode::Enter);
    assert!(app.popup.is_some());
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.popup, None);
}

#[test]
fn an_open_event_follows_its_delivery_state_as_the_page_refreshes() {
    use billing_api::DeliveryStatus;
    use tui_admin::app::RpcAnswer;
    let mut app = loaded(View::Events);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    // Polling goes on under the popup.
    let calls = tick(&mut app, now_millis() + 2_000);
    let Some(RpcCall::Events(req)) = calls
        .iter()
        .find(|c| matches!(c, RpcCall::Events(_)))
        .cloned()
    else {
        panic!("the events are polled: {calls:?}");
    };
    let mut fresh = events();
    fresh[1].deliveries[0].status = DeliveryStatus::Delivered;
    app.update(Action::Answer(RpcAnswer::Events(
        req,
        Ok(page(fresh, None)),
    )));
    let Some(Popup::Event(detail)) = &app.popup else {
        panic!("the popup stays open");
    };
    assert_eq!(detail.event.id, "evt_000000000005");
    assert_eq!(detail.event.deliveries[0].status, DeliveryStatus::Delivered);
}

#[test]
fn events_page_and_filter_like_the_rejected_view() {
    let mut app = loaded(View::Events);
    let calls = press(&mut app, KeyCode::Char('n'));
    let [RpcCall::Events(req)] = calls.as_slice() else {
        panic!("n asks for the next page: {calls:?}");
    };
    assert_eq!(req.cursor.as_deref(), Some("evt_000000000001"));
    answer(&mut app, calls);
    assert_eq!(app.events.list.page_index(), 1);
    let calls = press(&mut app, KeyCode::Char('p'));
    assert!(
        matches!(calls.as_slice(), [RpcCall::Events(r)] if r.cursor.is_none()),
        "{calls:?}"
    );
    answer(&mut app, calls);

    // `/` filters the page on screen by type, subject, details or delivery.
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "u-0001");
    let ids: Vec<&str> = app.events.visible().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_000000000005", "evt_000000000004"]);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.events.filter, "u-0001");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "node.");
    assert_eq!(app.events.visible().len(), 2);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "no webhook");
    let ids: Vec<&str> = app.events.visible().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_000000000001"]);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.events.visible().len(), 6);
}

#[test]
fn a_run_notification_refreshes_the_events() {
    let mut app = loaded(View::Events);
    let calls = app.update(Action::Answer(tui_admin::app::RpcAnswer::RunNotified(run(
        50, 10, false,
    ))));
    assert!(
        calls.iter().any(|c| matches!(c, RpcCall::Events(_))),
        "{calls:?}"
    );
}
