//! The names the aggregator reads: node directories and usage files named
//! after a real hour (`nodes/<node>/usage_<YYYY-MM-DD-HH>.otoml`).

use super::MAX_NODE_NAME_BYTES;

/// True when `name` is an acceptable node directory name: `[A-Za-z0-9._-]{1,128}`,
/// and not `.` or `..`.
pub fn is_valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_NAME_BYTES
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True when `file_name` is `usage_<YYYY-MM-DD-HH>.otoml`.
pub fn is_usage_file_name(file_name: &str) -> bool {
    let Some(stamp) = file_name
        .strip_prefix("usage_")
        .and_then(|rest| rest.strip_suffix(".otoml"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 13
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 10 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Checks the hour stamp of a usage file name (`usage_<YYYY-MM-DD-HH>.otoml`,
/// see [`is_usage_file_name`]): a real calendar date from 1970 on and an hour 00..=23.
pub fn check_usage_hour(file_name: &str) -> Result<(), String> {
    let stamp = usage_hour_stamp(file_name)
        .ok_or_else(|| format!("{file_name} is not named usage_<YYYY-MM-DD-HH>.otoml"))?;
    let part = |range: std::ops::Range<usize>| stamp[range].parse::<u16>().unwrap_or(u16::MAX);
    let (year, month, day, hour) = (part(0..4), part(5..7), part(8..10), part(11..13));
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(|| format!("{file_name}: month {month:02} does not exist"))?;
    let day = u8::try_from(day).unwrap_or(u8::MAX);
    time::Date::from_calendar_date(i32::from(year), month, day)
        .map_err(|_| format!("{file_name}: day {day:02} does not exist in {month} {year}"))?;
    if hour > 23 {
        return Err(format!(
            "{file_name}: hour {hour:02} does not exist (00..=23)"
        ));
    }
    // Usage times are unix times: an hour before the epoch has none.
    if year < 1970 {
        return Err(format!(
            "{file_name}: year {year:04} is before 1970; usage hours are UTC hours from 1970 on"
        ));
    }
    Ok(())
}

/// The start of the hour a usage file covers, in unix milliseconds, or `None`
/// when `file_name` is not a real hour (see [`check_usage_hour`]).
pub fn usage_hour_start_ms(file_name: &str) -> Option<u64> {
    check_usage_hour(file_name).ok()?;
    let stamp = usage_hour_stamp(file_name)?;
    let part = |range: std::ops::Range<usize>| stamp[range].parse::<u8>().ok();
    let year: i32 = stamp[0..4].parse().ok()?;
    let month = time::Month::try_from(part(5..7)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, part(8..10)?).ok()?;
    let start = date.with_hms(part(11..13)?, 0, 0).ok()?.assume_utc();
    u64::try_from(start.unix_timestamp()).ok().map(|s| s * 1000)
}

/// The `YYYY-MM-DD-HH` stamp of a usage file name, unchecked.
pub fn usage_hour_stamp(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix("usage_")
        .and_then(|rest| rest.strip_suffix(".otoml"))
        .filter(|_| is_usage_file_name(file_name))
}

/// Splits `nodes/<node>/usage_<stamp>.otoml` into `(node, file name)`, or `None`
/// for any other path (those are ignored by the aggregator).
pub fn parse_usage_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("nodes/")?;
    let (node, file) = rest.split_once('/')?;
    (is_valid_node_name(node) && is_usage_file_name(file)).then_some((node, file))
}

/// The repo path of a node's usage file for an hour stamp `YYYY-MM-DD-HH`.
pub fn usage_path(node: &str, hour_stamp: &str) -> String {
    format!("nodes/{node}/usage_{hour_stamp}.otoml")
}
