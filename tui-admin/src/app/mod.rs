//! The dashboard's state and the only place it changes: [`App::update`] takes
//! an [`Action`] and returns the [`RpcCall`]s to start. It never
//! awaits, so key handling stays instant and tests can drive it directly.

pub use crate::remote::{ErrorKind, FetchError, Fetched, PageRequest, Paged, Remote};
use billing_api::Event;
use billing_api::types::{
    AggregateSummary, AggregatorState, DEFAULT_PAGE_LIMIT, Overview, Payment, RejectedItem,
    UserBilling, millis_to_rfc3339,
};

/// Rows a PgUp/PgDn moves.
const PAGE_STEP: usize = 10;
/// How many recent passes the overview chart shows.
pub const RECENT_RUNS: u32 = 24;
/// Rows per page requested from the server for every list.
pub const PAGE_LIMIT: u32 = DEFAULT_PAGE_LIMIT;

mod checks;
mod events;
mod lists;
mod message;
mod users;
mod view;

pub use checks::LocalCheck;
pub use events::EventDetail;
pub use message::{Action, RpcAnswer, RpcCall};
pub use view::{ConnState, Popup, UserDetail, UserDetailData, UserQuery, UserSort, View};

/// The whole dashboard state.
#[derive(Debug)]
pub struct App {
    pub url: String,
    /// Where the admin secret came from, for the 401 message.
    pub secret_source: String,
    pub refresh_millis: u64,
    pub view: View,
    pub conn: ConnState,
    /// Whether the WebSocket run subscription is up (else polling only).
    pub live: bool,
    pub now_millis: u64,
    pub tick: u64,
    /// Wall-clock time of the last successful fetch.
    pub last_refresh_millis: Option<u64>,
    last_poll_millis: Option<u64>,
    pub should_quit: bool,
    pub popup: Option<Popup>,
    /// Text being typed after `/`, if the filter prompt is open.
    pub filter_input: Option<String>,

    pub overview: Remote<Overview>,
    pub aggregator_state: Remote<AggregatorState>,
    pub runs: Remote<Vec<AggregateSummary>>,
    pub users: Paged<UserBilling>,
    /// The order and filter the server lists the users in.
    pub users_query: UserQuery,
    /// A search's text and the request of its first page: opened as a sid if
    /// that page finds nobody.
    users_lookup: Option<(u64, String)>,
    pub payments: Paged<Payment>,
    /// Server-side filter of the payments list.
    pub payments_user: Option<String>,
    pub rejected: Paged<RejectedItem>,
    pub rejected_filter: String,
    /// Events (balance alerts, failed passes, stale nodes), newest first.
    pub events: Paged<Event>,
    pub events_filter: String,
    pub nodes_selected: usize,
    pub nodes_filter: String,
    pub detail: Option<UserDetail>,
    /// A check this dashboard asked for, until its call returns.
    pub check: Option<LocalCheck>,
    /// Why the last check asked for could not be run or answered.
    pub check_error: Option<String>,
    last_check_poll_millis: u64,
}

impl App {
    pub fn new(url: &str, secret_source: &str, refresh_millis: u64) -> Self {
        Self {
            url: url.to_string(),
            secret_source: secret_source.to_string(),
            refresh_millis: refresh_millis.max(100),
            view: View::Overview,
            conn: ConnState::Connecting,
            live: false,
            now_millis: 0,
            tick: 0,
            last_refresh_millis: None,
            last_poll_millis: None,
            should_quit: false,
            popup: None,
            filter_input: None,
            overview: Remote::default(),
            aggregator_state: Remote::default(),
            runs: Remote::default(),
            users: Paged::default(),
            users_query: UserQuery::default(),
            users_lookup: None,
            payments: Paged::default(),
            payments_user: None,
            rejected: Paged::default(),
            rejected_filter: String::new(),
            events: Paged::default(),
            events_filter: String::new(),
            nodes_selected: 0,
            nodes_filter: String::new(),
            detail: None,
            check: None,
            check_error: None,
            last_check_poll_millis: 0,
        }
    }

    /// The first fetches, issued when the dashboard opens.
    pub fn start(&mut self, now_millis: u64) -> Vec<RpcCall> {
        self.now_millis = now_millis;
        self.refresh()
    }

