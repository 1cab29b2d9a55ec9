//! Aggregator health, the last pass, the last ledger checks, and one row per
//! node; failing nodes in red, stale ones in yellow. Also the popups of `a`
//! (confirm, running, summary).

use billing_api::types::{AggregateSummary, NodeStatus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, Wrap};

use crate::app::{App, Popup};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let remote = &app.aggregator_state;
    let checks = remote
        .data
        .as_ref()
        .map(|state| super::checks::lines(app, state))
        .unwrap_or_default();
    // Short terminals give the node table the room (a header and three rows);
    // the health line stays. The checks come last, so they are what is cut.
    let top_height = if area.height >= 10 {
        (5 + checks.len() as u16).min(area.height - 6).max(5)
    } else {
        3
    };
    let [top, nodes_area] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(area);
    let block = super::titled("Aggregator".to_string(), remote.error.as_deref());
    let Some(state) = remote.data.as_ref() else {
        let text = super::empty_text(false, remote.loading, remote.error.as_deref(), "");
        super::message(frame, area, block, &text);
        return;
    };
    let (health, color) = super::overview::health_text(state.health);
    let mut lines = vec![Line::from(vec![
        Span::raw("health "),
        Span::styled(health, Style::new().fg(color)),
        Span::raw(format!(" · {} nodes", state.nodes.len())),
    ])];
    match &state.last_run {
        Some(run) => {
            lines.push(Line::raw(format!(
                "last pass #{} {} (took {}) · head {} · {} errors",
                run.run_id,
                format::age(app.now_millis, &run.finished_at),
                format::between(&run.started_at, &run.finished_at).unwrap_or_else(|| "?".into()),
                run.head_commit
                    .as_deref()
                    .map(format::short_sha)
                    .unwrap_or("-"),
                run.errors.len(),
            )));
            lines.push(Line::raw(summary_counts(run)));
        }
        None => lines.push(Line::raw("no pass has run yet; a runs one")),
    }
    lines.extend(checks);
    frame.render_widget(Paragraph::new(lines).block(block), top);

    let nodes = app.aggregator.visible(app.aggregator_state.data.as_ref());
    let mut title = "Nodes".to_string();
    super::push_filter(&mut title, &app.aggregator.filter);
    let block = super::titled(title, None);
    if nodes.is_empty() {
        let text = if state.nodes.is_empty() {
            "no node has written usage yet"
        } else {
            "no node matches the filter; Esc clears it"
        };
        super::message(frame, nodes_area, block, text);
        return;
    }
    // Narrow terminals keep node, last run, status and the error.
    let keep: &[usize] = if nodes_area.width >= 80 {
        &[0, 1, 2, 3, 4, 5]
    } else {
        &[0, 2, 4, 5]
    };
    let pick =
        |cells: [String; 6]| -> Vec<String> { keep.iter().map(|&i| cells[i].clone()).collect() };
    let header = Row::new(pick(
        [
            "Node",
            "Commit",
            "Last run",
            "Consumed",
            "Status",
            "Last error",
        ]
        .map(String::from),
    ))
    .style(super::header());
    let (start, end) = super::window(nodes.len(), app.aggregator.selected, nodes_area.height);
    let rows = nodes[start..end].iter().map(|n| {
        // Stale: its newest usage hour is older than the server's --stale-after.
        let stale = n.stale;
        let status = match (n.status, stale) {
            (NodeStatus::Error, _) => "error",
            (NodeStatus::Ok, true) => "stale",
            (NodeStatus::Ok, false) => "ok",
        };
        let row = Row::new(pick([
            n.node_name.clone(),
            n.last_commit_sha
                .as_deref()
                .map(format::short_sha)
                .unwrap_or("-")
                .to_string(),
            n.last_run_at
                .as_deref()
                .map(|t| format::age(app.now_millis, t))
                .unwrap_or_else(|| "never".into()),
            format::count(n.records_consumed_total),
            status.to_string(),
            n.last_error.clone().unwrap_or_default(),
        ]));
        match (n.status, stale) {
            (NodeStatus::Error, _) => row.style(super::alert()),
            (NodeStatus::Ok, true) => row.style(super::warn()),
            _ => row,
        }
    });
    let all_widths = [
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Fill(1),
    ];
    let widths: Vec<Constraint> = keep.iter().map(|&i| all_widths[i]).collect();
    let table = Table::new(rows, widths).header(header).block(block);
    super::draw_table(frame, nodes_area, table, app.aggregator.selected - start);
}

fn summary_counts(run: &AggregateSummary) -> String {
    format!(
        "{} applied, {} duplicate, {} conflict, {} pending, {} invalid, {} files rejected",
        run.records_applied,
        run.records_duplicate,
        run.records_conflict,
        run.records_pending,
        run.records_invalid,
        run.files_rejected
    )
}

/// The summary of one pass as lines, shared by the popup and the CLI.
pub fn summary_lines(run: &AggregateSummary) -> Vec<String> {
    let mut lines = vec![
        format!("pass #{} finished {}", run.run_id, run.finished_at),
        format!(
            "took {} · head {}",
            format::between(&run.started_at, &run.finished_at).unwrap_or_else(|| "?".into()),
            run.head_commit
                .as_deref()
                .map(format::short_sha)
                .unwrap_or("-")
        ),
        format!(
            "nodes {} ({} unchanged) · files read {} · files rejected {}",
            run.nodes_total, run.nodes_skipped, run.files_read, run.files_rejected
        ),
        format!(
            "records applied {} · duplicate {} · conflict {} · pending {} · invalid {}",
            run.records_applied,
            run.records_duplicate,
            run.records_conflict,
            run.records_pending,
            run.records_invalid
        ),
        format!("debited {}", format::cents(run.cents_debited)),
    ];
    if run.errors.is_empty() {
        lines.push("no errors".to_string());
    }
    for err in &run.errors {
        lines.push(format!(
            "error {}: {}",
            err.node_name.as_deref().unwrap_or("(whole pass)"),
            err.message
        ));
    }
    lines
}

/// The popups of the `a` flow.
pub fn draw_popup(frame: &mut Frame, body: Rect, popup: &Popup) {
    let (title, text, color) = match popup {
        Popup::ConfirmAggregate => (
            " Run an aggregation pass? ",
            Text::from(
                "Reads every node's new usage from the billing repo and applies it.\n\n\
                 y / Enter: run now    n / Esc: cancel",
            ),
            Color::Yellow,
        ),
        Popup::Aggregating => (
            " Aggregation pass ",
            Text::from("running… the summary appears here when it finishes"),
            Color::Cyan,
        ),
        Popup::Summary(run) => {
            let color = if run.errors.is_empty() {
                Color::Green
            } else {
                Color::Yellow
            };
            let lines: Vec<Line> = summary_lines(run).into_iter().map(Line::from).collect();
            (" Pass finished ", Text::from(lines), color)
        }
        Popup::AggregateFailed(msg) => (
            " Pass failed ",
            Text::from(format!(
                "{msg}\n\nCheck the Aggregator view and the server log; Enter/Esc closes."
            )),
            Color::Red,
        ),
        Popup::Help | Popup::Event(_) => return,
    };
    let area = super::layout::popup_area(body, 84, 12);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(title)
                .border_style(Style::new().fg(color)),
        ),
        area,
    );
}
