//! `list_users` in an order and through a filter, the same on both backends.
//!
//! A page is a keyset page: it lists the users after the cursor's position
//! `(key, user_sid)` in the order's index (the users table itself for `sid`;
//! `user_index.rs` on redb; B-tree indexes on PostgreSQL). So a page costs the
//! same wherever it starts, and writes between pages neither repeat nor skip a
//! user whose key did not change. What the order's index can skip to is a
//! range scan: `sid_prefix` with `sid`, `below_cents` and `overdrawn` with the
//! balance orders (ending where the range ends). The rest of a filter (`text`,
//! and conditions the order cannot skip to) is checked on each user read, at
//! most [`USER_SCAN`] per page: such a page may end short, even empty, with a
//! `next_cursor` to read on from.
//!
//! A user whose balance changes moves in the balance orders, maybe from
//! before the cursor (listed already) to after it. So a walk by balance keeps
//! the ledger's balance version of its first page in its cursor and passes
//! over users whose balance changed since (`user_index.rs`): no user is listed
//! twice in a walk, and only users whose key changed can be missed. Total
//! consumed only grows, which moves a user towards the start of
//! `consumed_desc`, behind the cursor: that walk needs no version.
//!
//! Cursors: by `sid`, the last sid read, as before there were orders (a
//! caller may start a walk at any sid). Otherwise base64url of a small JSON
//! naming the order (`cursor.rs`), so a cursor of one order given to another
//! is refused with invalid params.

mod cursor;
mod page;
mod redb;

use billing_api::otoml::MAX_SID_BYTES;
use billing_api::text::echo;
use billing_api::{UserBilling, UserFilter, UserSort};

pub(crate) use page::PageBuilder;

use super::{MAX_TEXT_BYTES, StoreError};

/// Users read at most per page while looking for those that match a filter
/// the order's index cannot skip to.
pub const USER_SCAN: usize = 10_000;

/// A user's place in an order: the order's key (0 for `sid`) and its sid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub key: i64,
    pub sid: String,
}

/// Where an order's index is read: the part the filter allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// Every user.
    All,
    /// By `sid`: sids from `from` (inclusive) to `to` (exclusive, `None`: to the end).
    Sids { from: String, to: Option<String> },
    /// By balance: balances from `lo` to `hi`, both inclusive.
    Balances { lo: i64, hi: i64 },
    /// No user can match.
    Empty,
}

/// A checked `list_users` request: its order, filter and cursor.
#[derive(Debug, Clone)]
pub struct UserQuery {
    sort: UserSort,
    filter: UserFilter,
    /// `filter.text` in lower case.
    text: Option<String>,
    after: Option<Position>,
    /// The balance version of the walk's first page (balance orders, from the cursor).
    version: Option<u64>,
    range: KeyRange,
}

impl UserQuery {
    /// Checks the filter and the cursor against the order.
    pub fn new(
        sort: UserSort,
        filter: UserFilter,
        cursor: Option<&str>,
    ) -> Result<UserQuery, StoreError> {
        let filter = normalized(filter)?;
        let (after, version) = match cursor {
            Some(c) => {
                let (position, version) = cursor::decode(sort, c)?;
                (Some(position), version)
            }
            None => (None, None),
        };
        let range = key_range(sort, &filter);
        Ok(UserQuery {
            sort,
            text: filter.text.as_deref().map(str::to_lowercase),
            filter,
            after,
            version,
            range,
        })
    }

    /// Every user in sid order, from `cursor` (the last sid of the page before).
    pub fn by_sid(cursor: Option<&str>) -> Result<UserQuery, StoreError> {
        Self::new(UserSort::Sid, UserFilter::default(), cursor)
    }

    pub fn sort(&self) -> UserSort {
        self.sort
    }

    /// Whether this is every user by sid: the plain listing.
    pub fn is_plain(&self) -> bool {
        self.sort == UserSort::Sid && self.filter == UserFilter::default()
    }

    /// Where the walk is: the position the page starts after.
    pub(crate) fn after(&self) -> Option<&Position> {
        self.after.as_ref()
    }

    /// The part of the order's index that can hold matching users.
    pub(crate) fn range(&self) -> &KeyRange {
        &self.range
    }

    /// Whether the walk passes over users whose balance changed after it began.
    pub(crate) fn uses_version(&self) -> bool {
        matches!(self.sort, UserSort::BalanceAsc | UserSort::BalanceDesc)
    }

    /// The balance version of the walk's first page, once there was one.
    pub(crate) fn version(&self) -> Option<u64> {
        self.version
    }

