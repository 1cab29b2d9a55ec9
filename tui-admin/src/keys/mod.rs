//! Every key binding of the dashboard, in one table: which keys, what they
//! do and where, the line the `?` help shows for them and the hints the
//! footer gives. The key handler ([`key_action`]), the footer ([`footer`]) and
//! the help popup ([`crate::views::help`]) all read [`bindings`], so a key
//! cannot be handled without being listed, nor listed without being handled.
//! The table itself is in `table.rs`.

use std::sync::LazyLock;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::{Action, App, Popup, View};

mod table;

/// Where a key is pressed. Keys act by [`Scope`]; the footer's hints are
/// finer and differ by view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A view with nothing over it.
    View(View),
    /// The user detail screen over a view.
    Detail,
    /// The `/` prompt, with what Enter does there.
    Prompt(Prompt),
    /// The `?` popup.
    Help,
    /// `a` asking whether to run a pass.
    Confirm,
    /// The pass running.
    Aggregating,
    /// The pass's summary, or why it failed.
    PassEnded,
    /// One event in full.
    Event,
}

/// What the `/` prompt does on Enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Users: the server searches all users.
    Search,
    /// Payments: the server lists one user's payments.
    User,
    /// Elsewhere: the page on screen is filtered as you type.
    Filter,
}

/// Where a key binding acts. Keys do the same on every view and under the
/// user detail (the views ignore what does not apply to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A view or the user detail, no popup, no prompt.
    Screen,
    Prompt,
    Help,
    Confirm,
    Event,
    /// The pass running or ended (its summary or failure).
    Pass,
}

impl Context {
    pub fn scope(self) -> Scope {
        match self {
            Context::View(_) | Context::Detail => Scope::Screen,
            Context::Prompt(_) => Scope::Prompt,
            Context::Help => Scope::Help,
            Context::Confirm => Scope::Confirm,
            Context::Aggregating | Context::PassEnded => Scope::Pass,
            Context::Event => Scope::Event,
        }
    }
}

/// The context of the next key press: the prompt if it is open, else the
/// popup, else the detail, else the view.
pub fn context(app: &App) -> Context {
    if app.filter_input.is_some() {
        return Context::Prompt(match app.view {
            View::Users => Prompt::Search,
            View::Payments => Prompt::User,
            _ => Prompt::Filter,
        });
    }
    match &app.popup {
        Some(Popup::Help) => Context::Help,
        Some(Popup::ConfirmAggregate) => Context::Confirm,
        Some(Popup::Aggregating) => Context::Aggregating,
        Some(Popup::Summary(_) | Popup::AggregateFailed(_)) => Context::PassEnded,
        Some(Popup::Event(_)) => Context::Event,
        None if app.detail.is_some() => Context::Detail,
        None => Context::View(app.view),
    }
}

/// A key as the table binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// This key code, whatever the modifiers (Shift-Tab arrives as `BackTab`).
    Code(KeyCode),
    /// This letter with Ctrl.
    Ctrl(char),
    /// Any character typed without Ctrl.
    Text,
}

impl Key {
    pub fn matches(self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Code(code) => key.code == code,
            Key::Ctrl(ch) => ctrl && key.code == KeyCode::Char(ch),
            Key::Text => !ctrl && matches!(key.code, KeyCode::Char(_)),
        }
    }

    /// The key's name as the help writes it.
    pub fn name(self) -> String {
        match self {
            Key::Code(KeyCode::Char(ch)) => ch.to_string(),
            Key::Code(KeyCode::Tab) => "Tab".into(),
            Key::Code(KeyCode::BackTab) => "Shift-Tab".into(),
            Key::Code(KeyCode::Down) => "↓".into(),
            Key::Code(KeyCode::Up) => "↑".into(),
            Key::Code(KeyCode::PageDown) => "PgDn".into(),
            Key::Code(KeyCode::PageUp) => "PgUp".into(),
            Key::Code(KeyCode::Home) => "Home".into(),
            Key::Code(KeyCode::End) => "End".into(),
            Key::Code(KeyCode::Enter) => "Enter".into(),
            Key::Code(KeyCode::Esc) => "Esc".into(),
            Key::Code(KeyCode::Backspace) => "Bksp".into(),
            Key::Code(code) => format!("{code:?}"),
            Key::Ctrl(ch) => format!("Ctrl-{}", ch.to_ascii_uppercase()),
            Key::Text => "text".into(),
        }
    }
}

/// What a key does.
// Built once, a few dozen of them: the size of `Action` does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Does {
    Act(Action),
    /// The character typed goes into the prompt ([`Action::FilterChar`]).
    TypeChar,
}

impl Does {
    /// The action of this press of `key`.
    pub fn action(&self, key: &KeyEvent) -> Option<Action> {
        match (self, key.code) {
            (Does::Act(action), _) => Some(action.clone()),
            (Does::TypeChar, KeyCode::Char(ch)) => Some(Action::FilterChar(ch)),
            (Does::TypeChar, _) => None,
        }
    }
}

