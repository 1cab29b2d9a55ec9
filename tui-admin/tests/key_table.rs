//! The key table ([`tui_admin::keys`]) against the key handler and the help
//! popup: every key it lists does what it says where it says, the handler
//! answers no key it does not list, and the help shows every binding with
//! each of its keys named.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tui_admin::app::{Action, App, View};
use tui_admin::event::key_action;
use tui_admin::keys::{self, Context, Key, Prompt};

/// Every context a key can be pressed in.
fn contexts() -> Vec<Context> {
    let mut all: Vec<Context> = View::ALL.into_iter().map(Context::View).collect();
    all.extend([
        Context::Detail,
        Context::Prompt(Prompt::Search),
        Context::Prompt(Prompt::User),
        Context::Prompt(Prompt::Filter),
        Context::Help,
        Context::Confirm,
        Context::Aggregating,
        Context::PassEnded,
        Context::Event,
    ]);
    all
}

/// A dashboard with realistic data, in `context`.
fn app_in(context: Context) -> App {
    let (view, steps): (View, &[Action]) = match context {
        Context::View(view) => (view, &[]),
        Context::Detail => (View::Users, &[Action::Open]),
        Context::Prompt(Prompt::Search) => (View::Users, &[Action::StartFilter]),
        Context::Prompt(Prompt::User) => (View::Payments, &[Action::StartFilter]),
        Context::Prompt(Prompt::Filter) => (View::Rejected, &[Action::StartFilter]),
        Context::Help => (View::Users, &[Action::ToggleHelp]),
        Context::Confirm => (View::Overview, &[Action::AskAggregate]),
        Context::Aggregating | Context::PassEnded => (
            View::Overview,
            &[Action::AskAggregate, Action::ConfirmAggregate],
        ),
        Context::Event => (View::Events, &[Action::Open]),
    };
    let mut app = loaded(view);
    for step in steps {
        let calls = app.update(step.clone());
        if context != Context::Aggregating {
            answer(&mut app, calls);
        }
    }
    assert_eq!(keys::context(&app), context);
    app
}

/// A press of `key` as a terminal sends it.
fn press_of(key: Key) -> KeyEvent {
    match key {
        Key::Code(KeyCode::BackTab) => KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        Key::Code(code @ KeyCode::Char(ch)) if ch.is_ascii_uppercase() => {
            KeyEvent::new(code, KeyModifiers::SHIFT)
        }
        Key::Code(code) => KeyEvent::new(code, KeyModifiers::NONE),
        Key::Ctrl(ch) => KeyEvent::new(KeyCode::Char(ch), KeyModifiers::CONTROL),
        Key::Text => KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE),
    }
}

/// What the table says `key` does in `context`, and how many of its entries
/// match the key there.
fn listed(context: Context, key: &KeyEvent) -> (Option<Action>, usize) {
    let uses: Vec<_> = keys::bindings()
        .iter()
        .flat_map(|b| &b.keys)
        .filter(|u| u.scopes.contains(&context.scope()) && u.key.matches(key))
        .collect();
    (uses.first().and_then(|u| u.does.action(key)), uses.len())
}

/// Every key press worth trying: each printable character and each special
/// key, alone and with Shift, Ctrl and Alt.
fn every_press() -> Vec<KeyEvent> {
    let mut codes: Vec<KeyCode> = (' '..='~').map(KeyCode::Char).collect();
    codes.extend([
        KeyCode::Backspace,
        KeyCode::Enter,
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Tab,
        KeyCode::BackTab,
        KeyCode::Delete,
        KeyCode::Insert,
        KeyCode::Esc,
        KeyCode::Char('é'),
    ]);
    codes.extend((1..=12).map(KeyCode::F));
    let modifiers = [
        KeyModifiers::NONE,
        KeyModifiers::SHIFT,
        KeyModifiers::CONTROL,
        KeyModifiers::ALT,
    ];
    codes
        .into_iter()
        .flat_map(|code| modifiers.map(|m| KeyEvent::new(code, m)))
        .collect()
}

#[test]
fn every_binding_does_its_action_by_each_of_its_keys_where_it_applies() {
    let mut checked = 0;
    for context in contexts() {
        let app = app_in(context);
        for binding in keys::bindings() {
            for key_use in binding.keys.iter() {
                if !key_use.scopes.contains(&context.scope()) {
                    continue;
                }
                let press = press_of(key_use.key);
                assert_eq!(
                    key_action(&app, press),
                    key_use.does.action(&press),
                    "{} ({:?}) in {context:?}",
                    binding.label,
                    key_use.key
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn every_binding_is_used_somewhere() {
    for binding in keys::bindings() {
        assert!(!binding.keys.is_empty(), "{} binds no key", binding.label);
        for key_use in &binding.keys {
            assert!(
                contexts()
                    .iter()
                    .any(|c| key_use.scopes.contains(&c.scope())),
                "{} ({:?}) acts nowhere",
                binding.label,
                key_use.key
            );
        }
    }
}

/// A key the handler acts on but the table does not list, anywhere, fails
/// here (and two entries of the table for one key in one place too).
#[test]
fn the_handler_acts_on_no_key_the_table_does_not_list() {
    let presses = every_press();
    for context in contexts() {
        let app = app_in(context);
        for press in &presses {
            let (action, entries) = listed(context, press);
            assert!(entries <= 1, "{press:?} is bound twice in {context:?}");
            assert_eq!(key_action(&app, *press), action, "{press:?} in {context:?}");
            let mut release = *press;
            release.kind = KeyEventKind::Release;
            assert_eq!(key_action(&app, release), None, "a release does nothing");
        }
    }
}

/// The keys a help label names: "n/p, ]/[" names n, p, ] and [.
fn named_keys(label: &str) -> Vec<&str> {
    label
        .split([',', ' '])
        .filter(|token| !token.is_empty())
        .flat_map(|token| match token {
            "/" => vec![token],
            _ => token.split('/').collect(),
        })
        .collect()
}

#[test]
fn the_help_lists_every_binding_and_names_each_of_its_keys() {
    let mut app = loaded(View::Users);
    app.update(Action::ToggleHelp);
    let screen = render(&app, 120, 40).backend().to_string();
    for binding in keys::bindings() {
        let line = format!("{:>15}  {}", binding.label, binding.help);
        assert!(
            screen.contains(&line),
            "{line:?} not in the help:\n{screen}"
        );
        for key_use in &binding.keys {
            let name = key_use.key.name();
            let named = match key_use.key {
                // The number keys are a range: "1 … 6".
                Key::Code(KeyCode::Char(d @ '1'..='9')) => {
                    binding.label == format!("1 … {}", View::ALL.len())
                        && d.to_digit(10).unwrap() as usize <= View::ALL.len()
                }
                _ => named_keys(&binding.label).contains(&name.as_str()),
            };
            assert!(named, "{:?} is not named in {:?}", name, binding.label);
        }
    }
}
