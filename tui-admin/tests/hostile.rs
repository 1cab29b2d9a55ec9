//! Control characters in server data (sids, names, payment fields, node errors,
//! rejection details, error messages) never reach the terminal raw: every view
//! is drawn with hostile data fed through `App::update`, exactly as finished
//! fetches are, and every cell of the frame is checked.

mod common;

use billing_api::types::*;
use common::*;
use tui_admin::app::{
    Action, App, ErrorKind, FetchError, Popup, RpcAnswer, RpcCall, UserDetailData, View,
};

/// Retitles the terminal, rings, returns, ends a C string, turns the line
/// around, and a C1 CSI that clears the screen on 8-bit terminals.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\r\u{0}\u{202e}\u{9b}2J";
/// `HOSTILE` as the dashboard must show it.
const SHOWN: &str = "\\u{1b}]0;owned\\u{7}\\u{d}\\u{0}\\u{202e}\\u{9b}2J";

/// Answers every call like the server would, with hostile text in it.
fn answer_hostile(app: &mut App, calls: Vec<RpcCall>) {
    for call in calls {
        let data = match call {
            RpcCall::Overview => RpcAnswer::Overview(Ok(overview())),
            RpcCall::AggregatorState => {
                let mut state = state();
                state.nodes[2].last_error = Some(format!("bad file {HOSTILE}"));
                state.last_run.as_mut().unwrap().errors[0].message =
                    format!("pass error {HOSTILE}");
                state.last_reconcile.as_mut().unwrap().summary = format!("summary {HOSTILE}");
                RpcAnswer::AggregatorState(Ok(state))
            }
            RpcCall::Runs => RpcAnswer::Runs(Ok(runs())),
            RpcCall::Users(req, query) => {
                let mut users = users();
                users[0].display_name = Some(format!("name {HOSTILE}"));
                users[1].email = Some(format!("{HOSTILE}@example.org"));
                users[2].user_sid = format!("u{HOSTILE}");
                RpcAnswer::Users(req, query, Ok(page(users, None)))
            }
            RpcCall::Payments(req, _) => {
                let mut payments = payments();
                payments[0].reference = Some(format!("ref {HOSTILE}"));
                payments[1].kind = HOSTILE.into();
                payments[2].payment_id = format!("pay{HOSTILE}");
                RpcAnswer::Payments(req, Ok(page(payments, None)))
            }
            RpcCall::Rejected(req) => {
                let mut rejected = rejected();
                rejected[0].detail = format!("detail {HOSTILE}");
                rejected[0].user_sid = Some(format!("u{HOSTILE}"));
                rejected[0].idempotency_key = Some(format!("k{HOSTILE}"));
                rejected[1].file_path = format!("nodes/node-a/{HOSTILE}");
                RpcAnswer::Rejected(req, Ok(page(rejected, None)))
            }
            RpcCall::Events(req) => {
                let mut events = events();
                events[0].data["message"] = format!("pass error {HOSTILE}").into();
                events[1].data["user_sid"] = format!("u{HOSTILE}").into();
                events[1].deliveries[0].last_error = Some(format!("refused {HOSTILE}"));
                events[1].deliveries[0].url = format!("https://hooks.example.org/{HOSTILE}");
                events[3].data["node_name"] = format!("node{HOSTILE}").into();
                events[3].deliveries[0].last_error = Some(format!("reset {HOSTILE}"));
                RpcAnswer::Events(req, Ok(page(events, None)))
            }
            RpcCall::Detail(sid) => {
                let mut consumed = consumed(&sid);
                consumed[0].file_path = format!("nodes/node-a/{HOSTILE}");
                RpcAnswer::Detail(
                    sid.clone(),
                    Ok(UserDetailData {
                        balance: Balance {
                            user_sid: format!("{sid}{HOSTILE}"),
                            credit_balance_cents: 1,
                            total_paid_cents: 1,
                            total_consumed_cents: 0,
                            overdrawn: false,
                        },
                        payments: vec![],
                        consumed,
                    }),
                )
            }
            RpcCall::AggregateNow => RpcAnswer::Aggregated(Err(FetchError {
                kind: ErrorKind::Server,
                message: format!("server error -32003: {HOSTILE}"),
            })),
            RpcCall::Check(kind) => RpcAnswer::Checked(
                kind,
                Err(FetchError {
                    kind: ErrorKind::Server,
                    message: format!("reconcile failed: {HOSTILE}"),
                }),
            ),
        };
        let more = app.update(Action::Answer(data));
        answer_hostile(app, more);
    }
}

