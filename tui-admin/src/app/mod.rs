//! The dashboard's state and the only place it changes: [`App::update`] takes
//! an [`Action`] and returns the [`RpcCall`]s to start. It never
//! awaits, so key handling stays instant and tests can drive it directly.

pub use crate::remote::{ErrorKind, FetchError, Fetched, PageRequest, Paged, Remote};
use billing_api::types::{AggregatorState, DEFAULT_PAGE_LIMIT, millis_to_rfc3339};

/// Rows a PgUp/PgDn moves.
const PAGE_STEP: usize = 10;
/// How many recent passes the overview chart shows.
pub const RECENT_RUNS: u32 = 24;
/// Rows per page requested from the server for every list.
pub const PAGE_LIMIT: u32 = DEFAULT_PAGE_LIMIT;

mod checks;
mod events;
mod filtered_page;
mod message;
mod users;
mod view;
mod view_state;

pub use checks::LocalCheck;
pub use events::{EventDetail, EventsView};
pub use filtered_page::{FilteredPage, PageItem};
pub use message::{Action, RpcAnswer, RpcCall};
pub use users::UsersView;
pub use view::{ConnState, Popup, UserDetail, UserDetailData, UserQuery, UserSort, View};
use view_state::ViewState;
pub use view_state::{AggregatorView, Opened, OverviewView, PaymentsView, RejectedView};

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

    /// Health, nodes, last pass and checks: fetched on every refresh, shown
    /// by the Aggregator view and used by the Overview.
    pub aggregator_state: Remote<AggregatorState>,
    /// Each view's own state, kept while another view is shown.
    pub overview: OverviewView,
    pub users: UsersView,
    pub payments: PaymentsView,
    pub aggregator: AggregatorView,
    pub rejected: RejectedView,
    /// Events (balance alerts, failed passes, stale nodes), newest first.
    pub events: EventsView,
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
            aggregator_state: Remote::default(),
            overview: OverviewView::default(),
            users: UsersView::default(),
            payments: PaymentsView::default(),
            aggregator: AggregatorView::default(),
            rejected: RejectedView::default(),
            events: EventsView::default(),
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
        self.overview.totals.loading
            || self.aggregator_state.loading
            || self.overview.runs.loading
            || self.users.list.loading
            || self.payments.list.loading
            || self.rejected.list.loading
            || self.events.list.loading
            || self.detail.as_ref().is_some_and(|d| d.data.loading)
            || self.popup == Some(Popup::Aggregating)
            || self.check.is_some()
    }

    /// The state of the view on screen.
    fn view_state(&self) -> &dyn ViewState {
        match self.view {
            View::Overview => &self.overview,
            View::Users => &self.users,
            View::Payments => &self.payments,
            View::Aggregator => &self.aggregator,
            View::Rejected => &self.rejected,
            View::Events => &self.events,
        }
    }

    fn view_state_mut(&mut self) -> &mut dyn ViewState {
        match self.view {
            View::Overview => &mut self.overview,
            View::Users => &mut self.users,
            View::Payments => &mut self.payments,
            View::Aggregator => &mut self.aggregator,
            View::Rejected => &mut self.rejected,
            View::Events => &mut self.events,
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
                if self.view_state().has_filter() && self.detail.is_none() {
                    self.filter_input = Some(self.view_state().filter_text());
                }
                vec![]
            }
            Action::FilterChar(ch) => {
                if let Some(input) = self.filter_input.as_mut() {
                    input.push(ch);
                    let text = input.clone();
                    self.view_state_mut().type_filter(text);
                }
                vec![]
            }
            Action::FilterBackspace => {
                if let Some(input) = self.filter_input.as_mut() {
                    input.pop();
                    let text = input.clone();
                    self.view_state_mut().type_filter(text);
                }
                vec![]
            }
            Action::ApplyFilter => {
                let Some(text) = self.filter_input.take() else {
                    return vec![];
                };
                self.view_state_mut().apply_filter(text)
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
        calls.extend(self.view_state_mut().refresh());
        if let Some(detail) = self.detail.as_mut()
            && !detail.data.loading
        {
            detail.data.loading = true;
            calls.push(RpcCall::Detail(detail.user_sid.clone()));
        }
        calls
    }

    fn move_selection(&mut self, delta: isize) -> Vec<RpcCall> {
        if self.scroll_event(delta) || self.detail.is_some() || self.popup.is_some() {
            return vec![];
        }
        let len = self.view_state().rows(self.aggregator_state.data.as_ref());
        if let Some(selected) = self.view_state_mut().selected_mut() {
            *selected = view_state::step(*selected, delta, len);
        }
        vec![]
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        if self.detail.is_some() || self.popup.is_some() {
            return vec![];
        }
        self.view_state_mut().turn_page(forward)
    }

    fn open(&mut self) -> Vec<RpcCall> {
        if self.popup.is_some() || self.detail.is_some() {
            return vec![];
        }
        match self.view_state().open() {
            Some(Opened::User(sid)) => self.open_user(sid),
            Some(Opened::Event(event)) => {
                self.popup = Some(Popup::Event(EventDetail { event, scroll: 0 }));
                vec![]
            }
            None => vec![],
        }
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

    /// Esc: closes the prompt, a popup or the detail, else clears the
    /// view's filter.
    fn back(&mut self) -> Vec<RpcCall> {
        if self.filter_input.take().is_some() {
            return self.view_state_mut().cancel_filter();
        }
        if self.popup.take().is_some() {
            return vec![];
        }
        if self.detail.take().is_some() {
            return vec![];
        }
        self.view_state_mut().clear_filter()
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
                self.overview.totals.accept(result);
            }
            RpcAnswer::AggregatorState(result) => {
                self.note_result(&result);
                self.aggregator_state.accept(result);
                self.aggregator.clamp(self.aggregator_state.data.as_ref());
            }
            RpcAnswer::Runs(result) => {
                self.note_result(&result);
                self.overview.runs.accept(result);
            }
            RpcAnswer::Users(req, query, result) => return self.accept_users(req, query, result),
            RpcAnswer::Payments(req, result) => {
                self.note_result(&result);
                self.payments.accept(req, result);
            }
            RpcAnswer::Rejected(req, result) => {
                self.note_result(&result);
                self.rejected.accept(req, result);
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
