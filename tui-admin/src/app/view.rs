//! What the dashboard shows: its views, the users query, the detail screen,
//! popups and the connection state.

pub use billing_api::types::UserSort;
use billing_api::types::{AggregateSummary, Balance, ConsumedRecord, Payment, UserFilter};

use super::{EventDetail, Remote};

/// The top-level views, in tab order (`1`–`6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Users,
    Payments,
    Aggregator,
    Rejected,
    Events,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Users,
        View::Payments,
        View::Aggregator,
        View::Rejected,
        View::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Users => "Users",
            View::Payments => "Payments",
            View::Aggregator => "Aggregator",
            View::Rejected => "Rejected",
            View::Events => "Events",
        }
    }

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub(super) fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    pub(super) fn prev(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }
}

/// Connection state shown in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Unreachable(String),
    Unauthorized,
}

/// What the Users view asks the server for (`list_users` `sort` and
/// `filter`). Every page request of the view carries it, and a cursor is only
/// ever sent back with the query it came from: changing the query starts
/// again at the first page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// The order (`s` cycles it).
    pub sort: UserSort,
    /// Found, ignoring case, in any user's sid, name or email (`/`).
    pub text: Option<String>,
    /// Only users with a balance below zero (`o`).
    pub overdrawn: bool,
}

impl UserQuery {
    /// The next order `s` moves to: sid, lowest balance, highest balance,
    /// most consumed, and back to sid.
    pub fn next_sort(sort: UserSort) -> UserSort {
        match sort {
            UserSort::Sid => UserSort::BalanceAsc,
            UserSort::BalanceAsc => UserSort::BalanceDesc,
            UserSort::BalanceDesc => UserSort::ConsumedDesc,
            UserSort::ConsumedDesc => UserSort::Sid,
        }
    }

    /// The order in words, as the title shows it.
    pub fn sort_label(sort: UserSort) -> &'static str {
        match sort {
            UserSort::Sid => "by sid",
            UserSort::BalanceAsc => "lowest balance first",
            UserSort::BalanceDesc => "highest balance first",
            UserSort::ConsumedDesc => "most consumed first",
        }
    }

    /// Whether a filter is set (so pages may come back short, even empty).
    pub fn is_filtered(&self) -> bool {
        self.text.is_some() || self.overdrawn
    }

    /// The `filter` param of `list_users`; `None` when nothing is filtered.
    pub fn filter(&self) -> Option<UserFilter> {
        self.is_filtered().then(|| UserFilter {
            text: self.text.clone(),
            overdrawn: self.overdrawn.then_some(true),
            ..UserFilter::default()
        })
    }

    /// The `sort` param of `list_users`; `None` for the server's default
    /// (`sid`), so the plain listing is the request it always was.
    pub fn sort_param(&self) -> Option<UserSort> {
        (self.sort != UserSort::Sid).then_some(self.sort)
    }
}

/// What the user detail screen shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserDetailData {
    pub balance: Balance,
    pub payments: Vec<Payment>,
    pub consumed: Vec<ConsumedRecord>,
}

#[derive(Debug, Clone)]
pub struct UserDetail {
    pub user_sid: String,
    pub data: Remote<UserDetailData>,
}

/// A modal window over the current view.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help,
    ConfirmAggregate,
    Aggregating,
    Summary(AggregateSummary),
    AggregateFailed(String),
    /// One event in full (Enter on the Events view).
    Event(EventDetail),
}
