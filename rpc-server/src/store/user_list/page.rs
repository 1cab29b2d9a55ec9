//! One page of `list_users`, built from the users a backend reads in the
//! order's range, in order: which are listed, when to stop reading, and the
//! cursor to go on from. Both backends feed it, so pages end alike.

use billing_api::{Page, UserBilling};

use super::{Position, USER_SCAN, UserQuery, cursor};
use crate::store::clamp_limit;

/// Users a backend that reads in batches asks for at a time while a filter
/// is checked row by row.
const SCAN_BATCH: usize = 1000;

pub(crate) struct PageBuilder<'q> {
    query: &'q UserQuery,
    limit: usize,
    /// The walk's balance version, written into the cursor (balance orders).
    version: Option<u64>,
    examined: usize,
    items: Vec<UserBilling>,
    last_item: Option<Position>,
    last_examined: Option<Position>,
    /// A match was found past the page's `limit`.
    more: bool,
}

impl<'q> PageBuilder<'q> {
    pub fn new(query: &'q UserQuery, limit: u32, version: Option<u64>) -> Self {
        let limit = clamp_limit(limit);
        PageBuilder {
            query,
            limit,
            version,
            examined: 0,
            items: Vec::with_capacity(limit.min(128)),
            last_item: None,
            last_examined: None,
            more: false,
        }
    }

    /// `user`'s key in the page's order.
    pub fn key_of(&self, user: &UserBilling) -> i64 {
        self.query.key_of(user)
    }

    /// Where reading goes on from: after the last user read, or the cursor.
    pub fn resume(&self) -> Option<&Position> {
        self.last_examined.as_ref().or(self.query.after())
    }

    /// How many users a backend reading in batches should ask for next.
    pub fn batch(&self) -> usize {
        let want = if self.query.residual() {
            SCAN_BATCH.max(self.limit + 1)
        } else {
            self.limit + 1 - self.items.len()
        };
        want.min(USER_SCAN - self.examined).max(1)
    }

    /// The next user of the range, in order: listed if it matches. Returns
    /// whether to read on.
    pub fn offer(&mut self, user: UserBilling) -> bool {
        let position = self.query.position_of(&user);
        if self.query.matches(&user) {
            if self.items.len() == self.limit {
                self.more = true;
                return false;
            }
            self.items.push(user);
            self.last_item = Some(position.clone());
        }
        self.pass(position)
    }

    /// The next user of the range, passed over unread (its balance changed
    /// after the walk began). Returns whether to read on.
    pub fn pass(&mut self, position: Position) -> bool {
        self.examined += 1;
        self.last_examined = Some(position);
        self.examined < USER_SCAN
    }

    /// The page. `exhausted`: the range has no user after those offered.
    pub fn finish(self, exhausted: bool) -> Page<UserBilling> {
        let next = if self.more {
            self.last_item
        } else if exhausted {
            None
        } else {
            // Stopped after USER_SCAN users: go on after the last one read.
            self.last_examined
        };
        Page {
            items: self.items,
            next_cursor: next.map(|p| cursor::encode(self.query.sort, &p, self.version)),
        }
    }
}