/// One key, where it acts and what it does there.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyUse {
    pub key: Key,
    pub scopes: &'static [Scope],
    pub does: Does,
}

/// A footer hint: `keys word`, shown in these contexts. Hints next to each
/// other with the same word share it (`Enter/Esc close`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub contexts: &'static [Context],
    /// Empty for a hint that is not about a key (what the prompt takes).
    pub keys: &'static str,
    pub word: &'static str,
}

/// One line of the help: its keys, what they do, and the footer's hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The keys as the help lists them.
    pub label: String,
    /// What they do, as the help says it.
    pub help: String,
    pub keys: Vec<KeyUse>,
    pub hints: Vec<Hint>,
}

static BINDINGS: LazyLock<Vec<Binding>> = LazyLock::new(table::table);

/// Every binding, in the order the help lists them and the footer hints.
pub fn bindings() -> &'static [Binding] {
    &BINDINGS
}

/// The action a key press means in the current state, if any.
pub fn key_action(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let scope = context(app).scope();
    bindings()
        .iter()
        .flat_map(|b| &b.keys)
        .find(|u| u.scopes.contains(&scope) && u.key.matches(&key))
        .and_then(|u| u.does.action(&key))
}

/// Keys that work in `context`, for the footer.
pub fn footer(context: Context) -> String {
    let mut hints: Vec<(String, &str)> = Vec::new();
    let table = bindings().iter().flat_map(|b| &b.hints);
    for hint in table.filter(|h| h.contexts.contains(&context)) {
        match hints.last_mut() {
            Some((keys, word)) if *word == hint.word && !keys.is_empty() => {
                keys.push('/');
                keys.push_str(hint.keys);
            }
            _ => hints.push((hint.keys.to_string(), hint.word)),
        }
    }
    let lead = (context == Context::Aggregating).then(|| "running…".to_string());
    let hints = hints.into_iter().map(|(keys, word)| match keys.as_str() {
        "" => word.to_string(),
        _ => format!("{keys} {word}"),
    });
    lead.into_iter()
        .chain(hints)
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footer as it was written out by hand before the table: the table
    /// gives the same text in every context.
    #[test]
    fn the_footer_of_every_context() {
        let all = "r refresh · a aggregate · ? help · q quit";
        let cases = [
            (
                Context::View(View::Overview),
                format!("Tab/1-6 views · {all}"),
            ),
            (
                Context::View(View::Users),
                format!(
                    "j/k move · n/p page · / search · s sort · o overdrawn · Enter detail · {all}"
                ),
            ),
            (
                Context::View(View::Payments),
                format!("j/k move · n/p page · / user filter · Enter user · Esc clear · {all}"),
            ),
            (
                Context::View(View::Aggregator),
                "j/k move · / filter · r refresh · a aggregate · R reconcile · V verify · ? help · q quit"
                    .to_string(),
            ),
            (
                Context::View(View::Rejected),
                format!("j/k move · n/p page · / filter · Enter user · {all}"),
            ),
            (
                Context::View(View::Events),
                format!("j/k move · n/p page · / filter · Enter event · {all}"),
            ),
            (Context::Detail, format!("Esc back · {all}")),
            (
                Context::Prompt(Prompt::Search),
                "search all users by sid, name or email · Enter search · Esc clear".into(),
            ),
            (
                Context::Prompt(Prompt::User),
                "type a user sid · Enter apply · Esc clear".into(),
            ),
            (
                Context::Prompt(Prompt::Filter),
                "type to filter · Enter keep · Esc clear".into(),
            ),
            (Context::Help, "Esc/? close · q quit".into()),
            (Context::Confirm, "y/Enter run the pass · n/Esc cancel".into()),
            (Context::Aggregating, "running… · Esc hide".into()),
            (Context::PassEnded, "Enter/Esc close".into()),
            (
                Context::Event,
                "j/k scroll · Enter/Esc close · r refresh · q quit".into(),
            ),
        ];
        for (context, text) in cases {
            assert_eq!(footer(context), text, "{context:?}");
        }
    }

    #[test]
    fn the_number_keys_follow_the_tab_order() {
        let views = bindings()
            .iter()
            .find(|b| b.label.starts_with("1 "))
            .expect("the views' row");
        let shown: Vec<(Key, Action)> = views
            .keys
            .iter()
            .map(|u| {
                (
                    u.key,
                    u.does.action(&KeyEvent::from(KeyCode::Null)).unwrap(),
                )
            })
            .collect();
        let expected: Vec<(Key, Action)> = View::ALL
            .into_iter()
            .zip('1'..)
            .map(|(view, digit)| (Key::Code(KeyCode::Char(digit)), Action::ShowView(view)))
            .collect();
        assert_eq!(shown, expected);
        assert_eq!(views.label, "1 … 6");
        assert_eq!(
            views.help,
            "Overview, Users, Payments, Aggregator, Rejected, Events"
        );
    }
}
