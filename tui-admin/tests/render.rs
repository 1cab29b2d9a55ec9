//! Rendering tests: every view drawn into a `TestBackend` and compared with a
//! committed snapshot, with realistic data, an empty server, failing fetches,
//! a rejected secret and terminals too small for the layout.

mod common;

use common::*;
use tui_admin::app::{Action, ErrorKind, RpcCall, View};

fn snapshot(app: &tui_admin::app::App, width: u16, height: u16) -> String {
    render(app, width, height).backend().to_string()
}

#[test]
fn overview_with_data() {
    let app = loaded(View::Overview);
    insta::assert_snapshot!(snapshot(&app, 120, 30));
}

#[test]
fn users_with_data() {
    let app = loaded(View::Users);
    let text = snapshot(&app, 120, 20);
    assert!(text.contains("u-0001"), "{text}");
    assert!(text.contains("-2.50"), "overdrawn balance shown: {text}");
    insta::assert_snapshot!(text);
}

/// Overdrawn rows are red, others are not: colour is not in the text snapshots.
#[test]
fn overdrawn_rows_are_red() {
    let app = loaded(View::Users);
    let terminal = render(&app, 120, 20);
    let buffer = terminal.backend().buffer();
    let row_of = |sid: &str| {
        (0..buffer.area.height)
            .find(|&y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect();
                line.contains(sid)
            })
            .unwrap_or_else(|| panic!("{sid} not on screen"))
    };
    // Column 5 is inside the SID cell of each row.
    assert_eq!(buffer[(5, row_of("u-0001"))].fg, ratatui::style::Color::Red);
    assert_eq!(buffer[(5, row_of("u-0005"))].fg, ratatui::style::Color::Red);
    assert_ne!(buffer[(5, row_of("u-0002"))].fg, ratatui::style::Color::Red);
}

/// `s` (lowest balance first), `o` (overdrawn only) and a search, each run by
/// the server: the title names them, and a filtered page has no row number.
#[test]
fn users_sorted_and_filtered_on_the_server() {
    let mut app = loaded(View::Users);
    let mut actions = vec![
        Action::CycleSort,
        Action::ToggleOverdrawn,
        Action::StartFilter,
    ];
    actions.extend("example.org".chars().map(Action::FilterChar));
    actions.push(Action::ApplyFilter);
    for action in actions {
        let calls = app.update(action);
        answer(&mut app, calls);
    }
    let text = snapshot(&app, 120, 12);
    assert!(
        text.contains(
            "Users · lowest balance first · filter \"example.org\" · overdrawn only · page 1 · more: n"
        ),
        "{text}"
    );
    let at = |sid: &str| text.find(sid).unwrap_or_else(|| panic!("{sid}:\n{text}"));
    assert!(at("u-0005") < at("u-0001"), "lowest balance first:\n{text}");
    assert!(!text.contains("u-0002"), "overdrawn users only:\n{text}");
    insta::assert_snapshot!(text);
}

