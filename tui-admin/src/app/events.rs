//! The Events view (`6`): one page of `list_events`, newest first, filtered
//! locally, and the detail popup of one event (Enter), which follows the
//! event's delivery state as the page refreshes.

use billing_api::Event;
use billing_api::types::Page;

use super::{App, Fetched, PageRequest, Popup, RpcCall};
use crate::event_text;

/// The event shown in the detail popup, and how far it is scrolled.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    pub event: Event,
    /// The first line shown.
    pub scroll: usize,
}

impl App {
    /// The events of the current page that match the filter (id, type,
    /// subject, details, delivery state).
    pub fn visible_events(&self) -> Vec<&Event> {
        let needle = self.events_filter.to_lowercase();
        self.events
            .items
            .iter()
            .filter(|e| event_text::matches(e, &needle))
            .collect()
    }

    /// The fetch of the page on screen, unless one is in flight.
    pub(super) fn refresh_events(&mut self) -> Option<RpcCall> {
        (!self.events.loading).then(|| RpcCall::Events(self.events.current()))
    }

    pub(super) fn turn_events_page(&mut self, forward: bool) -> Vec<RpcCall> {
        let req = if forward {
            self.events.next()
        } else {
            self.events.prev()
        };
        req.map(RpcCall::Events).into_iter().collect()
    }

    pub(super) fn set_events_filter(&mut self, text: String) {
        self.events_filter = text;
        self.events.selected = 0;
    }

    /// Opens the selected event in the detail popup; it is already loaded.
    pub(super) fn open_event(&mut self) -> Vec<RpcCall> {
        if let Some(event) = self.visible_events().get(self.events.selected) {
            self.popup = Some(Popup::Event(EventDetail {
                event: (*event).clone(),
                scroll: 0,
            }));
        }
        vec![]
    }

    /// Scrolls the event popup by `delta` lines (`isize::MIN`/`MAX`: to the
    /// top/bottom) if it is open; says whether it was.
    pub(super) fn scroll_event(&mut self, delta: isize) -> bool {
        let Some(Popup::Event(detail)) = self.popup.as_mut() else {
            return false;
        };
        let last = event_text::detail_lines(&detail.event, self.now_millis)
            .len()
            .saturating_sub(1);
        detail.scroll = match delta {
            isize::MIN => 0,
            isize::MAX => last,
            d if d < 0 => detail.scroll.saturating_sub(d.unsigned_abs()),
            d => detail.scroll.saturating_add(d as usize).min(last),
        };
        true
    }

    pub(super) fn accept_events(&mut self, req: PageRequest, result: Fetched<Page<Event>>) {
        self.note_result(&result);
        self.events.accept(req, result);
        let len = self.visible_events().len();
        self.events.selected = self.events.selected.min(len.saturating_sub(1));
        // An open event shows its deliveries as they are now.
        if let Some(Popup::Event(detail)) = self.popup.as_mut()
            && let Some(fresh) = self.events.items.iter().find(|e| e.id == detail.event.id)
        {
            detail.event = fresh.clone();
        }
    }
}
