//! The property the dashboard's fuzz target in `fuzz/` checks on any input,
//! as a plain function: the target calls it under libFuzzer (nightly), and
//! the corpus replay test calls it on every committed input (stable, in the
//! test command). It panics, naming the property, when it fails.

use billing_api::types::{AggregateSummary, AggregatorState, Overview, Page};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde::de::DeserializeOwned;

use crate::app::{Action, App, ErrorKind, FetchError, RpcAnswer, RpcCall, View};

/// Frame sizes the answers are drawn at: a small, an ordinary and a wide terminal.
const SIZES: [(u16, u16); 3] = [(40, 12), (120, 40), (250, 70)];

/// The dashboard given any server answer: the first byte picks the view shown
/// and the frame size; the rest is the body of every answer, decoded as each
/// call's result (an answer that does not decode is shown as the fetch error
/// the dashboard would show). Whatever the answers, `App::update` and drawing
/// do not panic, and no raw control character reaches the terminal.
/// Returns how many answers decoded (the rest were shown as errors).
pub fn server_response(data: &[u8]) -> usize {
    let Some((&pick, body)) = data.split_first() else {
        return 0;
    };
    let view = View::ALL[usize::from(pick) % View::ALL.len()];
    let (width, height) = SIZES[usize::from(pick) / View::ALL.len() % SIZES.len()];
    let mut app = App::new("http://127.0.0.1:9", "fuzz", 1_000);
    let mut calls = app.update(Action::Tick { now_millis: 1_000 });
    calls.extend(app.update(Action::ShowView(view)));
    let mut decoded = answer(&mut app, calls, body, 0);
    draw(&app, width, height);
    // Move around what was loaded, and open what is selected.
    for action in [Action::Down, Action::Open, Action::Down, Action::Back] {
        let calls = app.update(action);
        decoded += answer(&mut app, calls, body, 0);
        draw(&app, width, height);
    }
    decoded
}

/// Answers `calls` with `body`, and the calls those answers cause, a
/// few levels deep; returns how many answers decoded.
fn answer(app: &mut App, calls: Vec<RpcCall>, body: &[u8], depth: u8) -> usize {
    if depth > 3 {
        return 0;
    }
    let mut decoded = 0;
    for call in calls {
        let reply = match call {
            RpcCall::Overview => RpcAnswer::Overview(decode::<Overview>(body)),
            RpcCall::AggregatorState => RpcAnswer::AggregatorState(decode::<AggregatorState>(body)),
            RpcCall::Runs => RpcAnswer::Runs(decode::<Vec<AggregateSummary>>(body)),
            RpcCall::Users(req, query) => RpcAnswer::Users(req, query, decode::<Page<_>>(body)),
            RpcCall::Payments(req, _) => RpcAnswer::Payments(req, decode::<Page<_>>(body)),
            RpcCall::Rejected(req) => RpcAnswer::Rejected(req, decode::<Page<_>>(body)),
            RpcCall::Events(req) => RpcAnswer::Events(req, decode::<Page<_>>(body)),
            RpcCall::Detail(sid) => RpcAnswer::Detail(sid, decode(body)),
            RpcCall::AggregateNow => RpcAnswer::Aggregated(decode(body)),
            RpcCall::Check(kind) => RpcAnswer::Checked(kind, decode::<()>(body)),
        };
        decoded += usize::from(answer_is_ok(&reply));
        let more = app.update(Action::Answer(reply));
        decoded += answer(app, more, body, depth + 1);
    }
    if let Ok(summary) = serde_json::from_slice::<AggregateSummary>(body) {
        let more = app.update(Action::Answer(RpcAnswer::RunNotified(summary)));
        decoded += 1 + answer(app, more, body, depth + 1);
    }
    decoded
}

fn answer_is_ok(answer: &RpcAnswer) -> bool {
    match answer {
        RpcAnswer::Overview(r) => r.is_ok(),
        RpcAnswer::AggregatorState(r) => r.is_ok(),
        RpcAnswer::Runs(r) => r.is_ok(),
        RpcAnswer::Users(_, _, r) => r.is_ok(),
        RpcAnswer::Payments(_, r) => r.is_ok(),
        RpcAnswer::Rejected(_, r) => r.is_ok(),
        RpcAnswer::Events(_, r) => r.is_ok(),
        RpcAnswer::Detail(_, r) => r.is_ok(),
        RpcAnswer::Aggregated(r) => r.is_ok(),
        RpcAnswer::Checked(_, r) => r.is_ok(),
        RpcAnswer::RunNotified(_) | RpcAnswer::Live(_) => true,
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError {
        kind: ErrorKind::Server,
        message: format!("the answer is not what the API describes: {e}"),
    })
}

fn draw(app: &App, width: u16, height: u16) {
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).expect("a test terminal never fails");
    terminal
        .draw(|frame| crate::ui::draw(frame, app))
        .expect("drawing into a test terminal never fails");
    let buffer = terminal.backend().buffer();
    for (i, cell) in buffer.content.iter().enumerate() {
        assert!(
            !cell.symbol().chars().any(crate::safe::is_unsafe),
            "raw control character {:?} in cell ({}, {}) of a {width}x{height} frame",
            cell.symbol(),
            i % usize::from(width),
            i / usize::from(width),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_view_takes_garbage_and_hostile_text() {
        for pick in 0..24u8 {
            server_response(&[pick]);
            let mut hostile = vec![pick];
            hostile.extend_from_slice(
                br#"{"items":[{"user_sid":"u\u001b]0;x\u0007","display_name":"\u202e","email":null,"credit_balance_cents":-5,"total_paid_cents":0,"total_consumed_cents":5,"overdrawn":true,"registered_at":"2026-01-01T00:00:00Z"}],"next_cursor":"\u009b2J"}"#,
            );
            server_response(&hostile);
        }
    }
}
