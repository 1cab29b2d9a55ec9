//! The state of a view that lists one page of a server-side list and filters
//! it locally (only the page on screen): the Rejected and Events views. The
//! two differ only in their items, which say how their page is fetched, what
//! the filter looks at and what Enter opens ([`PageItem`]).

use billing_api::types::{AggregatorState, Page};

use super::view_state::{Opened, ViewState, page_calls};
use super::{Fetched, PageRequest, Paged, RpcCall};

/// An item of a list filtered locally.
pub trait PageItem {
    /// The fetch of the page `req` points at.
    fn fetch(req: PageRequest) -> RpcCall;

    /// Whether the item matches the filter `needle` (lowercase, not empty).
    fn matches(&self, needle: &str) -> bool;

    /// What Enter opens on the item, if anything.
    fn open(&self) -> Option<Opened>;
}

/// One page of a server-side list and the local filter over it.
#[derive(Debug)]
pub struct FilteredPage<T> {
    pub list: Paged<T>,
    pub filter: String,
}

impl<T> Default for FilteredPage<T> {
    fn default() -> Self {
        Self {
            list: Paged::default(),
            filter: String::new(),
        }
    }
}

impl<T: PageItem> FilteredPage<T> {
    /// The items of the page on screen that match the filter.
    pub fn visible(&self) -> Vec<&T> {
        let needle = self.filter.to_lowercase();
        self.list
            .items
            .iter()
            .filter(|item| needle.is_empty() || item.matches(&needle))
            .collect()
    }

    /// Takes a page; the selection stays inside the rows that match.
    pub(super) fn accept(&mut self, req: PageRequest, result: Fetched<Page<T>>) {
        self.list.accept(req, result);
        let len = self.visible().len();
        self.list.selected = self.list.selected.min(len.saturating_sub(1));
    }
}

impl<T: PageItem> ViewState for FilteredPage<T> {
    /// The fetch of the page on screen, unless one is in flight.
    fn refresh(&mut self) -> Vec<RpcCall> {
        page_calls(self.list.refresh(), T::fetch)
    }

    fn rows(&self, _aggregator: Option<&AggregatorState>) -> usize {
        self.visible().len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.list.selected)
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        page_calls(self.list.turn(forward), T::fetch)
    }

    fn filter_text(&self) -> String {
        self.filter.clone()
    }

    fn type_filter(&mut self, text: String) {
        self.filter = text;
        self.list.selected = 0;
    }

    fn open(&self) -> Option<Opened> {
        self.visible().into_iter().nth(self.list.selected)?.open()
    }
}
