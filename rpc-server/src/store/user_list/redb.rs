//! `list_users` on redb: a range of the users table (by `sid`) or of an
//! index of `user_index.rs`, read in one read transaction.

use std::ops::Bound;

use billing_api::{Page, UserBilling, UserSort};
use redb::{AccessGuard, ReadOnlyTable, StorageError, Value};

use super::{KeyRange, PageBuilder, Position, UserQuery};
use crate::store::codec::{self, UserRow};
use crate::store::user_index::balance_version;
use crate::store::{RedbStore, StoreError, tables};

type IndexKey = (i64, &'static str);
/// Bounds of an index range: lower, upper.
type KeyBounds<'a> = (Bound<(i64, &'a str)>, Bound<(i64, &'a str)>);
type Entry<'a, V> = Result<(AccessGuard<'a, IndexKey>, AccessGuard<'a, V>), StorageError>;

impl RedbStore {
    /// A page of users in `query`'s order, through its filter.
    pub fn list_users_by(
        &self,
        query: &UserQuery,
        limit: u32,
    ) -> Result<Page<UserBilling>, StoreError> {
        if *query.range() == KeyRange::Empty {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        self.read("list users", |txn| {
            let users = txn.open_table(tables::USERS)?;
            match query.sort() {
                UserSort::Sid => {
                    let mut page = PageBuilder::new(query, limit, None);
                    for entry in users.range::<&str>(sid_bounds(query))? {
                        let (sid, bytes) = entry?;
                        let row: UserRow = codec::decode_owned(bytes.value(), "user")?;
                        if !page.offer(row.to_api(sid.value())) {
                            return Ok(page.finish(false));
                        }
                    }
                    Ok(page.finish(true))
                }
                UserSort::BalanceAsc | UserSort::BalanceDesc => {
                    let version = match query.version() {
                        Some(v) => v,
                        None => balance_version(&Self::meta_read(txn)?),
                    };
                    let page = PageBuilder::new(query, limit, Some(version));
                    let index = txn.open_table(tables::USERS_BY_BALANCE)?;
                    let entries = index.range(value_bounds(query))?;
                    let changed = |v: &AccessGuard<'_, u64>| v.value() > version;
                    if query.sort() == UserSort::BalanceAsc {
                        walk(entries, &users, page, "users_by_balance", changed)
                    } else {
                        walk(entries.rev(), &users, page, "users_by_balance", changed)
                    }
                }
                UserSort::ConsumedDesc => {
                    let page = PageBuilder::new(query, limit, None);
                    let index = txn.open_table(tables::USERS_BY_CONSUMED)?;
                    let entries = index.range(value_bounds(query))?.rev();
                    walk(entries, &users, page, "users_by_consumed", |_| false)
                }
            }
        })
    }
}

/// Offers the users an index range names, in its order, to `page`; passes
/// over those `changed` says changed after the walk began.
fn walk<'a, V: Value + 'static>(
    entries: impl Iterator<Item = Entry<'a, V>>,
    users: &ReadOnlyTable<&'static str, &'static [u8]>,
    mut page: PageBuilder<'_>,
    index: &str,
    changed: impl Fn(&AccessGuard<'_, V>) -> bool,
) -> Result<Page<UserBilling>, StoreError> {
    for entry in entries {
        let (key, value) = entry?;
        let (indexed, sid) = key.value();
        if changed(&value) {
            let position = Position {
                key: indexed,
                sid: sid.to_string(),
            };
            if !page.pass(position) {
                return Ok(page.finish(false));
            }
            continue;
        }
        let stale = |found: &str| {
            StoreError::Storage(format!(
                "index {index} names user `{sid}` with {indexed}, but {found}; run `rpc-server \
                 verify` for a report, and `rpc-server verify --repair` (server stopped) to \
                 rebuild the index"
            ))
        };
        let row: UserRow = match users.get(sid)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "user")?,
            None => return Err(stale("the user is missing")),
        };
        let user = row.to_api(sid);
        if page.key_of(&user) != indexed {
            return Err(stale("the user row says otherwise"));
        }
        if !page.offer(user) {
            return Ok(page.finish(false));
        }
    }
    Ok(page.finish(true))
}

/// The sids a page by `sid` reads: after the cursor, within the prefix range.
fn sid_bounds(query: &UserQuery) -> (Bound<&str>, Bound<&str>) {
    let after = query.after().map(|p| p.sid.as_str());
    match query.range() {
        KeyRange::Sids { from, to } => {
            let start = match after {
                Some(a) if a >= from.as_str() => Bound::Excluded(a),
                _ => Bound::Included(from.as_str()),
            };
            let end = to.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            (start, end)
        }
        _ => (
            after.map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Unbounded,
        ),
    }
}

/// The index keys a page in a value order reads: within the balance range,
/// and after the cursor in the order's direction (down for the `_desc` ones).
fn value_bounds(query: &UserQuery) -> KeyBounds<'_> {
    let (mut lower, mut upper) = match query.range() {
        KeyRange::Balances { lo, hi } => (
            Bound::Included((*lo, "")),
            // Every key of balance `hi` sorts before `(hi + 1, "")`: sids are not empty.
            hi.checked_add(1)
                .map_or(Bound::Unbounded, |h| Bound::Excluded((h, ""))),
        ),
        _ => (Bound::Unbounded, Bound::Unbounded),
    };
    if let Some(p) = query.after() {
        let at = (p.key, p.sid.as_str());
        if query.sort() == UserSort::BalanceAsc {
            if below(&lower, at) {
                lower = Bound::Excluded(at);
            }
        } else if above(&upper, at) {
            upper = Bound::Excluded(at);
        }
    }
    (lower, upper)
}

/// Whether a lower bound lets in keys up to and including `at`.
fn below(lower: &Bound<(i64, &str)>, at: (i64, &str)) -> bool {
    match lower {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => *b <= at,
    }
}

/// Whether an upper bound lets in keys down to and including `at`.
fn above(upper: &Bound<(i64, &str)>, at: (i64, &str)) -> bool {
    match upper {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => *b >= at,
    }
}
