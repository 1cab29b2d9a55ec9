//! What the dashboard shows: its views, the users sort, the detail screen,
//! popups and the connection state.

use billing_api::types::{AggregateSummary, Balance, ConsumedRecord, Payment};

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

/// Column the users page is sorted by (`s` cycles, `S` reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Sid,
    Name,
    Balance,
    Paid,
    Consumed,
}

impl UserSort {
    pub fn label(self) -> &'static str {
        match self {
            UserSort::Sid => "sid",
            UserSort::Name => "name",
            UserSort::Balance => "balance",
            UserSort::Paid => "paid",
            UserSort::Consumed => "consumed",
        }
    }

    pub(super) fn next(self) -> UserSort {
        match self {
            UserSort::Sid => UserSort::Name,
            UserSort::Name => UserSort::Balance,
            UserSort::Balance => UserSort::Paid,
            UserSort::Paid => UserSort::Consumed,
            UserSort::Consumed => UserSort::Sid,
        }
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
