//! The `?` popup listing every key binding ([`crate::keys::bindings`]).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::keys;

pub fn draw(frame: &mut Frame, body: Rect) {
    let lines: Vec<Line> = keys::bindings()
        .iter()
        .map(|binding| {
            Line::from(vec![
                Span::styled(
                    format!("{:>15}  ", binding.label),
                    Style::new().fg(Color::Cyan),
                ),
                Span::raw(binding.help.as_str()),
            ])
        })
        .collect();
    let area = super::layout::popup_area(body, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (Esc closes) ")),
        area,
    );
}
