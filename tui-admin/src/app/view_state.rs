//! Each view's own state and what it does with it, behind one trait so
//! [`super::App`] picks the current view once (`App::view_state`)
//! instead of matching on it in every action. The Overview, Payments,
//! Aggregator and Rejected views live here; Users and Events, which do more,
//! have their own modules. Rejected and Events share the state of a page
//! filtered locally ([`FilteredPage`]). Rejected items and nodes are filtered
//! locally (only the page on screen); payments are filtered by the server.

use billing_api::Event;
use billing_api::types::{
    AggregateSummary, AggregatorState, NodeState, Overview, Page, Payment, RejectedItem,
};

use super::filtered_page::{FilteredPage, PageItem};
use super::{Fetched, PageRequest, Paged, Remote, RpcCall};

/// What Enter opens on the selected row.
pub enum Opened {
    /// The user detail screen of this sid.
    User(String),
    /// The detail popup of this event (already loaded).
    Event(Event),
}

/// What every view does with its own state; the defaults are a view without
/// a list, a filter or pages.
pub(super) trait ViewState {
    /// The fetches of what the view shows, skipping those still in flight.
    fn refresh(&mut self) -> Vec<RpcCall>;

    /// How many rows the view lists now (after a local filter). The
    /// aggregator state is the Aggregator view's data.
    fn rows(&self, _aggregator: Option<&AggregatorState>) -> usize {
        0
    }

    /// The selected row, if the view lists rows.
    fn selected_mut(&mut self) -> Option<&mut usize> {
        None
    }

    /// `n`/`p`: the next or previous page from the server.
    fn turn_page(&mut self, _forward: bool) -> Vec<RpcCall> {
        vec![]
    }

    /// Whether `/` opens a filter prompt on this view.
    fn has_filter(&self) -> bool {
        true
    }

    /// The filter as the `/` prompt opens with it.
    fn filter_text(&self) -> String {
        String::new()
    }

    /// The text at the `/` prompt changed: a local filter follows it at once.
    fn type_filter(&mut self, _text: String) {}

    /// Enter at the `/` prompt.
    fn apply_filter(&mut self, text: String) -> Vec<RpcCall> {
        self.type_filter(text);
        vec![]
    }

    /// Esc at the `/` prompt.
    fn cancel_filter(&mut self) -> Vec<RpcCall> {
        self.type_filter(String::new());
        vec![]
    }

    /// Esc with nothing open over the view.
    fn clear_filter(&mut self) -> Vec<RpcCall> {
        self.cancel_filter()
    }

    /// What Enter opens on the selected row, if anything.
    fn open(&self) -> Option<Opened> {
        None
    }
}

/// The fetch of a page, if there is one to ask for: `call` makes it from the
/// request (`None` when the page is in flight or there is no such page).
pub(super) fn page_calls(
    req: Option<PageRequest>,
    call: impl FnOnce(PageRequest) -> RpcCall,
) -> Vec<RpcCall> {
    req.map(call).into_iter().collect()
}

/// Moves `selected` by `delta` rows inside `len` rows (`isize::MIN`/`MAX`:
/// to the first/last).
pub(super) fn step(selected: usize, delta: isize, len: usize) -> usize {
    let max = len.saturating_sub(1);
    match delta {
        isize::MIN => 0,
        isize::MAX => max,
        d if d < 0 => selected.saturating_sub(d.unsigned_abs()),
        d => selected.saturating_add(d as usize).min(max),
    }
}

/// The Overview view (`1`): the headline totals and the recent passes.
#[derive(Debug, Default)]
pub struct OverviewView {
    pub totals: Remote<Overview>,
    pub runs: Remote<Vec<AggregateSummary>>,
}

impl ViewState for OverviewView {
    fn refresh(&mut self) -> Vec<RpcCall> {
        let mut calls = Vec::new();
        if !self.totals.loading {
            self.totals.loading = true;
            calls.push(RpcCall::Overview);
        }
        if !self.runs.loading {
            self.runs.loading = true;
            calls.push(RpcCall::Runs);
        }
        calls
    }

    fn has_filter(&self) -> bool {
        false
    }
}

