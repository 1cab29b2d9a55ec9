//! Turns terminal input, ticks and finished fetches into [`Action`]s. Input and
//! ticks are read by spawned tasks that feed the same channel as the fetcher.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use billing_api::CheckKind;

use crate::app::{Action, App, Popup, View};

/// How often the spinner and ages advance and the poll timer is checked.
pub const TICK: Duration = Duration::from_millis(250);

/// Wall clock in unix milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What reaches the run loop.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Resize,
    Action(Action),
}

/// The action a key press means in the current state, if any.
pub fn key_action(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Action::Quit);
    }
    if app.filter_input.is_some() {
        return match key.code {
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Enter => Some(Action::ApplyFilter),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(ch) if !ctrl => Some(Action::FilterChar(ch)),
            _ => None,
        };
    }
    match &app.popup {
        Some(Popup::Help) => {
            return match key.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::ToggleHelp),
                KeyCode::Char('q') => Some(Action::Quit),
                _ => None,
            };
        }
        Some(Popup::ConfirmAggregate) => {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    Some(Action::ConfirmAggregate)
                }
                KeyCode::Char('n') | KeyCode::Esc => Some(Action::Back),
                _ => None,
            };
        }
        Some(Popup::Event(_)) => {
            return match key.code {
                KeyCode::Esc | KeyCode::Enter => Some(Action::Back),
                KeyCode::Char('q') => Some(Action::Quit),
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                KeyCode::PageDown => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                KeyCode::Char('g') | KeyCode::Home => Some(Action::Top),
                KeyCode::Char('G') | KeyCode::End => Some(Action::Bottom),
                KeyCode::Char('r') => Some(Action::Refresh),
                _ => None,
            };
        }
        Some(Popup::Aggregating) | Some(Popup::Summary(_)) | Some(Popup::AggregateFailed(_)) => {
            return match key.code {
                KeyCode::Esc | KeyCode::Enter => Some(Action::Back),
                KeyCode::Char('q') => Some(Action::Quit),
                _ => None,
            };
        }
        None => {}
    }
    let action = match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Char(ch @ '1'..='9') => {
            Action::ShowView(*View::ALL.get((ch as u8 - b'1') as usize)?)
        }
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::Char('n') | KeyCode::Char(']') => Action::NextPage,
        KeyCode::Char('p') | KeyCode::Char('[') => Action::PrevPage,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('o') => Action::ToggleOverdrawn,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('a') => Action::AskAggregate,
        KeyCode::Char('R') => Action::RunCheck(CheckKind::Reconcile),
        KeyCode::Char('V') => Action::RunCheck(CheckKind::Verify),
        KeyCode::Char('?') => Action::ToggleHelp,
        _ => return None,
    };
    Some(action)
}

/// Reads terminal events until the channel closes.
pub fn spawn_input(tx: UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(Ok(event)) = stream.next().await {
            let event = match event {
                TermEvent::Key(key) => Event::Key(key),
                TermEvent::Resize(..) => Event::Resize,
                _ => continue,
            };
            if tx.send(event).is_err() {
                break;
            }
        }
    })
}

/// Sends a [`Action::Tick`] every [`TICK`] until the channel closes.
pub fn spawn_ticker(tx: UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let tick = Event::Action(Action::Tick {
                now_millis: now_millis(),
            });
            if tx.send(tick).is_err() {
                break;
            }
        }
    })
}

/// Turns SIGTERM and SIGHUP into a normal quit, so the terminal is restored
/// when the dashboard is stopped from outside too.
pub fn spawn_signals(tx: UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(Event::Action(Action::Quit));
    })
}
