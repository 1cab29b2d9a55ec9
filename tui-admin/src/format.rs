//! Small text formatters shared by the views and the CLI.

use billing_api::types::rfc3339_to_millis;

/// Integer cents as `-1,234.56`.
pub fn cents(value: impl Into<i128>) -> String {
    let value: i128 = value.into();
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

/// A count with thousands separators.
pub fn count(value: u64) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + text.len() / 3);
    for (i, ch) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// How long ago an RFC 3339 timestamp was, relative to `now_millis`: `42s ago`, `3m ago`.
pub fn age(now_millis: u64, timestamp: &str) -> String {
    let Some(then) = rfc3339_to_millis(timestamp) else {
        return timestamp.to_string();
    };
    if then > now_millis {
        return "just now".to_string();
    }
    short_duration(now_millis - then) + " ago"
}

/// Milliseconds as a compact duration: `850ms`, `12s`, `4m`, `3h`, `2d`.
pub fn short_duration(millis: u64) -> String {
    let secs = millis / 1000;
    if millis < 1000 {
        format!("{millis}ms")
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86_400)
    }
}

/// Duration between two RFC 3339 timestamps, if both parse.
pub fn between(start: &str, end: &str) -> Option<String> {
    let start = rfc3339_to_millis(start)?;
    let end = rfc3339_to_millis(end)?;
    Some(short_duration(end.saturating_sub(start)))
}

/// The file name of a repo path: in tables the node has its own column, and
/// the hour stamp at the end of the name is what tells files apart.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The first 7 characters of a commit id.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A timestamp trimmed to `YYYY-MM-DD HH:MM:SS` for tables.
pub fn timestamp(text: &str) -> String {
    let trimmed = text.get(..19).unwrap_or(text);
    trimmed.replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_is_the_last_path_component() {
        assert_eq!(
            file_name("nodes/node-a/usage_2026-11-27-10.otoml"),
            "usage_2026-11-27-10.otoml"
        );
        assert_eq!(file_name("plain"), "plain");
    }

    #[test]
    fn cents_groups_thousands_and_keeps_sign() {
        assert_eq!(cents(0), "0.00");
        assert_eq!(cents(5), "0.05");
        assert_eq!(cents(-123_456_789), "-1,234,567.89");
        assert_eq!(cents(100_000), "1,000.00");
    }

    #[test]
    fn age_is_relative_to_now() {
        let now = rfc3339_to_millis("2026-11-27T10:00:00Z").unwrap();
        assert_eq!(age(now, "2026-11-27T09:57:00Z"), "3m ago");
        assert_eq!(age(now, "2026-11-27T10:00:05Z"), "just now");
        assert_eq!(age(now, "garbage"), "garbage");
    }

    #[test]
    fn short_sha_handles_short_input() {
        assert_eq!(short_sha("abcdef0123456"), "abcdef0");
        assert_eq!(short_sha("abc"), "abc");
    }
}
