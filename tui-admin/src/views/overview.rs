//! Headline tiles and a chart of records applied per recent pass.

use billing_api::types::{AggregateSummary, Health};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph};

use crate::app::App;
use crate::format;

pub fn health_text(health: Health) -> (&'static str, Color) {
    match health {
        Health::Idle => ("idle (no pass yet)", Color::Yellow),
        Health::Ok => ("ok", Color::Green),
        Health::Degraded => ("degraded", Color::Yellow),
        Health::Failing => ("failing", Color::Red),
    }
}

fn tile(frame: &mut Frame, area: Rect, name: &str, value: String, detail: String, color: Color) {
    let text = Text::from(vec![
        Line::styled(value, Style::new().fg(color).add_modifier(Modifier::BOLD)),
        Line::styled(detail, Style::new().fg(Color::DarkGray)),
    ]);
    frame.render_widget(
        Paragraph::new(text).block(Block::bordered().title(format!(" {name} "))),
        area,
    );
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let (totals, runs) = (&app.overview.totals, &app.overview.runs);
    let error = totals.error.as_deref().or(runs.error.as_deref());
    let outer = super::titled("Overview".to_string(), error);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let Some(ov) = totals.data.as_ref() else {
        let text = super::empty_text(false, totals.loading, error, "");
        frame.render_widget(
            Paragraph::new(text).style(Style::new().fg(Color::DarkGray)),
            inner,
        );
        return;
    };
    let [row1, row2, chart] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Min(0),
    ])
    .areas(inner);
    let cols = |row| Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(row);
    let r1 = cols(row1);
    let r2 = cols(row2);
    let balance_color = if ov.total_balance_cents < 0 {
        Color::Red
    } else {
        Color::Reset
    };
    tile(
        frame,
        r1[0],
        "Users",
        format::count(ov.total_users),
        "registered".into(),
        Color::Reset,
    );
    tile(
        frame,
        r1[1],
        "Total balance",
        format::cents(ov.total_balance_cents),
        "prepaid credit".into(),
        balance_color,
    );
    let overdrawn_color = if ov.overdrawn_users > 0 {
        Color::Red
    } else {
        Color::Green
    };
    tile(
        frame,
        r1[2],
        "Overdrawn",
        format::count(ov.overdrawn_users),
        "users below zero".into(),
        overdrawn_color,
    );
    tile(
        frame,
        r1[3],
        "Consumed",
        format::count(ov.consumed_records),
        "records applied".into(),
        Color::Reset,
    );
    let pending_color = if ov.pending_records > 0 {
        Color::Yellow
    } else {
        Color::Reset
    };
    tile(
        frame,
        r2[0],
        "Pending",
        format::count(ov.pending_records),
        "held for unknown users".into(),
        pending_color,
    );
    // `rejected_items` counts the held records too: they show once, as pending.
    let rejected = ov.rejected_items.saturating_sub(ov.pending_records);
    let rejected_color = if rejected > 0 {
        Color::Red
    } else {
        Color::Reset
    };
    tile(
        frame,
        r2[1],
        "Rejected",
        format::count(rejected),
        "rejected for good".into(),
        rejected_color,
    );
    let (health, mut health_color) = health_text(ov.health);
    let detail = match ov.stale_nodes {
        0 => "health".to_string(),
        1 => "health · 1 stale node".to_string(),
        n => format!("health · {} stale nodes", format::count(n)),
    };
    if ov.stale_nodes > 0 && health_color == Color::Green {
        health_color = Color::Yellow;
    }
    tile(
        frame,
        r2[2],
        "Aggregator",
        health.to_string(),
        detail,
        health_color,
    );
    let last = app
        .aggregator_state
        .data
        .as_ref()
        .and_then(|s| s.last_run.as_ref());
    let (value, detail) = match (ov.last_run_at.as_deref(), last) {
        (Some(at), Some(run)) => (
            format::age(app.now_millis, at),
            format!(
                "took {} · {} applied",
                format::between(&run.started_at, &run.finished_at).unwrap_or_else(|| "?".into()),
                format::count(run.records_applied)
            ),
        ),
        (Some(at), None) => (format::age(app.now_millis, at), String::new()),
        (None, _) => ("never".to_string(), "press a to run a pass".into()),
    };
    tile(frame, r2[3], "Last run", value, detail, Color::Reset);
    draw_chart(frame, chart, runs.data.as_deref().unwrap_or(&[]));
}

fn draw_chart(frame: &mut Frame, area: Rect, runs: &[AggregateSummary]) {
    let block = Block::bordered().title(" Records applied per pass (oldest → newest) ");
    if runs.is_empty() {
        frame.render_widget(
            Paragraph::new("no passes yet")
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    }
    // The API lists newest first; the chart reads left to right in time.
    let bars: Vec<Bar> = runs
        .iter()
        .rev()
        .map(|run| {
            let style = if run.errors.is_empty() {
                Style::new().fg(Color::Cyan)
            } else {
                Style::new().fg(Color::Red)
            };
            Bar::default()
                .value(run.records_applied)
                .label(Line::from(format!("#{}", run.run_id)))
                .text_value(format::count(run.records_applied))
                .style(style)
        })
        .collect();
    let chart = BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&bars))
        .bar_width(6)
        .bar_gap(1);
    frame.render_widget(chart, area);
}