/// A filter the order cannot skip to reads a bounded number of users a page:
/// an empty page with more to read says so instead of "no users".
#[test]
fn users_filtered_page_with_no_match_yet() {
    use tui_admin::app::RpcAnswer;
    let mut app = loaded(View::Users);
    let calls = app.update(Action::ToggleOverdrawn);
    let [RpcCall::Users(req, query)] = calls.as_slice() else {
        panic!("o asks for the first page: {calls:?}");
    };
    app.update(Action::Answer(RpcAnswer::Users(
        req.clone(),
        query.clone(),
        Ok(page(vec![], Some("opaque-cursor"))),
    )));
    let text = snapshot(&app, 100, 8);
    assert!(
        text.contains("no match in the users read so far — n reads on"),
        "{text}"
    );
    assert!(!text.contains("no users"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn user_detail_with_data() {
    let mut app = loaded(View::Users);
    app.update(Action::Down);
    let calls = app.update(Action::Open);
    answer(&mut app, calls);
    let text = snapshot(&app, 120, 24);
    assert!(text.contains("User u-0001"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn payments_with_data() {
    let app = loaded(View::Payments);
    insta::assert_snapshot!(snapshot(&app, 120, 14));
}

#[test]
fn aggregator_with_data() {
    let app = loaded(View::Aggregator);
    insta::assert_snapshot!(snapshot(&app, 120, 16));
}

/// `R` pressed: the server's progress, a spinner and the time so far, above
/// the last outcomes.
#[test]
fn aggregator_with_a_check_running() {
    use billing_api::{CheckKind, CheckProgress};
    use tui_admin::app::RpcAnswer;
    let mut app = loaded(View::Aggregator);
    let calls = app.update(Action::RunCheck(CheckKind::Reconcile));
    assert_eq!(calls, vec![RpcCall::Check(CheckKind::Reconcile)]);
    let mut state = state();
    state.check_running = Some(CheckProgress {
        kind: CheckKind::Reconcile,
        started_at: billing_api::millis_to_rfc3339(app.now_millis - 12_000),
        done: 3,
        total: 10,
    });
    app.update(Action::Answer(RpcAnswer::AggregatorState(Ok(state))));
    insta::assert_snapshot!(snapshot(&app, 120, 18));
}

#[test]
fn rejected_with_data() {
    let app = loaded(View::Rejected);
    insta::assert_snapshot!(snapshot(&app, 140, 20));
}

#[test]
fn events_with_data() {
    let app = loaded(View::Events);
    let text = snapshot(&app, 140, 20);
    for expected in [
        "balance -2.50 (was 10.00, threshold 5.00)",
        "pending · 3 attempts · next in 40s · last 503",
        "failed after 17 attempts: connection refused",
        "no webhook",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    insta::assert_snapshot!(text);
}

/// Types in red (action needed), yellow (warning) or green (recovered).
#[test]
fn event_types_are_coloured() {
    use ratatui::style::Color;
    let app = loaded(View::Events);
    let terminal = render(&app, 140, 20);
    let buffer = terminal.backend().buffer();
    let colour_of = |word: &str| {
        (0..buffer.area.height)
            .find_map(|y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect();
                let x = line.find(word)?;
                // Box-drawing characters before it are several bytes each.
                let column = line[..x].chars().count() as u16;
                Some(buffer[(column, y)].fg)
            })
            .unwrap_or_else(|| panic!("{word} not on screen"))
    };
    assert_eq!(colour_of("balance.overdrawn"), Color::Red);
    assert_eq!(colour_of("aggregation.failed"), Color::Red);
    assert_eq!(colour_of("node.stale"), Color::Red);
    assert_eq!(colour_of("balance.low"), Color::Yellow);
    assert_eq!(colour_of("balance.recovered"), Color::Green);
    assert_eq!(colour_of("node.recovered"), Color::Green);
    assert_eq!(colour_of("failed after 17"), Color::Red);
}

#[test]
fn event_detail_popup() {
    let mut app = loaded(View::Events);
    app.update(Action::Down);
    app.update(Action::Open);
    let text = snapshot(&app, 120, 30);
    assert!(text.contains("\"previous_balance_cents\": 1000"), "{text}");
    assert!(
        text.contains("next attempt  2026-11-27T10:00:40.000Z (in 40s)"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn help_popup() {
    let mut app = loaded(View::Users);
    app.update(Action::ToggleHelp);
    insta::assert_snapshot!(snapshot(&app, 100, 24));
}

#[test]
fn aggregate_confirm_and_summary() {
    let mut app = loaded(View::Overview);
    app.update(Action::AskAggregate);
    insta::assert_snapshot!("aggregate_confirm", snapshot(&app, 100, 24));
    let calls = app.update(Action::ConfirmAggregate);
    answer(&mut app, calls);
    let text = snapshot(&app, 100, 24);
    assert!(text.contains("pass #49"), "{text}");
    insta::assert_snapshot!("aggregate_summary", text);
}

#[test]
fn every_view_on_an_empty_server() {
    let (mut app, first) = fresh();
    answer_empty(&mut app, first);
    let mut out = String::new();
    for view in View::ALL {
        let calls = app.update(Action::ShowView(view));
        answer_empty(&mut app, calls);
        out.push_str(&format!(
            "--- {}\n{}\n",
            view.title(),
            snapshot(&app, 100, 16)
        ));
    }
    assert!(out.contains("no users on the server yet"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn loading_before_the_first_answer() {
    let (app, _pending) = fresh();
    let text = snapshot(&app, 100, 12);
    assert!(text.contains("loading"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn unreachable_server_keeps_the_last_good_data() {
    let mut app = loaded(View::Users);
    let calls = app.update(Action::Refresh);
    fail(
        &mut app,
        calls,
        ErrorKind::Unreachable,
        "error sending request: connection refused",
    );
    let text = snapshot(&app, 120, 16);
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("u-0004"), "last good rows stay: {text}");
    assert!(
        text.contains(ADVICE),
        "what to check, as the CLI says it: {text}"
    );
    insta::assert_snapshot!(text);
    // The server is back: the advice goes.
    let calls = app.update(Action::Refresh);
    answer(&mut app, calls);
    let text = snapshot(&app, 120, 16);
    assert!(!text.contains(ADVICE), "{text}");
}

/// What the CLI advises when it cannot reach the server.
const ADVICE: &str = "check that rpc-server is running and --url is right";

#[test]
fn unreachable_server_from_the_start() {
    let (mut app, first) = fresh();
    fail(
        &mut app,
        first,
        ErrorKind::Unreachable,
        "connection refused",
    );
    let calls = app.update(Action::ShowView(View::Users));
    fail(
        &mut app,
        calls,
        ErrorKind::Unreachable,
        "connection refused",
    );
    let text = snapshot(&app, 100, 12);
    assert!(
        text.contains(&format!("cannot reach http://127.0.0.1:8787: {ADVICE}")),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

/// The CLI's advice is the dashboard's.
#[test]
fn the_cli_gives_the_same_advice() {
    assert_eq!(tui_admin::config::UNREACHABLE_ADVICE, ADVICE);
}

#[test]
fn wrong_secret_says_so() {
    let (mut app, first) = fresh();
    fail(
        &mut app,
        first,
        ErrorKind::Unauthorized,
        "Request rejected `401`",
    );
    let text = snapshot(&app, 100, 20);
    assert!(text.contains("rejected the admin secret"), "{text}");
    assert!(text.contains("./demo-data/admin.secret"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn narrow_terminal_every_view() {
    let mut out = String::new();
    for view in View::ALL {
        let app = loaded(view);
        out.push_str(&format!(
            "--- {}\n{}\n",
            view.title(),
            snapshot(&app, 40, 12)
        ));
    }
    insta::assert_snapshot!(out);
}

/// Tiny and degenerate sizes must not panic, in any view or popup.
#[test]
fn tiny_terminals_do_not_panic() {
    for view in View::ALL {
        for (w, h) in [(1, 1), (2, 3), (10, 4), (20, 6), (40, 12), (0, 0), (300, 2)] {
            let mut app = loaded(view);
            render(&app, w, h);
            app.update(Action::ToggleHelp);
            render(&app, w, h);
            app.update(Action::ToggleHelp);
            app.update(Action::AskAggregate);
            render(&app, w, h);
            let calls = app.update(Action::ConfirmAggregate);
            answer(&mut app, calls);
            render(&app, w, h);
            app.update(Action::Back);
            let calls = app.update(Action::Open);
            answer(&mut app, calls);
            render(&app, w, h);
        }
    }
}

/// A full page of 100 users, scrolled: only the rows around the selection are
/// drawn and the selected one is on screen.
#[test]
fn users_scrolled_to_the_selection() {
    let mut app = loaded(View::Users);
    let calls = app.update(Action::Refresh);
    for call in calls {
        let data = match call {
            tui_admin::app::RpcCall::Users(req, query) => tui_admin::app::RpcAnswer::Users(
                req,
                query,
                Ok(page(
                    (0..100).map(|i| user(i, 5_000, 100 * i as i64)).collect(),
                    Some("u-0099"),
                )),
            ),
            other => {
                answer(&mut app, vec![other]);
                continue;
            }
        };
        app.update(Action::Answer(data));
    }
    for _ in 0..5 {
        app.update(Action::PageDown);
    }
    assert_eq!(app.users.list.selected, 50);
    let text = snapshot(&app, 100, 14);
    assert!(text.contains("▶ u-0050"), "{text}");
    assert!(!text.contains("u-0000"), "{text}");
    insta::assert_snapshot!(text);
}
