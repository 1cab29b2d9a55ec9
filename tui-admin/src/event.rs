//! Turns terminal input, ticks and finished fetches into [`Action`]s (keys
//! through [`key_action`], from [`crate::keys`]). Input and ticks are read by
//! spawned tasks that feed the same channel as the fetcher.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{Event as TermEvent, EventStream, KeyEvent};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::app::Action;
pub use crate::keys::key_action;

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
