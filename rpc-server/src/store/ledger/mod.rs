//! Applying usage: the exactly-once core. `Ledger` holds the open tables of one
//! write transaction, caches the users it touches and writes each of them, the
//! counters and the node totals once, in `finish`.

mod consumed;
mod held;
mod rejected;

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{self, ConsumedGroup, META_KEY, MetaRow, SourceRow, UserRow};
use super::{NodeOutcome, StoreError, tables};

/// Where a record came from.
#[derive(Clone, Copy)]
pub(crate) struct Provenance<'a> {
    pub node: &'a str,
    pub commit: &'a str,
    pub path: &'a str,
    pub blob: &'a str,
}

pub(crate) struct CachedUser {
    pub row: UserRow,
    /// Balance when first read in this transaction (0 for a new user).
    balance_before: i64,
    is_new: bool,
    pub dirty: bool,
    /// Consumed seqs applied to this user in this transaction, ascending.
    new_seqs: Vec<u64>,
}

/// The open tables of one write transaction plus the state written back at the end.
pub(crate) struct Ledger<'t> {
    pub now_ms: u64,
    pub meta: MetaRow,
    pub outcome: NodeOutcome,
    meta_table: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    consumed_keys: Table<'t, &'static str, u64>,
    consumed_log: Table<'t, u64, &'static [u8]>,
    sources: Table<'t, u64, &'static [u8]>,
    /// The source the last applied record was written with.
    current_source: Option<(u64, SourceRow)>,
    user_consumed: Table<'t, u64, &'static [u8]>,
    pending: Table<'t, &'static str, &'static [u8]>,
    user_pending: Table<'t, (&'static str, &'static str), ()>,
    pub(super) rejected: Table<'t, u64, &'static [u8]>,
    fingerprints: Table<'t, &'static str, u64>,
    pub(super) rejected_counts: Table<'t, u64, u64>,
    pub(super) tallies: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    /// The per-record rejections of the file being read (see `tally.rs`).
    pub(super) tally: Option<super::tally::OpenTally>,
    pub nodes: Table<'t, &'static str, &'static [u8]>,
    user_cache: HashMap<String, Option<CachedUser>>,
    /// Records applied per node in this transaction, added to the node totals in `finish`.
    node_applied: HashMap<String, u64>,
    pub(super) buf: Vec<u8>,
}

impl<'t> Ledger<'t> {
    pub fn open(txn: &'t WriteTransaction, now_ms: u64) -> Result<Self, StoreError> {
        let meta_table = txn.open_table(tables::META)?;
        let meta = match meta_table.get(META_KEY)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "meta")?,
            None => MetaRow::default(),
        };
        Ok(Ledger {
            now_ms,
            meta,
            outcome: NodeOutcome::default(),
            meta_table,
            users: txn.open_table(tables::USERS)?,
            consumed_keys: txn.open_table(tables::CONSUMED_KEYS)?,
            consumed_log: txn.open_table(tables::CONSUMED_LOG)?,
            sources: txn.open_table(tables::CONSUMED_SOURCES)?,
            current_source: None,
            user_consumed: txn.open_table(tables::USER_CONSUMED)?,
            pending: txn.open_table(tables::PENDING)?,
            user_pending: txn.open_table(tables::USER_PENDING)?,
            rejected: txn.open_table(tables::REJECTED)?,
            fingerprints: txn.open_table(tables::REJECTED_FINGERPRINTS)?,
            rejected_counts: txn.open_table(tables::REJECTED_COUNTS)?,
            tallies: txn.open_table(tables::FILE_TALLIES)?,
            tally: None,
            nodes: txn.open_table(tables::NODES)?,
            user_cache: HashMap::new(),
            node_applied: HashMap::new(),
            buf: Vec::with_capacity(256),
        })
    }

    /// The user, read once per transaction; `None` if not registered.
    pub fn user(&mut self, sid: &str) -> Result<Option<&mut CachedUser>, StoreError> {
        if !self.user_cache.contains_key(sid) {
            let cached = match self.users.get(sid)? {
                Some(bytes) => {
                    let row: UserRow = codec::decode_owned(bytes.value(), "user")?;
                    Some(CachedUser {
                        balance_before: row.balance_cents,
                        row,
                        is_new: false,
                        dirty: false,
                        new_seqs: Vec::new(),
                    })
                }
                None => None,
            };
            self.user_cache.insert(sid.to_string(), cached);
        }
        Ok(self.user_cache.get_mut(sid).and_then(Option::as_mut))
    }

    /// Creates a user that `user` reported missing; allocates its id.
    pub fn create_user(&mut self, sid: &str, mut row: UserRow) {
        self.meta.user_seq += 1;
        row.id = self.meta.user_seq;
        self.user_cache.insert(
            sid.to_string(),
            Some(CachedUser {
                balance_before: 0,
                row,
                is_new: true,
                dirty: true,
                new_seqs: Vec::new(),
            }),
        );
    }

    /// Adds `amount` to the user's balance and total paid, checking every sum first.
    pub fn credit(&mut self, sid: &str, amount: i64) -> Result<(), StoreError> {
        let user = self.user(sid)?.ok_or_else(|| StoreError::NotFound {
            what: "user",
            key: sid.to_string(),
        })?;
        let overflow = |what: &str| {
            StoreError::Overflow(format!(
                "crediting {amount} cents to user `{sid}` would overflow {what}"
            ))
        };
        let balance = user
            .row
            .balance_cents
            .checked_add(amount)
            .ok_or_else(|| overflow("the balance"))?;
        let paid = user
            .row
            .paid_cents
            .checked_add(amount)
            .ok_or_else(|| overflow("the total paid"))?;
        user.row.balance_cents = balance;
        user.row.paid_cents = paid;
        user.dirty = true;
        self.meta.counts.total_balance_cents += i128::from(amount);
        Ok(())
    }

    /// Writes back touched users, node totals and counters.
    pub fn finish(mut self) -> Result<NodeOutcome, StoreError> {
        self.flush_tally()?;
        let mut buf = std::mem::take(&mut self.buf);
        for (sid, cached) in &self.user_cache {
            let Some(user) = cached else { continue };
            if !user.dirty {
                continue;
            }
            if user.is_new {
                self.meta.counts.total_users += 1;
            }
            let was_overdrawn = user.balance_before < 0;
            let is_overdrawn = user.row.balance_cents < 0;
            if was_overdrawn && !is_overdrawn {
                self.meta.counts.overdrawn_users -= 1;
            } else if !was_overdrawn && is_overdrawn {
                self.meta.counts.overdrawn_users += 1;
            }
            let mut row = user.row.clone();
            if !user.new_seqs.is_empty() {
                self.meta.group_seq += 1;
                let group = self.meta.group_seq;
                ConsumedGroup::encode(row.id, row.last_group, &user.new_seqs, &mut buf);
                self.user_consumed.insert(group, buf.as_slice())?;
                row.last_group = group;
            }
            codec::encode(&row, &mut buf)?;
            self.users.insert(sid.as_str(), buf.as_slice())?;
        }
        let node_applied = std::mem::take(&mut self.node_applied);
        for (node, applied) in node_applied {
            self.set_node_state(&node, |row| {
                row.records_consumed_total = row.records_consumed_total.saturating_add(applied)
            })?;
        }
        codec::encode(&self.meta, &mut buf)?;
        self.meta_table.insert(META_KEY, buf.as_slice())?;
        Ok(self.outcome)
    }
}
