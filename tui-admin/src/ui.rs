//! Frame layout: header (server, connection, last refresh), tabs, what to
//! check while the server cannot be reached, the current view, the footer
//! hint bar, and popups on top. Reads the state only.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Tabs, Wrap};

use crate::app::{App, ConnState, Popup, View};
use crate::config::UNREACHABLE_ADVICE;
use crate::keys;
use crate::views;
use crate::views::layout::{popup_area, spinner};

pub fn draw(frame: &mut Frame, app: &App) {
    let unreachable = matches!(app.conn, ConnState::Unreachable(_));
    let [header, tabs, notice, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(u16::from(unreachable)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    draw_tabs(frame, tabs, app);
    if unreachable {
        draw_unreachable(frame, notice, app);
    }
    if app.detail.is_some() {
        views::user_detail::draw(frame, body, app);
    } else {
        match app.view {
            View::Overview => views::overview::draw(frame, body, app),
            View::Users => views::users::draw(frame, body, app),
            View::Payments => views::payments::draw(frame, body, app),
            View::Aggregator => views::aggregator::draw(frame, body, app),
            View::Rejected => views::rejected::draw(frame, body, app),
            View::Events => views::events::draw(frame, body, app),
        }
    }
    draw_footer(frame, footer, app);
    if app.conn == ConnState::Unauthorized {
        draw_unauthorized(frame, body, app);
    }
    match &app.popup {
        Some(Popup::Help) => views::help::draw(frame, body),
        Some(Popup::Event(detail)) => {
            views::events::draw_popup(frame, body, detail, app.now_millis)
        }
        Some(popup) => views::aggregator::draw_popup(frame, body, popup),
        None => {}
    }
    crate::safe::guard(frame.buffer_mut());
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let (state, style) = match &app.conn {
        ConnState::Connecting => ("connecting…".to_string(), Style::new().fg(Color::Yellow)),
        ConnState::Connected => ("connected".to_string(), Style::new().fg(Color::Green)),
        ConnState::Unreachable(msg) => (format!("unreachable: {msg}"), Style::new().fg(Color::Red)),
        ConnState::Unauthorized => (
            "secret rejected (401)".to_string(),
            Style::new().fg(Color::Red),
        ),
    };
    let mut spans = vec![
        Span::styled(
            " billing admin ",
            Style::new().add_modifier(Modifier::BOLD).reversed(),
        ),
        Span::raw(" "),
        Span::raw(app.url.clone()),
        Span::raw(" · "),
        Span::styled(state, style),
    ];
    if app.conn == ConnState::Connected {
        spans.push(Span::raw(" · "));
        spans.push(if app.live {
            Span::styled("live", Style::new().fg(Color::Green))
        } else {
            Span::raw(format!(
                "polling {}",
                crate::format::short_duration(app.refresh_millis)
            ))
        });
    }
    if let Some(at) = app.last_refresh_text() {
        spans.push(Span::raw(format!(" · refreshed {at} UTC")));
    }
    if app.is_loading() {
        spans.push(Span::styled(
            format!(" {} loading", spinner(app.tick)),
            Style::new().fg(Color::Cyan),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let titles = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {}", i + 1, v.title()));
    let tabs = Tabs::new(titles)
        .select(app.view.index())
        .highlight_style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan))
        .divider("│");
    frame.render_widget(tabs, area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let hints = keys::footer(keys::context(app));
    let line = match &app.filter_input {
        Some(input) => Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Yellow)),
            Span::raw(input.clone()),
            Span::styled("█", Style::new().fg(Color::Yellow)),
            Span::raw("  "),
            Span::styled(hints, Style::new().fg(Color::DarkGray)),
        ]),
        None => Line::from(Span::styled(hints, Style::new().fg(Color::DarkGray))),
    };
    frame.render_widget(line, area);
}

/// What to check, as the CLI says it; the header has the error, and the
/// last good data stays below.
fn draw_unreachable(frame: &mut Frame, area: Rect, app: &App) {
    let text = format!("cannot reach {}: {UNREACHABLE_ADVICE}", app.url);
    frame.render_widget(Line::styled(text, Style::new().fg(Color::Red)), area);
}

fn draw_unauthorized(frame: &mut Frame, body: Rect, app: &App) {
    let text = format!(
        "The server rejected the admin secret from {} (HTTP 401).\n\n\
         Server: {}\n\n\
         Check that it is the secret the server was started with \
         (its --admin-secret-file or BILLING_ADMIN_SECRET), then restart the dashboard \
         with --secret-file <path> or BILLING_ADMIN_SECRET.\n\nq quits.",
        app.secret_source, app.url
    );
    let area = popup_area(body, 72, 14);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::bordered()
                .title(" admin secret rejected ")
                .border_style(Style::new().fg(Color::Red)),
        ),
        area,
    );
}
