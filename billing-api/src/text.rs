//! Which characters client text may carry, and how a message quotes client
//! input back without letting it act on the terminal that shows it.
//!
//! Refused everywhere a client names or describes something (sids, payment
//! ids, names, emails, payment kinds and references):
//! * control characters (Unicode category Cc: NUL, BEL, ESC, CR, DEL, the C1
//!   range with CSI U+009B, …), which drive terminals and hide in logs;
//! * the bidirectional-formatting characters (Unicode property Bidi_Control:
//!   U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which reorder
//!   the text shown around them ("Trojan Source").

use std::fmt::Write as _;

/// Longest piece of client input an error message quotes, in bytes.
pub const MAX_ECHO_BYTES: usize = 200;

/// True for a character client text must not carry (see the module docs).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The Unicode Bidi_Control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The first unsafe character of `s` and its byte offset.
pub fn find_unsafe(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|&(_, c)| is_unsafe_char(c))
}

/// Checks that `value` (the field `field`) carries no unsafe character; the
/// error names the field, the code point and where it is.
pub fn check_chars(field: &str, value: &str) -> Result<(), String> {
    let Some((at, c)) = find_unsafe(value) else {
        return Ok(());
    };
    let kind = if c.is_control() {
        "a control character"
    } else {
        "a bidirectional-text control"
    };
    Err(format!(
        "{field} contains {kind}, U+{:04X}, at byte {at} (`{}`); control characters and \
         bidirectional-text controls (U+202A–U+202E, U+2066–U+2069, …) are not accepted: \
         remove it and send the request again",
        u32::from(c),
        echo(value)
    ))
}

/// `input` as a message may quote it: unsafe characters written visibly as
/// `\u{1B}`, and cut to [`MAX_ECHO_BYTES`] (at a character boundary) with
/// the full length noted.
pub fn echo(input: &str) -> String {
    let mut end = input.len().min(MAX_ECHO_BYTES);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 16);
    for c in input[..end].chars() {
        if is_unsafe_char(c) {
            let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    if end < input.len() {
        let _ = write!(out, "… ({} bytes in all)", input.len());
    }
    out
}

/// An error and its causes on one line (`error: cause: cause`), leaving out a
/// cause whose text the line already holds (many errors repeat their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        let inner = std::io::Error::other("connection refused");
        let outer = std::io::Error::other(Wrap("connect failed", inner));
        assert_eq!(error_chain(&outer), "connect failed: connection refused");
        let repeating = Wrap(
            "connect failed: connection refused",
            std::io::Error::other("connection refused"),
        );
        assert_eq!(
            error_chain(&repeating),
            "connect failed: connection refused"
        );
    }

    #[derive(Debug)]
    struct Wrap(&'static str, std::io::Error);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    use super::*;

    #[test]
    fn refuses_controls_and_bidi_overrides_only() {
        for bad in [
            '\0', '\x07', '\x1b', '\r', '\n', '\x7f', '\u{9b}', '\u{202E}', '\u{2066}',
        ] {
            assert!(is_unsafe_char(bad), "U+{:04X}", u32::from(bad));
        }
        for good in ['a', ' ', 'é', '漢', '\u{1F600}', '-', '@'] {
            assert!(!is_unsafe_char(good), "{good}");
        }
        let err = check_chars("user_sid", "ab\u{202E}cd").unwrap_err();
        assert!(err.starts_with("user_sid contains"), "{err}");
        assert!(err.contains("U+202E") && err.contains("at byte 2"), "{err}");
        assert!(err.contains(r"ab\u{202E}cd"), "{err}");
        assert!(!err.contains('\u{202E}'), "{err}");
        assert!(check_chars("email", "ada@example.org").is_ok());
    }

    #[test]
    fn echo_escapes_and_cuts_at_a_char_boundary() {
        assert_eq!(echo("a\x1b[31mb"), r"a\u{1B}[31mb");
        let long = "é".repeat(150); // 300 bytes
        let quoted = echo(&long);
        assert!(quoted.starts_with(&"é".repeat(100)), "{quoted}");
        assert!(quoted.ends_with("… (300 bytes in all)"), "{quoted}");
        assert_eq!(echo("plain"), "plain");
    }
}
