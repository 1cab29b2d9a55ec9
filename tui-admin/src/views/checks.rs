//! The ledger checks on the Aggregator view: the last `verify` and
//! `reconcile` the server ran, and the progress of one running (`R`, `V`).

use billing_api::types::AggregatorState;
use billing_api::{CheckKind, CheckOutcome, CheckResult, rfc3339_to_millis};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use crate::app::App;
use crate::format;

/// The check's name, padded so the outcomes line up.
fn name(kind: CheckKind) -> String {
    format!("{:<9}", kind.name())
}

/// A line for a check running (or the last error), then one per check.
pub fn lines(app: &App, state: &AggregatorState) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let running = state.check_running.as_ref();
    if let Some(kind) = app.check.map(|c| c.kind).or(running.map(|r| r.kind)) {
        // Elapsed from the server's start when it reported one, else from the key press.
        let started = running
            .filter(|r| r.kind == kind)
            .and_then(|r| rfc3339_to_millis(&r.started_at))
            .or(app.check.map(|c| c.started_millis))
            .unwrap_or(app.now_millis);
        let steps = match running.filter(|r| r.kind == kind && r.total > 0) {
            Some(r) => format!(" · {}/{} nodes read", r.done, r.total),
            None => String::new(),
        };
        lines.push(Line::from(Span::styled(
            format!(
                "{} {} running{steps} · {}",
                super::layout::spinner(app.tick),
                kind.name(),
                format::short_duration(app.now_millis.saturating_sub(started))
            ),
            Style::new().fg(Color::Cyan),
        )));
    } else if let Some(error) = &app.check_error {
        lines.push(Line::from(Span::styled(
            error.clone(),
            Style::new().fg(Color::Red),
        )));
    }
    lines.push(outcome_line(
        app,
        CheckKind::Reconcile,
        state.last_reconcile.as_ref(),
    ));
    lines.push(outcome_line(
        app,
        CheckKind::Verify,
        state.last_verify.as_ref(),
    ));
    lines
}

fn outcome_line(app: &App, kind: CheckKind, outcome: Option<&CheckOutcome>) -> Line<'static> {
    let key = match kind {
        CheckKind::Verify => 'V',
        CheckKind::Reconcile => 'R',
    };
    let Some(o) = outcome else {
        return Line::raw(format!(
            "{} not run on this server since it started; {key} runs it",
            name(kind)
        ));
    };
    let (word, color) = match o.result {
        CheckResult::Consistent => ("consistent", Color::Green),
        CheckResult::Differences => ("DIFFERENCES", Color::Red),
        CheckResult::Failed => ("failed", Color::Red),
    };
    Line::from(vec![
        Span::raw(format!("{} ", name(kind))),
        Span::styled(word, Style::new().fg(color)),
        Span::raw(format!(
            " {} (took {}) · {}",
            format::age(app.now_millis, &o.finished_at),
            format::short_duration(o.elapsed_ms),
            o.summary
        )),
    ])
}
