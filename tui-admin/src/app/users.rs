//! The Users view's query, run by the server: `s` cycles the order, `/`
//! searches every user's sid, name and email, `o` shows overdrawn users only.
//! A new query starts again at its first page; every page request carries the
//! query, so paging, polling and refreshes keep it, and an answer to an older
//! query is dropped.

use billing_api::types::{Page, UserBilling};

use super::{App, Fetched, PageRequest, RpcCall, UserQuery, View};

impl App {
    /// The fetch of the users page on screen, unless one is in flight.
    pub(super) fn refresh_users(&mut self) -> Option<RpcCall> {
        (!self.users.loading)
            .then(|| RpcCall::Users(self.users.current(), self.users_query.clone()))
    }

    pub(super) fn turn_users_page(&mut self, forward: bool) -> Vec<RpcCall> {
        let req = if forward {
            self.users.next()
        } else {
            self.users.prev()
        };
        req.map(|r| RpcCall::Users(r, self.users_query.clone()))
            .into_iter()
            .collect()
    }

    /// Whether `s`, `o` and a search's sid lookup act: on the Users list,
    /// not under a detail or a popup.
    fn on_users_list(&self) -> bool {
        self.view == View::Users && self.detail.is_none() && self.popup.is_none()
    }

    /// Runs `query` from its first page; the cursors of the last one are
    /// only valid for it.
    fn run_users_query(&mut self, query: UserQuery) -> Vec<RpcCall> {
        self.users_query = query;
        self.users_lookup = None;
        vec![RpcCall::Users(
            self.users.restart(),
            self.users_query.clone(),
        )]
    }

    /// `s`: the next order, from the first page.
    pub(super) fn cycle_users_sort(&mut self) -> Vec<RpcCall> {
        if !self.on_users_list() {
            return vec![];
        }
        let query = UserQuery {
            sort: UserQuery::next_sort(self.users_query.sort),
            ..self.users_query.clone()
        };
        self.run_users_query(query)
    }

    /// `o`: overdrawn users only, or all again.
    pub(super) fn toggle_overdrawn(&mut self) -> Vec<RpcCall> {
        if !self.on_users_list() {
            return vec![];
        }
        let query = UserQuery {
            overdrawn: !self.users_query.overdrawn,
            ..self.users_query.clone()
        };
        self.run_users_query(query)
    }

    /// Enter after `/`: searches all users for `text` (none if it is blank).
    /// If its first page finds nobody, `text` is opened as a sid
    /// ([`Self::accept_users`]).
    pub(super) fn search_users(&mut self, text: &str) -> Vec<RpcCall> {
        let text = text.trim();
        let query = UserQuery {
            text: (!text.is_empty()).then(|| text.to_string()),
            ..self.users_query.clone()
        };
        let calls = self.run_users_query(query);
        if let Some(RpcCall::Users(req, _)) = calls.first()
            && !text.is_empty()
        {
            self.users_lookup = Some((req.seq, text.to_string()));
        }
        calls
    }

    /// Esc: drops the search, if there is one.
    pub(super) fn clear_users_search(&mut self) -> Vec<RpcCall> {
        if self.users_query.text.is_none() {
            return vec![];
        }
        let query = UserQuery {
            text: None,
            ..self.users_query.clone()
        };
        self.run_users_query(query)
    }

    /// Takes a page of users if it answers the newest request of the current
    /// query. The selected user stays selected when a refresh moves it (the
    /// balance orders change as balances do). When the first page of a search
    /// comes back empty, the text is opened as a sid with `get_balance`: a
    /// search reads at most 10,000 users a page, a sid lookup is one read.
    /// The search is kept if the server has more users to read for it (`n`),
    /// and dropped if nobody matches at all.
    pub(super) fn accept_users(
        &mut self,
        req: PageRequest,
        query: UserQuery,
        result: Fetched<Page<UserBilling>>,
    ) -> Vec<RpcCall> {
        self.note_result(&result);
        if query != self.users_query {
            return vec![];
        }
        let lookup = self.users_lookup.take_if(|(seq, _)| *seq == req.seq);
        let page_before = self.users.page_index();
        let selected_sid = self
            .users
            .items
            .get(self.users.selected)
            .map(|u| u.user_sid.clone());
        if !self.users.accept(req, result) {
            return vec![];
        }
        if page_before == self.users.page_index()
            && let Some(sid) = selected_sid
            && let Some(at) = self.users.items.iter().position(|u| u.user_sid == sid)
        {
            self.users.selected = at;
        }
        let len = self.users.items.len();
        self.users.selected = self.users.selected.min(len.saturating_sub(1));

        let found_nobody =
            self.users.loaded && self.users.error.is_none() && self.users.items.is_empty();
        match lookup {
            Some((_, sid))
                if found_nobody && self.on_users_list() && self.filter_input.is_none() =>
            {
                let mut calls = if self.users.next_cursor.is_none() {
                    self.clear_users_search()
                } else {
                    vec![]
                };
                calls.extend(self.open_user(sid));
                calls
            }
            _ => vec![],
        }
    }
}
