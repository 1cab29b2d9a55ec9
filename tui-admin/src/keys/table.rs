//! The key bindings, in the order the help lists them. A binding's footer
//! hints come out in this order too, which is why `q` is last.

use billing_api::CheckKind;
use crossterm::event::KeyCode;

use super::{Binding, Context, Does, Hint, Key, KeyUse, Prompt, Scope};
use crate::app::{Action, View};

impl Binding {
    fn new(label: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            help: help.into(),
            keys: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// `keys` do `action` in `scopes`.
    fn on(mut self, scopes: &'static [Scope], keys: &[Key], action: Action) -> Self {
        for &key in keys {
            self.keys.push(KeyUse {
                key,
                scopes,
                does: Does::Act(action.clone()),
            });
        }
        self
    }

    fn types(mut self, scopes: &'static [Scope]) -> Self {
        self.keys.push(KeyUse {
            key: Key::Text,
            scopes,
            does: Does::TypeChar,
        });
        self
    }

    fn hint(
        mut self,
        contexts: &'static [Context],
        keys: &'static str,
        word: &'static str,
    ) -> Self {
        self.hints.push(Hint {
            contexts,
            keys,
            word,
        });
        self
    }
}

const SCREEN: &[Scope] = &[Scope::Screen];
const PROMPT: &[Scope] = &[Scope::Prompt];
const SCREEN_AND_EVENT: &[Scope] = &[Scope::Screen, Scope::Event];
const EVERYWHERE: &[Scope] = &[
    Scope::Screen,
    Scope::Prompt,
    Scope::Help,
    Scope::Confirm,
    Scope::Event,
    Scope::Pass,
];

const OVERVIEW: &[Context] = &[Context::View(View::Overview)];
const USERS: &[Context] = &[Context::View(View::Users)];
const PAYMENTS: &[Context] = &[Context::View(View::Payments)];
const AGGREGATOR: &[Context] = &[Context::View(View::Aggregator)];
const EVENTS: &[Context] = &[Context::View(View::Events)];
/// The views that list rows.
const LISTS: &[Context] = &[
    Context::View(View::Users),
    Context::View(View::Payments),
    Context::View(View::Aggregator),
    Context::View(View::Rejected),
    Context::View(View::Events),
];
/// The lists the server pages.
const PAGED: &[Context] = &[
    Context::View(View::Users),
    Context::View(View::Payments),
    Context::View(View::Rejected),
    Context::View(View::Events),
];
const LOCAL_FILTERS: &[Context] = &[
    Context::View(View::Aggregator),
    Context::View(View::Rejected),
    Context::View(View::Events),
];
const USER_ROWS: &[Context] = &[Context::View(View::Payments), Context::View(View::Rejected)];
/// Every view and the user detail.
const SCREENS: &[Context] = &[
    Context::View(View::Overview),
    Context::View(View::Users),
    Context::View(View::Payments),
    Context::View(View::Aggregator),
    Context::View(View::Rejected),
    Context::View(View::Events),
    Context::Detail,
];
const SCREENS_AND_EVENT: &[Context] = &[
    Context::View(View::Overview),
    Context::View(View::Users),
    Context::View(View::Payments),
    Context::View(View::Aggregator),
    Context::View(View::Rejected),
    Context::View(View::Events),
    Context::Detail,
    Context::Event,
];
const QUIT_HINTED: &[Context] = &[
    Context::View(View::Overview),
    Context::View(View::Users),
    Context::View(View::Payments),
    Context::View(View::Aggregator),
    Context::View(View::Rejected),
    Context::View(View::Events),
    Context::Detail,
    Context::Help,
    Context::Event,
];
const PROMPTS: &[Context] = &[
    Context::Prompt(Prompt::Search),
    Context::Prompt(Prompt::User),
    Context::Prompt(Prompt::Filter),
];
const SEARCH_PROMPT: &[Context] = &[Context::Prompt(Prompt::Search)];
const USER_PROMPT: &[Context] = &[Context::Prompt(Prompt::User)];
const FILTER_PROMPT: &[Context] = &[Context::Prompt(Prompt::Filter)];
const HELP: &[Context] = &[Context::Help];
const CONFIRM: &[Context] = &[Context::Confirm];
const AGGREGATING: &[Context] = &[Context::Aggregating];
const PASS_ENDED: &[Context] = &[Context::PassEnded];
const EVENT: &[Context] = &[Context::Event];

fn char(ch: char) -> Key {
    Key::Code(KeyCode::Char(ch))
}

pub(super) fn table() -> Vec<Binding> {
    use Action::*;
    use Key::Code;
    let mut views = Binding::new(
        format!("1 … {}", View::ALL.len()),
        View::ALL.map(View::title).join(", "),
    );
    for (view, digit) in View::ALL.into_iter().zip('1'..='9') {
        views = views.on(SCREEN, &[char(digit)], ShowView(view));
    }
    vec![
        Binding::new("Tab, Shift-Tab", "next / previous view")
            .on(SCREEN, &[Code(KeyCode::Tab)], NextView)
            .on(SCREEN, &[Code(KeyCode::BackTab)], PrevView)
            .hint(OVERVIEW, "Tab", "views"),
        views.hint(OVERVIEW, "1-6", "views"),
        Binding::new("j/k, ↓/↑", "move the selection; scroll an open event")
            .on(SCREEN_AND_EVENT, &[char('j'), Code(KeyCode::Down)], Down)
            .on(SCREEN_AND_EVENT, &[char('k'), Code(KeyCode::Up)], Up)
            .hint(LISTS, "j/k", "move")
            .hint(EVENT, "j/k", "scroll"),
        Binding::new("PgDn/PgUp", "move 10 rows")
            .on(SCREEN_AND_EVENT, &[Code(KeyCode::PageDown)], PageDown)
            .on(SCREEN_AND_EVENT, &[Code(KeyCode::PageUp)], PageUp),
        Binding::new("g/G, Home/End", "first / last row of the page")
            .on(SCREEN_AND_EVENT, &[char('g'), Code(KeyCode::Home)], Top)
            .on(SCREEN_AND_EVENT, &[char('G'), Code(KeyCode::End)], Bottom),
        Binding::new("n/p, ]/[", "next / previous page from the server")
            .on(SCREEN, &[char('n'), char(']')], NextPage)
            .on(SCREEN, &[char('p'), char('[')], PrevPage)
            .hint(PAGED, "n/p", "page"),
        Binding::new("/", "filter the page; Users: search all; Payments: by sid")
            .on(SCREEN, &[char('/')], StartFilter)
            .hint(USERS, "/", "search")
            .hint(PAYMENTS, "/", "user filter")
            .hint(LOCAL_FILTERS, "/", "filter"),
        Binding::new(
            "text, Bksp",
            "at the / prompt: type, delete the last character",
        )
        .types(PROMPT)
        .on(PROMPT, &[Code(KeyCode::Backspace)], FilterBackspace)
        .hint(SEARCH_PROMPT, "", "search all users by sid, name or email")
        .hint(USER_PROMPT, "", "type a user sid")
        .hint(FILTER_PROMPT, "", "type to filter"),
        Binding::new(
            "/ sid Enter",
            "Users: if the search finds nobody, that sid opens",
        )
        .on(PROMPT, &[Code(KeyCode::Enter)], ApplyFilter)
        .hint(SEARCH_PROMPT, "Enter", "search")
        .hint(USER_PROMPT, "Enter", "apply")
        .hint(FILTER_PROMPT, "Enter", "keep"),
        Binding::new("s", "Users: sid, lowest/highest balance, most consumed")
            .on(SCREEN, &[char('s')], CycleSort)
            .hint(USERS, "s", "sort"),
        Binding::new("o", "Users: overdrawn users only / every user")
            .on(SCREEN, &[char('o')], ToggleOverdrawn)
            .hint(USERS, "o", "overdrawn"),
        Binding::new(
            "Enter",
            "open the user's detail; on Events, the event in full",
        )
        .on(SCREEN, &[Code(KeyCode::Enter)], Open)
        .on(&[Scope::Help], &[Code(KeyCode::Enter)], ToggleHelp)
        .on(&[Scope::Confirm], &[Code(KeyCode::Enter)], ConfirmAggregate)
        .on(&[Scope::Event, Scope::Pass], &[Code(KeyCode::Enter)], Back)
        .hint(USERS, "Enter", "detail")
        .hint(USER_ROWS, "Enter", "user")
        .hint(EVENTS, "Enter", "event")
        .hint(EVENT, "Enter", "close")
        .hint(PASS_ENDED, "Enter", "close"),
        Binding::new("Esc", "back, close, clear the filter or search")
            .on(
                &[
                    Scope::Screen,
                    Scope::Prompt,
                    Scope::Confirm,
                    Scope::Event,
                    Scope::Pass,
                ],
                &[Code(KeyCode::Esc)],
                Back,
            )
            .on(&[Scope::Help], &[Code(KeyCode::Esc)], ToggleHelp)
            .hint(PROMPTS, "Esc", "clear")
            .hint(HELP, "Esc", "close")
            .hint(AGGREGATING, "Esc", "hide")
            .hint(PASS_ENDED, "Esc", "close")
            .hint(EVENT, "Esc", "close")
            .hint(&[Context::Detail], "Esc", "back")
            .hint(PAYMENTS, "Esc", "clear"),
        Binding::new("r", "refresh now")
            .on(SCREEN_AND_EVENT, &[char('r')], Refresh)
            .hint(SCREENS_AND_EVENT, "r", "refresh"),
        Binding::new("a", "run an aggregation pass (asks first)")
            .on(SCREEN, &[char('a')], AskAggregate)
            .hint(SCREENS, "a", "aggregate"),
        Binding::new("y/Y, n", "when a asks: run the pass / cancel")
            .on(&[Scope::Confirm], &[char('y'), char('Y')], ConfirmAggregate)
            .on(&[Scope::Confirm], &[char('n')], Back)
            .hint(CONFIRM, "y/Enter", "run the pass")
            .hint(CONFIRM, "n/Esc", "cancel"),
        Binding::new("R, V", "reconcile with the repo / verify the ledger")
            .on(SCREEN, &[char('R')], RunCheck(CheckKind::Reconcile))
            .on(SCREEN, &[char('V')], RunCheck(CheckKind::Verify))
            .hint(AGGREGATOR, "R", "reconcile")
            .hint(AGGREGATOR, "V", "verify"),
        Binding::new("?", "this help")
            .on(&[Scope::Screen, Scope::Help], &[char('?')], ToggleHelp)
            .hint(SCREENS, "?", "help")
            .hint(HELP, "?", "close"),
        Binding::new("q, Ctrl-C", "quit")
            .on(
                &[Scope::Screen, Scope::Help, Scope::Event, Scope::Pass],
                &[char('q')],
                Quit,
            )
            .on(EVERYWHERE, &[Key::Ctrl('c')], Quit)
            .hint(QUIT_HINTED, "q", "quit"),
    ]
}
