//! The `?` popup listing every key.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("Tab, Shift-Tab", "next / previous view"),
    (
        "1 … 6",
        "Overview, Users, Payments, Aggregator, Rejected, Events",
    ),
    ("j/k, ↓/↑", "move the selection; scroll an open event"),
    ("PgDn/PgUp", "move 10 rows"),
    ("g/G, Home/End", "first / last row of the page"),
    ("n/p, ]/[", "next / previous page from the server"),
    ("/", "filter the page; Users: search all; Payments: by sid"),
    (
        "/ sid Enter",
        "Users: if the search finds nobody, that sid opens",
    ),
    ("s", "Users: sid, lowest/highest balance, most consumed"),
    ("o", "Users: overdrawn users only / every user"),
    (
        "Enter",
        "open the user's detail; on Events, the event in full",
    ),
    ("Esc", "back, close, clear the filter or search"),
    ("r", "refresh now"),
    ("a", "run an aggregation pass (asks first)"),
    ("R, V", "reconcile with the repo / verify the ledger"),
    ("?", "this help"),
];

pub fn draw(frame: &mut Frame, body: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>15}  "), Style::new().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    let area = super::layout::popup_area(body, 76, KEYS.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (Esc closes) ")),
        area,
    );
}
