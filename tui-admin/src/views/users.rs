//! The users page: sid, name, email, balance, paid, consumed; overdrawn rows
//! in red. The title names the server-side order and filter.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row, Table};

use crate::app::{App, UserQuery};
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.users.list;
    let rows = app.users.visible();
    let block = super::titled(title(app), list.error.as_deref());
    if rows.is_empty() {
        let empty = empty_text(app);
        super::list_message(frame, area, block, list, &empty);
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
        .block(block);
    super::draw_table(frame, area, table, list.selected - start);
}

/// The order, the search, "overdrawn only" and where the page is. A filtered
/// page may hold fewer rows than asked for, so it has no row number.
fn title(app: &App) -> String {
    let list = &app.users.list;
    let query = &app.users.query;
    let mut title = format!("Users · {}", UserQuery::sort_label(query.sort));
    if let Some(text) = &query.text {
        title.push_str(&format!(" · filter \"{text}\""));
    }
    if query.overdrawn {
        title.push_str(" · overdrawn only");
    }
    title.push_str(&format!(" · page {}", list.page_index() + 1));
    if !query.is_filtered() {
        let first_row = list.page_index() * crate::app::PAGE_LIMIT as usize + 1;
        title.push_str(&format!(" (from #{first_row})"));
    }
    if list.next_cursor.is_some() {
        title.push_str(" · more: n");
    }
    title
}

/// What an answered page without rows says.
fn empty_text(app: &App) -> String {
    let query = &app.users.query;
    if app.users.list.next_cursor.is_some() {
        // The server reads at most 10,000 users a page for a filter its
        // index cannot skip to; the walk goes on from the cursor.
        return "no match in the users read so far — n reads on".into();
    }
    match (&query.text, query.overdrawn) {
        (Some(text), overdrawn) => format!(
            "no {}user matches \"{text}\"; Esc clears the search",
            if overdrawn { "overdrawn " } else { "" }
        ),
        (None, true) => "no user is overdrawn; o shows every user".into(),
        (None, false) if app.users.list.page_index() > 0 => "no more users; p goes back".into(),
        (None, false) => "no users on the server yet".into(),
    }
}
