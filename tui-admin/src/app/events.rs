//! The Events view (`6`): one page of `list_events`, newest first, filtered
//! locally, and the detail popup of one event (Enter), which follows the
//! event's delivery state as the page refreshes.

use billing_api::Event;
use billing_api::types::{AggregatorState, Page};

use super::view_state::{Opened, ViewState, page_calls};
use super::{App, Fetched, PageRequest, Paged, Popup, RpcCall};
use crate::event_text;

/// The Events view's state.
#[derive(Debug, Default)]
pub struct EventsView {
    pub list: Paged<Event>,
    pub filter: String,
}

impl EventsView {
    /// The events of the current page that match the filter (id, type,
    /// subject, details, delivery state).
    pub fn visible(&self) -> Vec<&Event> {
        let needle = self.filter.to_lowercase();
        self.list
            .items
            .iter()
            .filter(|e| event_text::matches(e, &needle))
            .collect()
    }
}

impl ViewState for EventsView {
    /// The fetch of the page on screen, unless one is in flight.
    fn refresh(&mut self) -> Vec<RpcCall> {
        page_calls(self.list.refresh(), RpcCall::Events)
    }

    fn rows(&self, _aggregator: Option<&AggregatorState>) -> usize {
        self.visible().len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.list.selected)
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        page_calls(self.list.turn(forward), RpcCall::Events)
    }

    fn filter_text(&self) -> String {
        self.filter.clone()
    }

    fn type_filter(&mut self, text: String) {
        self.filter = text;
        self.list.selected = 0;
    }

    /// The selected event, for the detail popup; it is already loaded.
    fn open(&self) -> Option<Opened> {
        let event = self.visible().into_iter().nth(self.list.selected)?;
        Some(Opened::Event(event.clone()))
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
        self.events.list.accept(req, result);
        let len = self.events.visible().len();
        self.events.list.selected = self.events.list.selected.min(len.saturating_sub(1));
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
