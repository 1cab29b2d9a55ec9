//! The Events view (`6`): one page of `list_events`, newest first, filtered
//! locally, and the detail popup of one event (Enter), which follows the
//! event's delivery state as the page refreshes.

use billing_api::Event;
use billing_api::types::Page;

use super::filtered_page::{FilteredPage, PageItem};
use super::view_state::Opened;
use super::{App, Fetched, PageRequest, Popup, RpcCall};
use crate::event_text;

/// The Events view's state: one page of events and the local filter.
pub type EventsView = FilteredPage<Event>;

impl PageItem for Event {
    fn fetch(req: PageRequest) -> RpcCall {
        RpcCall::Events(req)
    }

    /// Id, type, subject, details, delivery state.
    fn matches(&self, needle: &str) -> bool {
        event_text::matches(self, needle)
    }

    /// The detail popup of the event; it is already loaded.
    fn open(&self) -> Option<Opened> {
        Some(Opened::Event(self.clone()))
    }
}

/// The event shown in the detail popup, and how far it is scrolled.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    pub event: Event,
    /// The first line shown.
    pub scroll: usize,
}

impl App {
    /// Scrolls the event popup by `delta` lines (`isize::MIN`/`MAX`: to the
    /// top/bottom) if it is open; says whether it was.
    pub(super) fn scroll_event(&mut self, delta: isize) -> bool {
        let Some(Popup::Event(detail)) = self.popup.as_mut() else {
            return false;
        };
        let lines = event_text::detail_lines(&detail.event, self.now_millis).len();
        detail.scroll = super::view_state::step(detail.scroll, delta, lines);
        true
    }

    pub(super) fn accept_events(&mut self, req: PageRequest, result: Fetched<Page<Event>>) {
        self.note_result(&result);
        self.events.accept(req, result);
        // An open event shows its deliveries as they are now.
        if let Some(Popup::Event(detail)) = self.popup.as_mut()
            && let Some(fresh) = self
                .events
                .list
                .items
                .iter()
                .find(|e| e.id == detail.event.id)
        {
            detail.event = fresh.clone();
        }
    }
}
