//! The redb indexes `list_users` walks for its orders other than by sid:
//! `USERS_BY_BALANCE` and `USERS_BY_CONSUMED`, one entry per user keyed by
//! `(value, user_sid)`. They are derived from the users table and written in
//! the same transaction as the user row (`RedbRows::put_user`, the one place
//! a user row is written while the ledger runs), so they never disagree with
//! it; `verify` checks that they do not, and `rebuild` makes them from the
//! users table (format 3 migration, `verify --repair`, `migrate-ledger`).
//!
//! Each balance entry keeps the ledger's *balance version* when it was
//! written: the sum of the consumed and payment sequence numbers, which every
//! transaction that changes a balance raises (a payment takes a payment seq,
//! an applied record a consumed seq). A walk by balance remembers the version
//! it started at, and skips users whose balance changed after it: such a user
//! may already have been listed at its old place (see `user_list`).

use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{self, MetaRow, UserRow};
use super::{StoreError, tables};

/// The values a user is indexed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SortKeys {
    pub balance_cents: i64,
    pub consumed_cents: i64,
}

impl SortKeys {
    pub fn of(row: &UserRow) -> SortKeys {
        SortKeys {
            balance_cents: row.balance_cents,
            consumed_cents: row.consumed_cents,
        }
    }
}

/// The ledger's balance version (see the module doc).
pub(crate) fn balance_version(meta: &MetaRow) -> u64 {
    meta.consumed_seq.saturating_add(meta.payment_seq)
}

/// The two index tables, open in one write transaction.
pub(crate) struct UserIndex<'t> {
    by_balance: Table<'t, (i64, &'static str), u64>,
    by_consumed: Table<'t, (i64, &'static str), ()>,
}

impl<'t> UserIndex<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(UserIndex {
            by_balance: txn.open_table(tables::USERS_BY_BALANCE)?,
            by_consumed: txn.open_table(tables::USERS_BY_CONSUMED)?,
        })
    }

    /// Moves `sid`'s entries from `before` (`None`: a new user) to `after`;
    /// an entry whose value did not change is left as it is, version included.
    pub fn update(
        &mut self,
        sid: &str,
        before: Option<SortKeys>,
        after: SortKeys,
        version: u64,
    ) -> Result<(), StoreError> {
        if before.map(|b| b.balance_cents) != Some(after.balance_cents) {
            if let Some(b) = before {
                self.by_balance.remove((b.balance_cents, sid))?;
            }
            self.by_balance
                .insert((after.balance_cents, sid), version)?;
        }
        if before.map(|b| b.consumed_cents) != Some(after.consumed_cents) {
            if let Some(b) = before {
                self.by_consumed.remove((b.consumed_cents, sid))?;
            }
            self.by_consumed.insert((after.consumed_cents, sid), ())?;
        }
        Ok(())
    }
}

/// Empties both indexes and makes them again from the users table, at
/// balance version 0 (as if no balance changed since before any walk).
/// Returns the users indexed.
pub(crate) fn rebuild(txn: &WriteTransaction) -> Result<u64, StoreError> {
    txn.delete_table(tables::USERS_BY_BALANCE)?;
    txn.delete_table(tables::USERS_BY_CONSUMED)?;
    let mut index = UserIndex::open(txn)?;
    let users = txn.open_table(tables::USERS)?;
    let mut indexed = 0;
    for entry in users.iter()? {
        let (sid, bytes) = entry?;
        let row: UserRow = codec::decode_owned(bytes.value(), "user")?;
        index.update(sid.value(), None, SortKeys::of(&row), 0)?;
        indexed += 1;
    }
    Ok(indexed)
}

#[cfg(test)]
mod tests;
