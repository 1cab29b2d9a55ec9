//! What moves the dashboard: the actions [`super::App::update`] takes, the
//! fetch results they carry, and the commands (RPC calls) it returns.

use billing_api::types::{
    AggregateSummary, AggregatorState, Overview, Page, Payment, RejectedItem, UserBilling,
};
use billing_api::{CheckKind, Event};

use super::{PageRequest, UserQuery, View};
use crate::app::UserDetailData;

/// Why a fetch failed, as far as the operator needs to know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// HTTP 401: the admin secret is wrong.
    Unauthorized,
    /// The server could not be reached or did not answer in time.
    Unreachable,
    /// The server answered with a JSON-RPC error.
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Fetched<T> = Result<T, FetchError>;

/// Everything that can change the state.
// A few actions per second are moved by value; boxing the data variant would
// only add noise at every construction site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    NextView,
    PrevView,
    ShowView(View),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPage,
    PrevPage,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    ApplyFilter,
    /// `s` on Users: the next server order.
    CycleSort,
    /// `o` on Users: overdrawn users only, or all again.
    ToggleOverdrawn,
    Open,
    Back,
    Refresh,
    AskAggregate,
    ConfirmAggregate,
    /// `R` / `V`: run a ledger check on the server.
    RunCheck(CheckKind),
    ToggleHelp,
    /// Periodic tick with the wall clock, for the spinner, ages and polling.
    Tick {
        now_millis: u64,
    },
    Resize,
    Data(Data),
}

/// Results of finished fetches and subscription events.
// As for `Action`: a few per second, moved by value; the state (with its check
// outcomes) is the large one and the most frequent.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Overview(Fetched<Overview>),
    State(Fetched<AggregatorState>),
    Runs(Fetched<Vec<AggregateSummary>>),
    /// A page of users, with the query it was asked for.
    Users(PageRequest, UserQuery, Fetched<Page<UserBilling>>),
    Payments(PageRequest, Fetched<Page<Payment>>),
    Rejected(PageRequest, Fetched<Page<RejectedItem>>),
    Events(PageRequest, Fetched<Page<Event>>),
    Detail(String, Fetched<UserDetailData>),
    Aggregated(Fetched<AggregateSummary>),
    /// A check's call returned (its outcome is in `aggregator_state`).
    Checked(CheckKind, Fetched<()>),
    /// A pass finished on the server (WebSocket `subscribe_runs`).
    RunNotified(AggregateSummary),
    /// Whether the WebSocket subscription is up.
    Live(bool),
}

/// RPC calls the run loop hands to the fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Overview,
    State,
    Runs,
    /// A page of `list_users` in the query's order and through its filter.
    Users(PageRequest, UserQuery),
    Payments(PageRequest, Option<String>),
    Rejected(PageRequest),
    Events(PageRequest),
    Detail(String),
    AggregateNow,
    Check(CheckKind),
}