    /// Whether users in the range may still fail the filter (so a page reads
    /// on past non-matching users, up to [`USER_SCAN`]).
    pub(crate) fn residual(&self) -> bool {
        let balance_order = self.uses_version();
        self.text.is_some()
            || (self.filter.sid_prefix.is_some() && self.sort != UserSort::Sid)
            || ((self.filter.below_cents.is_some() || self.filter.overdrawn.is_some())
                && !balance_order)
    }

    /// Whether `user` meets every condition of the filter.
    pub(crate) fn matches(&self, user: &UserBilling) -> bool {
        let f = &self.filter;
        let balance = user.credit_balance_cents;
        f.sid_prefix
            .as_deref()
            .is_none_or(|p| user.user_sid.starts_with(p))
            && f.below_cents.is_none_or(|below| balance < below)
            && f.overdrawn.is_none_or(|o| (balance < 0) == o)
            && self.text.as_deref().is_none_or(|needle| {
                contains_folded(&user.user_sid, needle)
                    || user
                        .display_name
                        .as_deref()
                        .is_some_and(|n| contains_folded(n, needle))
                    || user
                        .email
                        .as_deref()
                        .is_some_and(|e| contains_folded(e, needle))
            })
    }

    /// `user`'s key in this order (0 for `sid`).
    pub(crate) fn key_of(&self, user: &UserBilling) -> i64 {
        match self.sort {
            UserSort::Sid => 0,
            UserSort::BalanceAsc | UserSort::BalanceDesc => user.credit_balance_cents,
            UserSort::ConsumedDesc => user.total_consumed_cents,
        }
    }

    /// `user`'s place in this order.
    pub(crate) fn position_of(&self, user: &UserBilling) -> Position {
        Position {
            key: self.key_of(user),
            sid: user.user_sid.clone(),
        }
    }
}

/// Whether `haystack` holds `needle` (already in lower case), ignoring case.
fn contains_folded(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

/// The filter with empty texts dropped (they match everyone), checked.
fn normalized(mut filter: UserFilter) -> Result<UserFilter, StoreError> {
    filter.sid_prefix = filter.sid_prefix.filter(|p| !p.is_empty());
    filter.text = filter.text.filter(|t| !t.is_empty());
    for (name, value, max, hint) in [
        (
            "filter.sid_prefix",
            filter.sid_prefix.as_deref(),
            MAX_SID_BYTES,
            "a user_sid is at most that long",
        ),
        (
            "filter.text",
            filter.text.as_deref(),
            MAX_TEXT_BYTES,
            "search for a shorter part of a user_sid, name or email",
        ),
    ] {
        let Some(value) = value else { continue };
        if value.len() > max {
            return Err(StoreError::InvalidInput(format!(
                "{name} is {} bytes (`{}`), over the limit of {max} bytes; {hint}",
                value.len(),
                echo(value)
            )));
        }
        billing_api::text::check_chars(name, value).map_err(StoreError::InvalidInput)?;
    }
    Ok(filter)
}

/// The part of `sort`'s index that `filter` allows.
fn key_range(sort: UserSort, filter: &UserFilter) -> KeyRange {
    match sort {
        UserSort::Sid => match &filter.sid_prefix {
            Some(prefix) => KeyRange::Sids {
                from: prefix.clone(),
                to: after_prefix(prefix),
            },
            None => KeyRange::All,
        },
        UserSort::BalanceAsc | UserSort::BalanceDesc => {
            let (mut lo, mut hi) = (i64::MIN, i64::MAX);
            if let Some(below) = filter.below_cents {
                match below.checked_sub(1) {
                    Some(top) => hi = hi.min(top),
                    None => return KeyRange::Empty,
                }
            }
            match filter.overdrawn {
                Some(true) => hi = hi.min(-1),
                Some(false) => lo = lo.max(0),
                None => {}
            }
            match (lo, hi) {
                _ if lo > hi => KeyRange::Empty,
                (i64::MIN, i64::MAX) => KeyRange::All,
                _ => KeyRange::Balances { lo, hi },
            }
        }
        UserSort::ConsumedDesc => KeyRange::All,
    }
}

/// The least string after every string that starts with `prefix` (byte
/// order), or `None` when there is none: the prefix with its last character
/// raised by one, dropping trailing characters that cannot be raised.
fn after_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The error for a cursor this order did not give out.
fn foreign_cursor(sort: UserSort, cursor: &str, detail: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "cursor `{}` is not one that list_users returned for sort `{}` ({detail}); pass back \
         next_cursor unchanged with the same sort, or omit the cursor to start from the beginning",
        echo(cursor),
        sort.as_str()
    ))
}

#[cfg(test)]
mod tests;
