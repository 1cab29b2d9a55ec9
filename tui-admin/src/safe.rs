//! Text from the server made safe for a terminal. User sids, names, payment
//! references, file paths, rejection details and error messages all come from
//! remote parties; a raw ESC, BEL, CR or NUL in them could retitle the terminal
//! or clear the screen, and a bidi override could make a line read backwards.
//!
//! [`visible`] is the one rule: every character of Unicode category Cc and
//! every bidi embedding, override and isolate (U+202A–U+202E, U+2066–U+2069) is
//! written as a Rust-style escape, ESC as `\u{1b}`. The dashboard applies it to
//! every answer as it enters the state ([`crate::app::RpcAnswer::scrubbed`], through
//! [`scrub`]); the command line applies it to every line it prints
//! ([`crate::cli`]); [`json`] keeps `--json` output valid JSON with the real
//! values; [`guard`] is the last line of defence on every drawn frame.

use std::borrow::Cow;

use ratatui::buffer::Buffer;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// True for a character a terminal would act on instead of showing.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as `\u{…}` (lowercase hex, the
/// way Rust escapes it); borrowed when there is nothing to change. A backslash
/// is left as it is, so applying this twice changes nothing more.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` with [`visible`] applied to every string in it (object keys too),
/// whatever its type: it goes through its JSON form, so a field added to an
/// API type later is covered without code here.
pub fn scrub<T: Serialize + DeserializeOwned>(value: T) -> T {
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    if !scrub_json(&mut json) {
        return value;
    }
    // Strings stay strings, so decoding back cannot fail for the API's types;
    // should it ever, `guard` still keeps the raw characters off the screen.
    serde_json::from_value(json).unwrap_or(value)
}

/// Makes every string in `value` visible; says whether anything changed.
fn scrub_json(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => match visible(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(clean) => {
                *s = clean;
                true
            }
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| scrub_json(v) | changed),
        Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| k.chars().any(is_unsafe)) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(visible(&k).into_owned(), v);
                }
                changed = true;
            }
            map.values_mut()
                .fold(changed, |changed, v| scrub_json(v) | changed)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// JSON text (as `serde_json` writes it) with the unsafe characters it leaves
/// raw (DEL, U+0080–U+009F and the bidi controls) written as `\uXXXX`: still
/// valid JSON that decodes to the very same values, but inert on a terminal.
/// They can only occur inside strings, where `\uXXXX` is a valid escape.
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        // `serde_json` already escapes U+0000–U+001F and never writes a raw
        // newline inside a string, so those left are layout.
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Removes unsafe characters from every cell of a drawn frame, so none reaches
/// the terminal even from text that bypassed [`scrub`] (ratatui already drops
/// Cc characters, but appends zero-width ones such as U+202E to a cell).
pub fn guard(buffer: &mut Buffer) {
    for cell in &mut buffer.content {
        if cell.symbol().chars().any(is_unsafe) {
            let clean: String = cell.symbol().chars().filter(|c| !is_unsafe(*c)).collect();
            cell.set_symbol(if clean.is_empty() { " " } else { &clean });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use billing_api::types::{Page, Payment};

    const HOSTILE: &str = "a\u{1b}]0;owned\u{7}b\rc\u{0}d\u{202e}e\u{2066}\u{9b}f\u{7f}\n\tg";

    #[test]
    fn every_unsafe_character_is_written_visibly() {
        assert_eq!(
            visible(HOSTILE),
            "a\\u{1b}]0;owned\\u{7}b\\u{d}c\\u{0}d\\u{202e}e\\u{2066}\\u{9b}f\\u{7f}\\u{a}\\u{9}g"
        );
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2067}', '\u{2069}',
        ] {
            assert!(is_unsafe(c), "{:?}", c);
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "Zoë 山田 — nodes/node-a/usage_2026-11-27-08.otoml \\ 💶 \u{200d}";
        assert!(matches!(visible(text), Cow::Borrowed(t) if t == text));
        assert_eq!(visible(&visible(HOSTILE)), visible(HOSTILE), "idempotent");
    }

    #[test]
    fn scrub_reaches_every_string_of_a_value() {
        let page = Page {
            items: vec![Payment {
                payment_id: format!("p{HOSTILE}"),
                user_sid: "u-0001".into(),
                amount_cents: 5,
                kind: "\u{1b}[2J".into(),
                reference: Some(HOSTILE.into()),
                created_at: "2026-11-27T09:30:00.000Z".into(),
            }],
            next_cursor: Some("\u{7}".into()),
        };
        let clean = scrub(page);
        let p = &clean.items[0];
        for s in [&p.payment_id, &p.kind, p.reference.as_ref().unwrap()] {
            assert!(!s.chars().any(is_unsafe), "{s:?}");
        }
        assert_eq!(p.kind, "\\u{1b}[2J");
        assert_eq!(p.user_sid, "u-0001");
        assert_eq!(p.amount_cents, 5);
        assert_eq!(clean.next_cursor.as_deref(), Some("\\u{7}"));
    }

    #[test]
    fn json_stays_valid_with_the_real_values_and_no_raw_controls() {
        let value = serde_json::json!({ HOSTILE: [HOSTILE, 1, null] });
        for text in [
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let safe = json(&text);
            assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe:?}");
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn guard_clears_unsafe_characters_from_cells() {
        let area = ratatui::layout::Rect::new(0, 0, 4, 1);
        let mut buffer = Buffer::empty(area);
        buffer[(0, 0)].set_symbol("a\u{202e}");
        buffer[(1, 0)].set_symbol("\u{1b}");
        buffer[(2, 0)].set_symbol("é");
        guard(&mut buffer);
        let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
        assert_eq!(symbols, ["a", " ", "é", " "]);
    }
}