/// The Payments view (`3`): one page of the payment log, newest first,
/// optionally for one user (a filter the server runs).
#[derive(Debug, Default)]
pub struct PaymentsView {
    pub list: Paged<Payment>,
    /// Server-side filter: only this user's payments.
    pub user: Option<String>,
}

impl PaymentsView {
    /// Asks for the first page, for the user filter as it is now.
    fn restart(&mut self) -> Vec<RpcCall> {
        self.list.selected = 0;
        let req = self.list.first();
        vec![RpcCall::Payments(req, self.user.clone())]
    }

    pub(super) fn accept(&mut self, req: PageRequest, result: Fetched<Page<Payment>>) {
        self.list.accept(req, result);
        let len = self.list.items.len();
        self.list.selected = self.list.selected.min(len.saturating_sub(1));
    }
}

impl ViewState for PaymentsView {
    fn refresh(&mut self) -> Vec<RpcCall> {
        page_calls(self.list.refresh(), |r| {
            RpcCall::Payments(r, self.user.clone())
        })
    }

    fn rows(&self, _aggregator: Option<&AggregatorState>) -> usize {
        self.list.items.len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.list.selected)
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        page_calls(self.list.turn(forward), |r| {
            RpcCall::Payments(r, self.user.clone())
        })
    }

    fn filter_text(&self) -> String {
        self.user.clone().unwrap_or_default()
    }

    /// The server filters by the sid typed, from the first page.
    fn apply_filter(&mut self, text: String) -> Vec<RpcCall> {
        let text = text.trim().to_string();
        self.user = (!text.is_empty()).then_some(text);
        self.restart()
    }

    /// The prompt closes; the filter in force stays.
    fn cancel_filter(&mut self) -> Vec<RpcCall> {
        vec![]
    }

    /// Every user's payments again, if a user filter was set.
    fn clear_filter(&mut self) -> Vec<RpcCall> {
        if self.user.take().is_none() {
            return vec![];
        }
        self.restart()
    }

    fn open(&self) -> Option<Opened> {
        let payment = self.list.items.get(self.list.selected)?;
        Some(Opened::User(payment.user_sid.clone()))
    }
}

/// The Aggregator view (`4`): the node table's selection and local filter;
/// its data is the aggregator state, which every refresh fetches.
#[derive(Debug, Default)]
pub struct AggregatorView {
    pub selected: usize,
    pub filter: String,
}

impl AggregatorView {
    /// The nodes of `state` that match the filter.
    pub fn visible<'a>(&self, state: Option<&'a AggregatorState>) -> Vec<&'a NodeState> {
        let needle = self.filter.to_lowercase();
        state
            .map(|s| {
                s.nodes
                    .iter()
                    .filter(|n| needle.is_empty() || n.node_name.to_lowercase().contains(&needle))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keeps the selection on a row of a newly answered state.
    pub(super) fn clamp(&mut self, state: Option<&AggregatorState>) {
        let len = self.visible(state).len();
        self.selected = self.selected.min(len.saturating_sub(1));
    }
}

impl ViewState for AggregatorView {
    fn refresh(&mut self) -> Vec<RpcCall> {
        vec![]
    }

    fn rows(&self, aggregator: Option<&AggregatorState>) -> usize {
        self.visible(aggregator).len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.selected)
    }

    fn filter_text(&self) -> String {
        self.filter.clone()
    }

    fn type_filter(&mut self, text: String) {
        self.filter = text;
        self.selected = 0;
    }
}

/// The Rejected view (`5`): one page of held and rejected records and files,
/// filtered locally.
pub type RejectedView = FilteredPage<RejectedItem>;

impl PageItem for RejectedItem {
    fn fetch(req: PageRequest) -> RpcCall {
        RpcCall::Rejected(req)
    }

    /// Reason, node, file, detail, user and idempotency key.
    fn matches(&self, needle: &str) -> bool {
        [
            self.reason.as_str(),
            &self.node_name,
            &self.file_path,
            &self.detail,
            self.user_sid.as_deref().unwrap_or(""),
            self.idempotency_key.as_deref().unwrap_or(""),
        ]
        .iter()
        .any(|f| f.to_lowercase().contains(needle))
    }

    /// The user detail of the item's user, if it names one.
    fn open(&self) -> Option<Opened> {
        self.user_sid.clone().map(Opened::User)
    }
}
