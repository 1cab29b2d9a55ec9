//! The Users view (`2`) and its query, run by the server: `s` cycles the
//! order, `/` searches every user's sid, name and email, `o` shows overdrawn
//! users only. A new query starts again at its first page; every page request
//! carries the query, so paging, polling and refreshes keep it, and an answer
//! to an older query is dropped.

use billing_api::types::{AggregatorState, Page, UserBilling};

use super::view_state::{Opened, ViewState, page_calls};
use super::{App, Fetched, PageRequest, Paged, RpcCall, UserQuery, View};

/// The Users view's state: one page of users and the query it answers.
#[derive(Debug, Default)]
pub struct UsersView {
    pub list: Paged<UserBilling>,
    /// The order and filter the server lists the users in.
    pub query: UserQuery,
    /// A search's text and the request of its first page: opened as a sid if
    /// that page finds nobody.
    lookup: Option<(u64, String)>,
}

impl UsersView {
    /// The users of the current page, in the server's order and through its
    /// filter ([`UserQuery`]).
    pub fn visible(&self) -> Vec<&UserBilling> {
        self.list.items.iter().collect()
    }

    /// Runs `query` from its first page; the cursors of the last one are
    /// only valid for it.
    fn run_query(&mut self, query: UserQuery) -> Vec<RpcCall> {
        self.query = query;
        self.lookup = None;
        vec![RpcCall::Users(self.list.restart(), self.query.clone())]
    }

    /// `s`: the next order, from the first page.
    fn cycle_sort(&mut self) -> Vec<RpcCall> {
        let query = UserQuery {
            sort: UserQuery::next_sort(self.query.sort),
            ..self.query.clone()
        };
        self.run_query(query)
    }

    /// `o`: overdrawn users only, or all again.
    fn toggle_overdrawn(&mut self) -> Vec<RpcCall> {
        let query = UserQuery {
            overdrawn: !self.query.overdrawn,
            ..self.query.clone()
        };
        self.run_query(query)
    }

    /// Esc: drops the search, if there is one.
    pub(super) fn clear_search(&mut self) -> Vec<RpcCall> {
        if self.query.text.is_none() {
            return vec![];
        }
        let query = UserQuery {
            text: None,
            ..self.query.clone()
        };
        self.run_query(query)
    }

    /// Takes a page of users if it answers the newest request of the current
    /// query. The selected user stays selected when a refresh moves it (the
    /// balance orders change as balances do). Returns a search's text when
    /// this was its first page and it found nobody: [`App::accept_users`]
    /// opens it as a sid.
    fn accept(
        &mut self,
        req: PageRequest,
        query: UserQuery,
        result: Fetched<Page<UserBilling>>,
    ) -> Option<String> {
        if query != self.query {
            return None;
        }
        let lookup = self.lookup.take_if(|(seq, _)| *seq == req.seq);
        let page_before = self.list.page_index();
        let selected_sid = self
            .list
            .items
            .get(self.list.selected)
            .map(|u| u.user_sid.clone());
        if !self.list.accept(req, result) {
            return None;
        }
        if page_before == self.list.page_index()
            && let Some(sid) = selected_sid
            && let Some(at) = self.list.items.iter().position(|u| u.user_sid == sid)
        {
            self.list.selected = at;
        }
        let len = self.list.items.len();
        self.list.selected = self.list.selected.min(len.saturating_sub(1));

        let found_nobody =
            self.list.loaded && self.list.error.is_none() && self.list.items.is_empty();
        lookup.filter(|_| found_nobody).map(|(_, sid)| sid)
    }
}

impl ViewState for UsersView {
    fn refresh(&mut self) -> Vec<RpcCall> {
        page_calls(self.list.refresh(), |r| {
            RpcCall::Users(r, self.query.clone())
        })
    }

    fn rows(&self, _aggregator: Option<&AggregatorState>) -> usize {
        self.visible().len()
    }

    fn selected_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.list.selected)
    }

    fn turn_page(&mut self, forward: bool) -> Vec<RpcCall> {
        page_calls(self.list.turn(forward), |r| {
            RpcCall::Users(r, self.query.clone())
        })
    }

    fn filter_text(&self) -> String {
        self.query.text.clone().unwrap_or_default()
    }

    /// Enter after `/`: searches all users for `text` (none if it is blank).
    /// If its first page finds nobody, `text` is opened as a sid
    /// ([`App::accept_users`]).
    fn apply_filter(&mut self, text: String) -> Vec<RpcCall> {
        let text = text.trim();
        let query = UserQuery {
            text: (!text.is_empty()).then(|| text.to_string()),
            ..self.query.clone()
        };
        let calls = self.run_query(query);
        if let Some(RpcCall::Users(req, _)) = calls.first()
            && !text.is_empty()
        {
            self.lookup = Some((req.seq, text.to_string()));
        }
        calls
    }

    fn cancel_filter(&mut self) -> Vec<RpcCall> {
        self.clear_search()
    }

    fn open(&self) -> Option<Opened> {
        let user = self.visible().into_iter().nth(self.list.selected)?;
        Some(Opened::User(user.user_sid.clone()))
    }
}

impl App {
    /// Whether `s`, `o` and a search's sid lookup act: on the Users list,
    /// not under a detail or a popup.
    fn on_users_list(&self) -> bool {
        self.view == View::Users && self.detail.is_none() && self.popup.is_none()
    }

    /// `s` on the Users list.
    pub(super) fn cycle_users_sort(&mut self) -> Vec<RpcCall> {
        if !self.on_users_list() {
            return vec![];
        }
        self.users.cycle_sort()
    }

    /// `o` on the Users list.
    pub(super) fn toggle_overdrawn(&mut self) -> Vec<RpcCall> {
        if !self.on_users_list() {
            return vec![];
        }
        self.users.toggle_overdrawn()
    }

    /// A page of users ([`UsersView::accept`]). When the first page of a
    /// search comes back empty, the text is opened as a sid with
    /// `get_balance`: a search reads at most 10,000 users a page, a sid lookup
    /// is one read. The search is kept if the server has more users to read
    /// for it (`n`), and dropped if nobody matches at all.
    pub(super) fn accept_users(
        &mut self,
        req: PageRequest,
        query: UserQuery,
        result: Fetched<Page<UserBilling>>,
    ) -> Vec<RpcCall> {
        self.note_result(&result);
        let Some(sid) = self.users.accept(req, query, result) else {
            return vec![];
        };
        if !self.on_users_list() || self.filter_input.is_some() {
            return vec![];
        }
        let mut calls = if self.users.list.next_cursor.is_none() {
            self.users.clear_search()
        } else {
            vec![]
        };
        calls.extend(self.open_user(sid));
        calls
    }
}
