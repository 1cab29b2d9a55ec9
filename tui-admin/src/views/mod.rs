//! One module per screen, each with its own `draw` function that reads the
//! [`crate::app::App`] state and never awaits. [`layout`] holds the popup and
//! spinner helpers they share with the frame around them ([`crate::ui`]).

pub mod aggregator;
pub mod checks;
pub mod events;
pub mod help;
pub mod layout;
pub mod overview;
pub mod payments;
pub mod rejected;
pub mod user_detail;
pub mod users;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Table, TableState, Wrap};

use crate::app::Paged;

/// A bordered block whose title carries the request state: the error of the
/// last failed fetch (the last good data stays below it).
pub fn titled(title: String, error: Option<&str>) -> Block<'static> {
    let mut spans = vec![Span::styled(
        format!(" {title} "),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(err) = error {
        spans.push(Span::styled(
            format!(" ⚠ {err} "),
            Style::new().fg(Color::Red),
        ));
    }
    Block::bordered().title(Line::from(spans))
}

/// A message in place of a list (loading, empty, failed).
pub fn message(frame: &mut Frame, area: Rect, block: Block<'_>, text: &str) {
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: true })
            .style(Style::new().fg(Color::DarkGray))
            .block(block),
        area,
    );
}

/// What to show when a list has no rows.
pub fn empty_text(loaded: bool, loading: bool, error: Option<&str>, empty: &str) -> String {
    match (loaded, error) {
        (false, Some(err)) => {
            format!("could not load: {err}\nretrying every refresh; r retries now")
        }
        (false, None) if loading => "loading…".to_string(),
        (false, None) => "not loaded yet; r loads".to_string(),
        (true, _) => empty.to_string(),
    }
}

/// A message in place of a server-side list with no rows to show: why
/// (loading, failed), or `empty` once a page came back.
pub fn list_message<T>(
    frame: &mut Frame,
    area: Rect,
    block: Block<'_>,
    list: &Paged<T>,
    empty: &str,
) {
    let text = empty_text(list.loaded, list.loading, list.error.as_deref(), empty);
    message(frame, area, block, &text);
}

/// The title of a server-side list: `{name} · page N`, then ` · more: n` if
/// the server has a next page.
pub fn page_title<T>(name: &str, list: &Paged<T>) -> String {
    let mut title = format!("{name} · page {}", list.page_index() + 1);
    if list.next_cursor.is_some() {
        title.push_str(" · more: n");
    }
    title
}

/// Adds a local filter to a title, if one is set.
pub fn push_filter(title: &mut String, filter: &str) {
    if !filter.is_empty() {
        title.push_str(&format!(" · filter \"{filter}\""));
    }
}

/// The rows `[start, end)` a bordered table with a header line can show in
/// `area_height` lines, keeping `selected` on screen. Only these rows are
/// built, so a redraw costs the same for a page of 10 or 1,000 rows.
pub fn window(len: usize, selected: usize, area_height: u16) -> (usize, usize) {
    let visible = usize::from(area_height).saturating_sub(3).max(1);
    let selected = selected.min(len.saturating_sub(1));
    let start = selected.saturating_sub(visible - 1);
    (start, (start + visible).min(len))
}

/// Marks the selected row, visible without colour too.
pub const MARKER: &str = "▶ ";

/// Draws the table of a list's [`window`] with the selected row marked;
/// `row` is the selected row's place in the window (counted from `start`).
pub fn draw_table(frame: &mut Frame, area: Rect, table: Table<'_>, row: usize) {
    let table = table
        .row_highlight_style(selected())
        .highlight_symbol(MARKER);
    let mut state = TableState::default().with_selected(Some(row));
    frame.render_stateful_widget(table, area, &mut state);
}

/// A right-aligned cell, for amounts.
pub fn right<'a>(text: impl Into<String>) -> ratatui::widgets::Cell<'a> {
    ratatui::widgets::Cell::from(Line::from(text.into()).right_aligned())
}

/// The style of a row that needs attention.
pub fn alert() -> Style {
    Style::new().fg(Color::Red)
}

pub fn warn() -> Style {
    Style::new().fg(Color::Yellow)
}

pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn header() -> Style {
    Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn window_keeps_the_selection_visible() {
        // 10 lines: borders and header leave 7 rows.
        assert_eq!(window(100, 0, 10), (0, 7));
        assert_eq!(window(100, 6, 10), (0, 7));
        assert_eq!(window(100, 7, 10), (1, 8));
        assert_eq!(window(100, 99, 10), (93, 100));
        assert_eq!(window(3, 2, 10), (0, 3));
        assert_eq!(window(0, 0, 10), (0, 0));
        assert_eq!(
            window(5, 4, 0),
            (4, 5),
            "a zero-height area still names the selected row"
        );
    }
}
