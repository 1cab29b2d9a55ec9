//! The payment audit log, newest first, optionally for one user (server-side filter).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row, Table};

use crate::app::App;
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.payments.list;
    let mut title = super::page_title("Payments · newest first", list);
    if let Some(user) = &app.payments.user {
        title.push_str(&format!(" · user {user} (Esc clears)"));
    }
    let block = super::titled(title, list.error.as_deref());
    if list.items.is_empty() {
        let empty = match &app.payments.user {
            Some(user) => format!("no payments for user {user}; Esc shows all"),
            None => "no payments recorded yet".to_string(),
        };
        super::list_message(frame, area, block, list, &empty);
        return;
    }
    let wide = area.width >= 80;
    let header = if wide {
        Row::new([
            Cell::from("Time (UTC)"),
            Cell::from("User"),
            super::right("Amount"),
            Cell::from("Kind"),
            Cell::from("Payment id"),
            Cell::from("Reference"),
        ])
    } else {
        Row::new([
            Cell::from("User"),
            super::right("Amount"),
            Cell::from("Kind"),
        ])
    }
    .style(super::header());
    let (start, end) = super::window(list.items.len(), list.selected, area.height);
    let rows = list.items[start..end].iter().map(|p| {
        let row = if wide {
            Row::new([
                Cell::from(format::timestamp(&p.created_at)),
                Cell::from(p.user_sid.clone()),
                super::right(format::cents(p.amount_cents)),
                Cell::from(p.kind.clone()),
                Cell::from(p.payment_id.clone()),
                Cell::from(p.reference.clone().unwrap_or_default()),
            ])
        } else {
            Row::new([
                Cell::from(p.user_sid.clone()),
                super::right(format::cents(p.amount_cents)),
                Cell::from(p.kind.clone()),
            ])
        };
        if p.amount_cents < 0 {
            row.style(super::warn())
        } else {
            row
        }
    });
    let widths: &[Constraint] = if wide {
        &[
            Constraint::Length(19),
            Constraint::Length(12),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Fill(1),
            Constraint::Fill(1),
        ]
    } else {
        &[
            Constraint::Fill(1),
            Constraint::Length(12),
            Constraint::Length(8),
        ]
    };
    let table = Table::new(rows, widths.to_vec())
        .header(header)
        .block(block);
    super::draw_table(frame, area, table, list.selected - start);
}
