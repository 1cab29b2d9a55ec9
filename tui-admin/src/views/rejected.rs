//! Held and rejected records and files, newest first, with the full reason and
//! provenance of the selected one below the table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};

use crate::app::App;
use crate::format;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let list = &app.rejected.list;
    let rows = app.rejected.visible();
    let mut title = super::page_title("Rejected and held · newest first", list);
    super::push_filter(&mut title, &app.rejected.filter);
    let block = super::titled(title, list.error.as_deref());
    if rows.is_empty() {
        let empty = if list.items.is_empty() {
            "nothing rejected or held"
        } else {
            "no item on this page matches the filter; Esc clears it"
        };
        super::list_message(frame, area, block, list, empty);
        return;
    }
    // The detail pane only where the table keeps room for some rows.
    let detail_height = if area.height >= 16 { 7 } else { 0 };
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_height)]).areas(area);
    // Narrow terminals keep what explains the item: reason, user, detail.
    let keep: &[usize] = if area.width >= 100 {
        &[0, 1, 2, 3, 4, 5, 6, 7]
    } else {
        &[1, 5, 7]
    };
    let pick =
        |cells: [String; 8]| -> Vec<String> { keep.iter().map(|&i| cells[i].clone()).collect() };
    let header = Row::new(pick(
        [
            "First seen",
            "Reason",
            "Node",
            "File",
            "#",
            "User",
            "Cost",
            "Detail",
        ]
        .map(String::from),
    ))
    .style(super::header());
    let (start, end) = super::window(rows.len(), list.selected, table_area.height);
    let body = rows[start..end].iter().map(|r| {
        let row = Row::new(pick([
            format::timestamp(&r.first_seen_at),
            r.reason.as_str().to_string(),
            r.node_name.clone(),
            format::file_name(&r.file_path).to_string(),
            r.record_index
                .map(|i| i.to_string())
                .unwrap_or_else(|| "file".into()),
            r.user_sid.clone().unwrap_or_default(),
            r.cost_cents.map(format::cents).unwrap_or_default(),
            r.detail.clone(),
        ]));
        match r.reason {
            billing_api::types::RejectReason::UnknownUser => row.style(super::warn()),
            _ => row.style(super::alert()),
        }
    });
    let all_widths = [
        Constraint::Length(19),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Length(28),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    let widths: Vec<Constraint> = keep.iter().map(|&i| all_widths[i]).collect();
    let table = Table::new(body, widths).header(header).block(block);
    super::draw_table(frame, table_area, table, list.selected - start);

    let Some(item) = rows.get(list.selected).filter(|_| detail_height > 0) else {
        return;
    };
    let mut lines = vec![
        Line::raw(item.detail.clone()),
        Line::raw(format!(
            "file {} · commit {} · blob {}{}",
            item.file_path,
            format::short_sha(&item.commit_sha),
            format::short_sha(&item.blob_id),
            item.idempotency_key
                .as_deref()
                .map(|k| format!(" · key {k}"))
                .unwrap_or_default()
        )),
    ];
    if let Some(existing) = &item.existing {
        lines.push(Line::raw(format!(
            "already applied under this key: user {} · node {} · {} · commit {} · {}",
            existing.user_sid,
            existing.node_name,
            format::cents(existing.cost_cents),
            format::short_sha(&existing.commit_sha),
            existing.file_path
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(format!(" {} · {} ", item.reason.as_str(), item.id))),
        detail_area,
    );
}
