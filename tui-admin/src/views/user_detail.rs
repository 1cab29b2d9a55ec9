//! One user's balance with their recent payments and consumed records
//! (node, file and commit of each).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};

use crate::app::App;
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(detail) = app.detail.as_ref() else {
        return;
    };
    let block = super::titled(
        format!("User {} (Esc back)", detail.user_sid),
        detail.data.error.as_deref(),
    );
    let Some(data) = detail.data.data.as_ref() else {
        let text = super::empty_text(false, detail.data.loading, detail.data.error.as_deref(), "");
        super::message(frame, area, block, &text);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [summary, payments_area, consumed_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Fill(2),
    ])
    .areas(inner);
    let b = &data.balance;
    let balance_style = if b.overdrawn {
        Style::new().fg(Color::Red)
    } else {
        Style::new().fg(Color::Green)
    };
    frame.render_widget(
        Line::from(vec![
            Span::raw("balance "),
            Span::styled(format::cents(b.credit_balance_cents), balance_style),
            Span::raw(format!(
                " · paid {} · consumed {}{}",
                format::cents(b.total_paid_cents),
                format::cents(b.total_consumed_cents),
                if b.overdrawn { " · OVERDRAWN" } else { "" }
            )),
        ]),
        summary,
    );

    let payments = data.payments.iter().map(|p| {
        Row::new([
            Cell::from(format::timestamp(&p.created_at)),
            super::right(format::cents(p.amount_cents)),
            Cell::from(p.kind.clone()),
            Cell::from(p.payment_id.clone()),
            Cell::from(p.reference.clone().unwrap_or_default()),
        ])
    });
    let table = Table::new(
        payments,
        [
            Constraint::Length(19),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Fill(1),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            Cell::from("Time (UTC)"),
            super::right("Amount"),
            Cell::from("Kind"),
            Cell::from("Payment id"),
            Cell::from("Reference"),
        ])
        .style(super::header()),
    )
    .block(Block::bordered().title(format!(" Recent payments ({}) ", data.payments.len())));
    frame.render_widget(table, payments_area);

    let consumed = data.consumed.iter().map(|c| {
        Row::new([
            Cell::from(format::timestamp(&c.applied_at)),
            super::right(format::cents(c.cost_cents)),
            Cell::from(c.node_name.clone()),
            Cell::from(format::short_sha(&c.commit_sha).to_string()),
            Cell::from(format::file_name(&c.file_path).to_string()),
            Cell::from(c.idempotency_key.clone()),
        ])
    });
    let table = Table::new(
        consumed,
        [
            Constraint::Length(19),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Fill(2),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            Cell::from("Applied (UTC)"),
            super::right("Cost"),
            Cell::from("Node"),
            Cell::from("Commit"),
            Cell::from("File"),
            Cell::from("Key"),
        ])
        .style(super::header()),
    )
    .block(Block::bordered().title(format!(
        " Recent consumed records ({}) ",
        data.consumed.len()
    )));
    frame.render_widget(table, consumed_area);
}
