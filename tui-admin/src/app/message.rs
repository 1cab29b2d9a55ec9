//! What moves the dashboard: the actions [`super::App::update`] takes, the
//! answers from the server they carry, and the RPC calls it returns;
//! [`RpcAnswer::scrubbed`] cleans every answer before it is stored.

use billing_api::types::{
    AggregateSummary, AggregatorState, Overview, Page, Payment, RejectedItem, UserBilling,
};
use billing_api::{CheckKind, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Fetched, PageRequest, UserQuery, View};
use crate::app::UserDetailData;
use crate::safe::scrub;

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
    Answer(RpcAnswer),
}

/// What comes back from the server: the result of a finished [`RpcCall`], or
/// news from the run subscription.
// As for `Action`: a few per second, moved by value; the state (with its check
// outcomes) is the large one and the most frequent.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RpcAnswer {
    Overview(Fetched<Overview>),
    AggregatorState(Fetched<AggregatorState>),
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

/// An RPC call [`super::App::update`] asks for; the run loop hands it to the
/// fetcher, which sends its [`RpcAnswer`] back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcCall {
    Overview,
    AggregatorState,
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

impl RpcAnswer {
    /// The same answer with every string from the server made visible
    /// ([`crate::safe::visible`]), so no view can show a raw control character.
    /// Page cursors stay as the server sent them (they are only sent back, never
    /// shown), and so does what the dashboard itself asked for (requests, sids).
    /// No wildcard arm: a new variant does not compile until it is handled here.
    pub(crate) fn scrubbed(self) -> RpcAnswer {
        fn page<T: Serialize + DeserializeOwned>(result: Fetched<Page<T>>) -> Fetched<Page<T>> {
            result.map_err(scrub).map(|page| Page {
                items: scrub(page.items),
                next_cursor: page.next_cursor,
            })
        }
        match self {
            RpcAnswer::Overview(result) => RpcAnswer::Overview(scrub(result)),
            RpcAnswer::AggregatorState(result) => RpcAnswer::AggregatorState(scrub(result)),
            RpcAnswer::Runs(result) => RpcAnswer::Runs(scrub(result)),
            RpcAnswer::Users(req, query, result) => RpcAnswer::Users(req, query, page(result)),
            RpcAnswer::Payments(req, result) => RpcAnswer::Payments(req, page(result)),
            RpcAnswer::Rejected(req, result) => RpcAnswer::Rejected(req, page(result)),
            RpcAnswer::Events(req, result) => RpcAnswer::Events(req, page(result)),
            RpcAnswer::Detail(sid, result) => RpcAnswer::Detail(sid, scrub(result)),
            RpcAnswer::Aggregated(result) => RpcAnswer::Aggregated(scrub(result)),
            RpcAnswer::Checked(kind, result) => RpcAnswer::Checked(kind, result.map_err(scrub)),
            RpcAnswer::RunNotified(summary) => RpcAnswer::RunNotified(scrub(summary)),
            RpcAnswer::Live(live) => RpcAnswer::Live(live),
        }
    }
}