fn act(app: &mut App, action: Action) {
    let calls = app.update(action);
    answer_hostile(app, calls);
}

/// Every cell of a frame: no raw control character; returns the frame as text.
fn clean_frame(app: &App, width: u16, height: u16) -> String {
    let terminal = render(app, width, height);
    let buffer = terminal.backend().buffer();
    for (i, cell) in buffer.content.iter().enumerate() {
        assert!(
            !cell.symbol().chars().any(tui_admin::safe::is_unsafe),
            "raw control character {:?} in cell ({}, {})\n{}",
            cell.symbol(),
            i % usize::from(width),
            i / usize::from(width),
            terminal.backend()
        );
    }
    terminal.backend().to_string()
}

#[test]
fn every_view_shows_control_characters_visibly() {
    let (mut app, first) = fresh();
    answer_hostile(&mut app, first);
    for view in View::ALL {
        act(&mut app, Action::ShowView(view));
        let text = clean_frame(&app, 250, 30);
        if view != View::Overview {
            assert!(text.contains("\\u{1b}]0;owned"), "{view:?}:\n{text}");
        }
    }
    // The rejected view's detail pane quotes the whole value.
    act(&mut app, Action::ShowView(View::Rejected));
    let text = clean_frame(&app, 250, 30);
    assert!(text.contains(&format!("detail {SHOWN}")), "{text}");
    insta::assert_snapshot!(clean_frame(&app, 160, 24));

    // An event's detail popup quotes its data and deliveries.
    act(&mut app, Action::ShowView(View::Events));
    act(&mut app, Action::Down);
    act(&mut app, Action::Open);
    assert!(matches!(app.popup, Some(Popup::Event(_))));
    let text = clean_frame(&app, 160, 40);
    // The data is shown as JSON, which writes the backslash of the escape as `\\`.
    let in_json = SHOWN.replace('\\', "\\\\");
    assert!(
        text.contains(&format!("\"user_sid\": \"u{in_json}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("last error    refused {SHOWN}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("hooks.example.org/{SHOWN}")),
        "{text}"
    );
    act(&mut app, Action::Back);

    // The user detail screen, opened from the hostile sid's row.
    act(&mut app, Action::ShowView(View::Users));
    act(&mut app, Action::Bottom);
    act(&mut app, Action::Open);
    assert!(app.detail.is_some());
    let text = clean_frame(&app, 160, 30);
    assert!(text.contains(SHOWN), "{text}");
}

#[test]
fn failed_fetches_show_control_characters_visibly() {
    // A transport error message, in the header and the list titles.
    let (mut app, first) = fresh();
    fail(
        &mut app,
        first,
        ErrorKind::Unreachable,
        &format!("connection reset {HOSTILE}"),
    );
    let text = clean_frame(&app, 250, 20);
    assert!(text.contains("connection reset \\u{1b}"), "{text}");

    // A failed pass in the popup.
    let (mut app, first) = fresh();
    answer_hostile(&mut app, first);
    act(&mut app, Action::AskAggregate);
    act(&mut app, Action::ConfirmAggregate);
    assert!(matches!(app.popup, Some(Popup::AggregateFailed(_))));
    let text = clean_frame(&app, 120, 30);
    assert!(text.contains("-32003: \\u{1b}"), "{text}");

    // A failed check on the Aggregator view, and the server's check summary.
    let (mut app, first) = fresh();
    answer_hostile(&mut app, first);
    act(&mut app, Action::ShowView(View::Aggregator));
    act(
        &mut app,
        Action::RunCheck(billing_api::CheckKind::Reconcile),
    );
    let text = clean_frame(&app, 200, 30);
    assert!(text.contains("reconcile failed: \\u{1b}"), "{text}");
    assert!(text.contains("summary \\u{1b}"), "{text}");
}