    /// Whether any request is in flight (drives the spinner).
    pub fn is_loading(&self) -> bool {
        self.overview.loading
            || self.aggregator_state.loading
            || self.runs.loading
            || self.users.loading
            || self.payments.loading
            || self.rejected.loading
            || self.events.loading
            || self.detail.as_ref().is_some_and(|d| d.data.loading)
            || self.popup == Some(Popup::Aggregating)
            || self.check.is_some()
    }

    /// The filter text of the current view, as shown in titles.
    pub fn current_filter(&self) -> String {
        match self.view {
            View::Overview => String::new(),
            View::Users => self.users_query.text.clone().unwrap_or_default(),
            View::Payments => self.payments_user.clone().unwrap_or_default(),
            View::Aggregator => self.nodes_filter.clone(),
            View::Rejected => self.rejected_filter.clone(),
            View::Events => self.events_filter.clone(),
        }
    }

    /// Applies one action; returns the RPC calls to start.
    pub fn update(&mut self, action: Action) -> Vec<RpcCall> {
        match action {
            Action::Quit => {
                self.should_quit = true;
                vec![]
            }
            Action::NextView => self.show(self.view.next()),
            Action::PrevView => self.show(self.view.prev()),
            Action::ShowView(view) => self.show(view),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(PAGE_STEP as isize)),
            Action::PageDown => self.move_selection(PAGE_STEP as isize),
            Action::Top => self.move_selection(isize::MIN),
            Action::Bottom => self.move_selection(isize::MAX),
            Action::NextPage => self.turn_page(true),
            Action::PrevPage => self.turn_page(false),
            Action::StartFilter => {
                if self.view != View::Overview && self.detail.is_none() {
                    self.filter_input = Some(self.current_filter());
                }
                vec![]
            }
            Action::FilterChar(ch) => {
                if let Some(input) = self.filter_input.as_mut() {
                    input.push(ch);
                    let text = input.clone();
                    self.set_local_filter(text);
                }
                vec![]
            }
            Action::FilterBackspace => {
                if let Some(input) = self.filter_input.as_mut() {
                    input.pop();
                    let text = input.clone();
                    self.set_local_filter(text);
                }
                vec![]
            }
            Action::ApplyFilter => {
                let Some(text) = self.filter_input.take() else {
                    return vec![];
                };
                if self.view == View::Users {
                    return self.search_users(&text);
                }
                if self.view == View::Payments {
                    let text = text.trim().to_string();
                    self.payments_user = (!text.is_empty()).then_some(text);
                    self.payments.selected = 0;
                    let req = self.payments.first();
                    return vec![RpcCall::Payments(req, self.payments_user.clone())];
                }
                self.set_local_filter(text);
                vec![]
            }
            Action::CycleSort => self.cycle_users_sort(),
            Action::ToggleOverdrawn => self.toggle_overdrawn(),
            Action::Open => self.open(),
            Action::Back => self.back(),
            Action::Refresh => self.refresh(),
            Action::AskAggregate => {
                if self.popup.is_none() {
                    self.popup = Some(Popup::ConfirmAggregate);
                }
                vec![]
            }
            Action::ConfirmAggregate => {
                if self.popup == Some(Popup::ConfirmAggregate) {
                    self.popup = Some(Popup::Aggregating);
                    vec![RpcCall::AggregateNow]
                } else {
                    vec![]
                }
            }
            Action::RunCheck(kind) => self.run_check(kind),
            Action::ToggleHelp => {
                self.popup = match self.popup {
                    Some(Popup::Help) => None,
                    None => Some(Popup::Help),
                    ref other => other.clone(),
                };
                vec![]
            }
            Action::Tick { now_millis } => {
                self.now_millis = now_millis;
                self.tick = self.tick.wrapping_add(1);
                let due = self
                    .last_poll_millis
                    .is_none_or(|last| now_millis.saturating_sub(last) >= self.refresh_millis);
                if due {
                    self.refresh()
                } else {
                    self.poll_check_progress()
                }
            }
            Action::Resize => vec![],
            Action::Answer(answer) => self.receive(answer),
        }
    }

    fn show(&mut self, view: View) -> Vec<RpcCall> {
        if self.view == view && self.detail.is_none() {
            return vec![];
        }
        self.view = view;
        self.detail = None;
        self.filter_input = None;
        self.refresh()
    }

    /// Fetches what the current view shows (plus the aggregator state and an open detail).
    fn refresh(&mut self) -> Vec<RpcCall> {
        self.last_poll_millis = Some(self.now_millis);
        let mut calls = Vec::new();
        // Skip what is still in flight: a slow server must not pile up requests.
        if !self.aggregator_state.loading {
            self.aggregator_state.loading = true;
            calls.push(RpcCall::AggregatorState);
        }
        match self.view {
            View::Overview => {
                if !self.overview.loading {
                    self.overview.loading = true;
                    calls.push(RpcCall::Overview);
                }
                if !self.runs.loading {
                    self.runs.loading = true;
                    calls.push(RpcCall::Runs);
                }
            }
            View::Users => calls.extend(self.refresh_users()),
            View::Payments => {
                if !self.payments.loading {
                    calls.push(RpcCall::Payments(
                        self.payments.current(),
                        self.payments_user.clone(),
                    ));
                }
            }
            View::Aggregator => {}
            View::Rejected => {
                if !self.rejected.loading {
                    calls.push(RpcCall::Rejected(self.rejected.current()));
                }
            }
            View::Events => calls.extend(self.refresh_events()),
        }
        if let Some(detail) = self.detail.as_mut()
            && !detail.data.loading
        {
            detail.data.loading = true;
            calls.push(RpcCall::Detail(detail.user_sid.clone()));
        }
        calls
    }

    fn list_len(&self) -> usize {
        match self.view {
            View::Overview => 0,
            View::Users => self.visible_users().len(),
            View::Payments => self.payments.items.len(),
            View::Aggregator => self.visible_nodes().len(),
            View::Rejected => self.visible_rejected().len(),
            View::Events => self.visible_events().len(),
        }
    }

    fn move_selection(&mut self, delta: isize) -> Vec<RpcCall> {
        if self.scroll_event(delta) || self.detail.is_some() || self.popup.is_some() {
            return vec![];
        }
        let len = self.list_len();
        let selected = match self.view {
            View::Overview => return vec![],
            View::Users => &mut self.users.selected,
            View::Payments => &mut self.payments.selected,
            View::Aggregator => &mut self.nodes_selected,
            View::Rejected => &mut self.rejected.selected,
            View::Events => &mut self.events.selected,
        };
        let max = len.saturating_sub(1);
        *selected = match delta {
            isize::MIN => 0,
            isize::MAX => max,
            d if d < 0 => selected.saturating_sub(d.unsigned_abs()),
            d => selected.saturating_add(d as usize).min(max),
        };
        vec![]
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        if self.detail.is_some() || self.popup.is_some() {
            return vec![];
        }
        match self.view {
            View::Users => self.turn_users_page(forward),
            View::Payments => {
                let req = if forward {
                    self.payments.next()
                } else {
                    self.payments.prev()
                };
                req.map(|r| RpcCall::Payments(r, self.payments_user.clone()))
                    .into_iter()
                    .collect()
            }
            View::Rejected => {
                let req = if forward {
                    self.rejected.next()
                } else {
                    self.rejected.prev()
                };
                req.map(RpcCall::Rejected).into_iter().collect()
            }
            View::Events => self.turn_events_page(forward),
            View::Overview | View::Aggregator => vec![],
        }
    }

    fn set_local_filter(&mut self, text: String) {
        match self.view {
            View::Aggregator => {
                self.nodes_filter = text;
                self.nodes_selected = 0;
            }
            View::Rejected => {
                self.rejected_filter = text;
                self.rejected.selected = 0;
            }
            View::Events => self.set_events_filter(text),
            // The users search and the payments filter are run by the
            // server on Enter.
            View::Users | View::Payments | View::Overview => {}
        }
    }

    fn open(&mut self) -> Vec<RpcCall> {
        if self.popup.is_some() || self.detail.is_some() {
            return vec![];
        }
        let sid = match self.view {
            View::Users => self
                .visible_users()
                .get(self.users.selected)
                .map(|u| u.user_sid.clone()),
            View::Payments => self
                .payments
                .items
                .get(self.payments.selected)
                .map(|p| p.user_sid.clone()),
            View::Rejected => self
                .visible_rejected()
                .get(self.rejected.selected)
                .and_then(|r| r.user_sid.clone()),
            View::Events => return self.open_event(),
            View::Overview | View::Aggregator => None,
        };
        let Some(sid) = sid else { return vec![] };
        self.open_user(sid)
    }

    fn open_user(&mut self, sid: String) -> Vec<RpcCall> {
        self.detail = Some(UserDetail {
            user_sid: sid.clone(),
            data: Remote {
                loading: true,
                ..Remote::default()
            },
        });
        vec![RpcCall::Detail(sid)]
    }

    fn back(&mut self) -> Vec<RpcCall> {
        if self.filter_input.take().is_some() {
            if self.view == View::Users {
                return self.clear_users_search();
            }
            self.set_local_filter(String::new());
            return vec![];
        }
        if self.popup.take().is_some() {
            return vec![];
        }
        if self.detail.take().is_some() {
            return vec![];
        }
        match self.view {
            View::Payments if self.payments_user.is_some() => {
                self.payments_user = None;
                self.payments.selected = 0;
                let req = self.payments.first();
                vec![RpcCall::Payments(req, None)]
            }
            View::Users => self.clear_users_search(),
            _ => {
                self.set_local_filter(String::new());
                vec![]
            }
        }
    }

    fn note_result<T>(&mut self, result: &Fetched<T>) {
        match result {
            Ok(_) => {
                self.conn = ConnState::Connected;
                self.last_refresh_millis = Some(self.now_millis);
            }
            Err(err) => {
                self.conn = match err.kind {
                    ErrorKind::Unauthorized => ConnState::Unauthorized,
                    ErrorKind::Unreachable => ConnState::Unreachable(err.message.clone()),
                    // The server answered, so the connection itself is fine.
                    ErrorKind::Server => ConnState::Connected,
                }
            }
        }
    }

    fn receive(&mut self, answer: RpcAnswer) -> Vec<RpcCall> {
        // Remote text becomes visible here, before any view can read it.
        match answer.scrubbed() {
            RpcAnswer::Overview(result) => {
                self.note_result(&result);
                self.overview.accept(result);
            }
            RpcAnswer::AggregatorState(result) => {
                self.note_result(&result);
                self.aggregator_state.accept(result);
                let len = self.visible_nodes().len();
                self.nodes_selected = self.nodes_selected.min(len.saturating_sub(1));
            }
            RpcAnswer::Runs(result) => {
                self.note_result(&result);
                self.runs.accept(result);
            }
            RpcAnswer::Users(req, query, result) => return self.accept_users(req, query, result),
            RpcAnswer::Payments(req, result) => {
                self.note_result(&result);
                self.payments.accept(req, result);
                let len = self.payments.items.len();
                self.payments.selected = self.payments.selected.min(len.saturating_sub(1));
            }
            RpcAnswer::Rejected(req, result) => {
                self.note_result(&result);
                self.rejected.accept(req, result);
                let len = self.visible_rejected().len();
                self.rejected.selected = self.rejected.selected.min(len.saturating_sub(1));
            }
            RpcAnswer::Events(req, result) => self.accept_events(req, result),
            RpcAnswer::Detail(sid, result) => {
                self.note_result(&result);
                if let Some(detail) = self.detail.as_mut()
                    && detail.user_sid == sid
                {
                    detail.data.accept(result);
                }
            }
            RpcAnswer::Aggregated(result) => {
                self.note_result(&result);
                let open = matches!(self.popup, Some(Popup::Aggregating));
                match result {
                    Ok(summary) => {
                        if open {
                            self.popup = Some(Popup::Summary(summary));
                        }
                        return self.refresh();
                    }
                    Err(err) => {
                        if open {
                            self.popup = Some(Popup::AggregateFailed(err.message));
                        }
                    }
                }
            }
            RpcAnswer::Checked(kind, result) => return self.check_returned(kind, result),
            RpcAnswer::RunNotified(_) => return self.refresh(),
            RpcAnswer::Live(live) => self.live = live,
        }
        vec![]
    }

    /// `HH:MM:SS` (UTC) of the last successful fetch.
    pub fn last_refresh_text(&self) -> Option<String> {
        let text = millis_to_rfc3339(self.last_refresh_millis?);
        text.get(11..19).map(str::to_string)
    }
}
