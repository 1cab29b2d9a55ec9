//! The dashboard's main loop, generic over the ratatui backend so tests can
//! drive it with `TestBackend` and a channel of events.

use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::app::{App, RpcCall};
use crate::event::{Event, key_action};
use crate::ui;

/// Draws, waits for the next event, applies it, and hands resulting RPC
/// calls to `execute`, until the app quits or the event channel closes.
/// Events that queued up while drawing are applied together before the next
/// frame, so a burst of results costs one redraw.
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    events: &mut UnboundedReceiver<Event>,
    mut execute: impl FnMut(RpcCall),
) -> Result<(), B::Error> {
    loop {
        terminal.draw(|frame| ui::draw(frame, app))?;
        let Some(event) = events.recv().await else {
            return Ok(());
        };
        handle(app, event, &mut execute);
        while let Ok(event) = events.try_recv() {
            handle(app, event, &mut execute);
        }
        if app.should_quit {
            return Ok(());
        }
    }
}

fn handle(app: &mut App, event: Event, execute: &mut impl FnMut(RpcCall)) {
    let action = match event {
        Event::Key(key) => key_action(app, key),
        Event::Resize => Some(crate::app::Action::Resize),
        Event::Action(action) => Some(action),
    };
    if let Some(action) = action {
        for call in app.update(action) {
            execute(call);
        }
    }
}
