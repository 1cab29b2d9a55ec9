//! The users page: sid, name, email, balance, paid, consumed; overdrawn rows in red.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row, Table, TableState};

use crate::app::App;
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.users;
    let rows = app.visible_users();
    let first_row = list.page_index() * crate::app::PAGE_LIMIT as usize + 1;
    let mut title = format!(
        "Users · page {} (from #{}){} · sorted by {} {}",
        list.page_index() + 1,
        first_row,
        if list.next_cursor.is_some() {
            " · more: n"
        } else {
            ""
        },
        app.users_sort.label(),
        if app.users_descending { "↓" } else { "↑" },
    );
    if !app.users_filter.is_empty() {
        title.push_str(&format!(
            " · filter \"{}\" ({} of {} on this page)",
            app.users_filter,
            rows.len(),
            list.items.len()
        ));
    }
    let block = super::titled(title, list.error.as_deref());
    if rows.is_empty() {
        let empty = if list.items.is_empty() {
            "no users on the server yet"
        } else {
            "no user on this page matches the filter; Esc clears it"
        };
        let text = super::empty_text(list.loaded, list.loading, list.error.as_deref(), empty);
        super::message(frame, area, block, &text);
        return;
    }
    // Narrow terminals keep the columns an operator needs most: who and how much.
    let wide = area.width >= 80;
    let header = if wide {
        Row::new([
            Cell::from("SID"),
            Cell::from("Name"),
            Cell::from("Email"),
            super::right("Balance"),
            super::right("Paid"),
            super::right("Consumed"),
        ])
    } else {
        Row::new([Cell::from("SID"), super::right("Balance")])
    }
    .style(super::header());
    let (start, end) = super::window(rows.len(), list.selected, area.height);
    let body = rows[start..end].iter().map(|u| {
        let row = if wide {
            Row::new([
                Cell::from(u.user_sid.clone()),
                Cell::from(u.display_name.clone().unwrap_or_default()),
                Cell::from(u.email.clone().unwrap_or_default()),
                super::right(format::cents(u.credit_balance_cents)),
                super::right(format::cents(u.total_paid_cents)),
                super::right(format::cents(u.total_consumed_cents)),
            ])
        } else {
            Row::new([
                Cell::from(u.user_sid.clone()),
                super::right(format::cents(u.credit_balance_cents)),
            ])
        };
        if u.credit_balance_cents < 0 {
            row.style(super::alert())
        } else {
            row
        }
    });
    let widths: &[Constraint] = if wide {
        &[
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Length(14),
        ]
    } else {
        &[Constraint::Fill(1), Constraint::Length(14)]
    };
    let table = Table::new(body, widths.to_vec())
        .header(header)
        .block(block)
        .row_highlight_style(super::selected())
        .highlight_symbol(super::MARKER);
    let mut state = TableState::default().with_selected(Some(list.selected - start));
    frame.render_stateful_widget(table, area, &mut state);
}
