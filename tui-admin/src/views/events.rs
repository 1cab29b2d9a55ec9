//! Events, newest first: balance thresholds crossed, failed passes, stale and
//! recovered nodes, each with the state of its webhook deliveries. Enter
//! shows one in full (its data and every delivery) in a popup.

use billing_api::{DeliveryStatus, EventType};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::app::{App, EventDetail};
use crate::event_text;
use crate::format;

/// Red for what needs action, yellow for a warning, green for a recovery.
pub fn type_style(kind: EventType) -> Style {
    match kind {
        EventType::BalanceOverdrawn | EventType::AggregationFailed | EventType::NodeStale => {
            super::alert()
        }
        EventType::BalanceLow => super::warn(),
        EventType::BalanceRecovered | EventType::NodeRecovered => Style::new().fg(Color::Green),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.events.list;
    let rows = app.events.visible();
    let mut title = super::page_title("Events · newest first", list);
    super::push_filter(&mut title, &app.events.filter);
    let block = super::titled(title, list.error.as_deref());
    if rows.is_empty() {
        let empty = if list.items.is_empty() {
            "no events yet: balance thresholds crossed, failed passes and stale nodes show here"
        } else {
            "no event on this page matches the filter; Esc clears it"
        };
        super::list_message(frame, area, block, list, empty);
        return;
    }
    // Narrow terminals keep what happened to whom and whether it went out;
    // the narrowest only what happened to whom (Enter shows the rest).
    let keep: &[usize] = match area.width {
        100.. => &[0, 1, 2, 3, 4],
        64..100 => &[1, 2, 4],
        _ => &[1, 2],
    };
    let pick = |cells: [Cell<'static>; 5]| -> Row<'static> {
        Row::new(
            cells
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, c)| c),
        )
    };
    let header = pick(["Time", "Type", "Subject", "Details", "Delivery"].map(Cell::from))
        .style(super::header());
    let (start, end) = super::window(rows.len(), list.selected, area.height);
    let texts: Vec<(String, String)> = rows[start..end]
        .iter()
        .map(|e| {
            (
                event_text::details(e),
                event_text::delivery(&e.deliveries, app.now_millis),
            )
        })
        .collect();
    let body = rows[start..end]
        .iter()
        .zip(&texts)
        .map(|(e, (details, delivery))| {
            let delivery_style = match event_text::worst(&e.deliveries).map(|d| d.status) {
                Some(DeliveryStatus::Failed) => super::alert(),
                Some(DeliveryStatus::Pending) => super::warn(),
                _ => Style::new(),
            };
            pick([
                Cell::from(format::age(app.now_millis, &e.created_at)),
                Cell::from(e.kind.as_str()).style(type_style(e.kind)),
                Cell::from(event_text::subject(e)),
                Cell::from(details.clone()),
                Cell::from(delivery.clone()).style(delivery_style),
            ])
        });
    // Details and delivery share what is left: each gets what it needs if
    // both fit, else the shorter keeps its width and the longer is cut.
    let widest = |pick: fn(&(String, String)) -> &String, title: &str| {
        texts
            .iter()
            .map(|t| Line::raw(pick(t).as_str()).width())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
            .min(usize::from(u16::MAX)) as u16
    };
    let details_need = widest(|t| &t.0, "Details");
    let delivery_need = widest(|t| &t.1, "Delivery");
    // Borders, the marker, the three fixed columns and the spaces between all five.
    let left = area.width.saturating_sub(2 + 2 + 9 + 18 + 12 + 4);
    let delivery_width = if details_need.saturating_add(delivery_need) <= left {
        delivery_need
    } else {
        left.saturating_sub(details_need)
            .max(left / 2)
            .min(delivery_need)
    };
    let all_widths = [
        Constraint::Length(9),
        Constraint::Length(18),
        // The last column takes the rest of the row.
        if keep.len() == 2 {
            Constraint::Fill(1)
        } else {
            Constraint::Length(12)
        },
        Constraint::Fill(1),
        if keep.len() == 5 {
            Constraint::Length(delivery_width)
        } else {
            Constraint::Fill(1)
        },
    ];
    let widths: Vec<Constraint> = keep.iter().map(|&i| all_widths[i]).collect();
    let table = Table::new(body, widths).header(header).block(block);
    super::draw_table(frame, area, table, list.selected - start);
}

/// The detail popup: every field, the data as pretty JSON, each delivery.
pub fn draw_popup(frame: &mut Frame, body: Rect, detail: &EventDetail, now_millis: u64) {
    let event = &detail.event;
    let lines: Vec<Line> = event_text::detail_lines(event, now_millis)
        .into_iter()
        .map(Line::from)
        .collect();
    let height = (lines.len() as u16).saturating_add(2);
    let area = super::layout::popup_area(body, 100, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((detail.scroll.min(usize::from(u16::MAX)) as u16, 0))
            .block(
                Block::bordered()
                    .title(format!(" {} · {} ", event.kind.as_str(), event.id))
                    .border_style(type_style(event.kind)),
            ),
        area,
    );
}
