//! The consumed index: applying a record exactly once (dedup by key, debit,
//! provenance rows) and listing what was applied.

use std::collections::HashMap;

use billing_api::ConsumedRecord;

use super::super::codec::{self, ConsumedGroup, ConsumedRow, SourceRow, UserRow};
use super::super::redb_rows::load_source;
use super::super::{
    Page, RedbStore, StoreError, UsageRecord, bad_cursor, clamp_limit, page, seq_cursor, tables,
};
use super::{LedgerTxn, Provenance, Rows};

/// What one record charges.
pub(super) struct Charge<'a> {
    pub key: &'a str,
    pub sid: &'a str,
    pub node: &'a str,
    pub cost: i64,
    pub resource: Option<&'a str>,
}

/// Result of trying to debit one record.
pub(super) enum Debit {
    Applied,
    /// The key is already in the consumed index; nothing was changed.
    AlreadyApplied,
    Overflow(String),
}

impl<R: Rows> LedgerTxn<R> {
    /// Debits a record of a known user and writes its consumed-index rows,
    /// unless its key is already applied.
    pub(super) fn debit(
        &mut self,
        charge: Charge<'_>,
        commit: &str,
        path: &str,
    ) -> Result<Debit, StoreError> {
        let Charge {
            key,
            sid,
            node,
            cost,
            resource,
        } = charge;
        let Some(user) = self.user(sid)? else {
            return Err(StoreError::Storage(format!(
                "user `{sid}` vanished while applying record `{key}`"
            )));
        };
        // The sum of all balances is 128-bit, so only this user's own figures can
        // refuse a record. And only its total consumed, in fact: payments are > 0
        // and consumed <= i64::MAX keep balance = paid - consumed >= -i64::MAX. No
        // later payment lowers the total consumed, so such a record is invalid for
        // good, not worth retrying (`docs/otoml.md`).
        let balance = user.row.balance_cents.checked_sub(cost);
        let consumed = user.row.consumed_cents.checked_add(cost);
        let (Some(balance), Some(consumed)) = (balance, consumed) else {
            // A balance past i64::MIN implies a total consumed past i64::MAX (see above).
            let what = if consumed.is_none() {
                "the user's total consumed"
            } else {
                "the user's balance"
            };
            let reason = format!(
                "applying {cost} cents to user `{sid}` (balance {} cents, consumed {} cents) \
                 would overflow {what} (a 64-bit amount); the record was not applied: check the \
                 cost on the node",
                user.row.balance_cents, user.row.consumed_cents
            );
            if self.rows.is_consumed(key)? {
                return Ok(Debit::AlreadyApplied);
            }
            return Ok(Debit::Overflow(reason));
        };

        // Claim the key first: one index operation for a new key.
        let seq = self.meta.consumed_seq + 1;
        if self.rows.claim_key(key, seq)?.is_some() {
            return Ok(Debit::AlreadyApplied);
        }
        self.meta.consumed_seq = seq;
        let user = self
            .user_cache
            .get_mut(sid)
            .and_then(Option::as_mut)
            .expect("user was cached above");
        user.row.balance_cents = balance;
        user.row.consumed_cents = consumed;
        user.dirty = true;
        user.new_seqs.push(seq);
        self.meta.counts.total_balance_cents -= i128::from(cost);
        // A report figure, like the pass summary: it must never decide whether money moves.
        self.outcome.cents_debited = self.outcome.cents_debited.saturating_add(cost);

        let source = self.source_id(node, commit, path)?;
        let row = ConsumedRow {
            key,
            user_sid: sid,
            cost_cents: cost,
            source,
            resource,
        };
        self.rows.put_consumed(seq, &row)?;
        self.meta.counts.consumed_records += 1;
        self.outcome.applied += 1;
        match self.node_applied.get_mut(node) {
            Some(n) => *n += 1,
            None => {
                self.node_applied.insert(node.to_string(), 1);
            }
        }
        Ok(Debit::Applied)
    }

    /// Id of the source row for records applied now from `path`; records of
    /// one file in a row share one.
    pub(super) fn source_id(
        &mut self,
        node: &str,
        commit: &str,
        path: &str,
    ) -> Result<u64, StoreError> {
        if let Some((id, s)) = &self.current_source
            && s.file_path == path
            && s.commit_sha == commit
            && s.node_name == node
        {
            return Ok(*id);
        }
        self.meta.source_seq += 1;
        let id = self.meta.source_seq;
        let row = SourceRow {
            node_name: node.to_string(),
            commit_sha: commit.to_string(),
            file_path: path.to_string(),
            applied_at_ms: self.now_ms,
        };
        self.rows.put_source(id, &row)?;
        self.current_source = Some((id, row));
        Ok(id)
    }

    /// The applied version of `key`, if any.
    pub(super) fn consumed(&mut self, key: &str) -> Result<Option<ConsumedRecord>, StoreError> {
        self.rows.consumed(key)
    }

    /// One valid record: dedup, then apply or hold.
    pub fn record(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let key = rec.idempotency_key.as_str();
        if rec.cost_cents < 0 || rec.node_name != from.node {
            let reason = if rec.cost_cents < 0 {
                format!("cost_cents must be >= 0, got {}", rec.cost_cents)
            } else {
                format!(
                    "node_name `{}` differs from the directory node `{}`",
                    rec.node_name, from.node
                )
            };
            return self.invalid_record(from, index, Some(key), Some(&rec.user_sid), &reason, "");
        }
        if self.meta.counts.pending_records > 0
            && let Some(held) = self.rows.pending(key)?
        {
            if same_charge(rec, &held.user_sid, &held.node_name, held.cost_cents) {
                self.outcome.duplicate += 1;
                return Ok(());
            }
            self.outcome.conflict += 1;
            let detail = format!(
                "idempotency key `{key}` is already held (user not registered yet) as user \
                 `{}`, node `{}`, {} cents (commit {}, file {}); this record says user `{}`, \
                 node `{}`, {} cents. Only the held version will be applied: if this is a new \
                 charge, give it a new key on the node",
                held.user_sid,
                held.node_name,
                held.cost_cents,
                held.commit_sha,
                held.file_path,
                rec.user_sid,
                rec.node_name,
                rec.cost_cents
            );
            return self.conflict(from, index, rec, detail, None);
        }
        if self.user(&rec.user_sid)?.is_none() {
            if self.rows.is_consumed(key)? {
                return self.already_applied(from, index, rec);
            }
            return self.hold(from, index, rec);
        }
        let charge = Charge {
            key,
            sid: &rec.user_sid,
            node: &rec.node_name,
            cost: rec.cost_cents,
            resource: rec.resource.as_deref(),
        };
        match self.debit(charge, from.commit, from.path)? {
            Debit::Applied => Ok(()),
            Debit::AlreadyApplied => self.already_applied(from, index, rec),
            Debit::Overflow(reason) => {
                self.invalid_record(from, index, Some(key), Some(&rec.user_sid), &reason, "")
            }
        }
    }

    /// A record whose key is in the consumed index: a duplicate or a conflict.
    pub(super) fn already_applied(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let key = rec.idempotency_key.as_str();
        let existing = self.consumed(key)?.ok_or_else(|| {
            StoreError::Storage(format!(
                "key `{key}` left the consumed index mid-transaction"
            ))
        })?;
        if same_charge(
            rec,
            &existing.user_sid,
            &existing.node_name,
            existing.cost_cents,
        ) {
            self.outcome.duplicate += 1;
            return Ok(());
        }
        self.outcome.conflict += 1;
        let detail = format!(
            "idempotency key `{key}` was already applied as user `{}`, node `{}`, {} cents \
             (commit {}, file {}); this record says user `{}`, node `{}`, {} cents. Nothing \
             was changed: if this is a new charge, give it a new key on the node; if the \
             applied version is right, no action is needed",
            existing.user_sid,
            existing.node_name,
            existing.cost_cents,
            existing.commit_sha,
            existing.file_path,
            rec.user_sid,
            rec.node_name,
            rec.cost_cents
        );
        self.conflict(from, index, rec, detail, Some(existing))
    }
}

/// A record repeating a known key is a duplicate when it charges the same
/// user, from the same node, the same amount; anything else is a conflict.
fn same_charge(rec: &UsageRecord, user_sid: &str, node_name: &str, cost_cents: i64) -> bool {
    rec.user_sid == user_sid && rec.node_name == node_name && rec.cost_cents == cost_cents
}

impl RedbStore {
    /// Applied records, newest first; only `user_sid`'s if given.
    pub fn list_consumed(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConsumedRecord>, StoreError> {
        let limit = clamp_limit(limit);
        // Per user the cursor is `group:seq` (where the walk of the group chain
        // stopped); otherwise a plain seq.
        let (group_cursor, before) = match (user_sid, cursor) {
            (Some(_), Some(c)) => {
                let parsed = c
                    .split_once(':')
                    .and_then(|(g, s)| Some((g.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
                match parsed {
                    Some((g, s)) => (Some(g), s),
                    None => return Err(bad_cursor(c)),
                }
            }
            _ => (None, seq_cursor(cursor)?.unwrap_or(u64::MAX)),
        };
        self.read("list consumed records", |txn| {
            let log = txn.open_table(tables::CONSUMED_LOG)?;
            let sources = txn.open_table(tables::CONSUMED_SOURCES)?;
            let mut source_cache: HashMap<u64, SourceRow> = HashMap::new();
            let mut items = Vec::with_capacity(limit + 1);
            let mut push = |cursor: String, bytes: &[u8]| -> Result<(), StoreError> {
                let row = ConsumedRow::decode(bytes)?;
                let source = match source_cache.entry(row.source) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(load_source(&sources, row.source)?)
                    }
                };
                items.push((cursor, row.to_api(source)));
                Ok(())
            };
            match user_sid {
                Some(sid) => {
                    let user: UserRow = match txn.open_table(tables::USERS)?.get(sid)? {
                        Some(bytes) => codec::decode_owned(bytes.value(), "user")?,
                        None => {
                            return Err(StoreError::NotFound {
                                what: "user",
                                key: sid.to_string(),
                            });
                        }
                    };
                    let index = txn.open_table(tables::USER_CONSUMED)?;
                    let mut group_id = group_cursor.unwrap_or(user.last_group);
                    let mut taken = 0;
                    'groups: while group_id != 0 {
                        let group = match index.get(group_id)? {
                            Some(bytes) => ConsumedGroup::decode(bytes.value())?,
                            None if group_cursor == Some(group_id) => {
                                return Err(bad_cursor(cursor.unwrap_or_default()));
                            }
                            None => {
                                return Err(StoreError::Storage(format!(
                                    "consumed index group {group_id} of user `{sid}` is missing"
                                )));
                            }
                        };
                        if group.user_id != user.id {
                            return Err(bad_cursor(cursor.unwrap_or_default()));
                        }
                        for &seq in group.seqs.iter().rev().filter(|&&s| s < before) {
                            let bytes = log.get(seq)?.ok_or_else(|| {
                                StoreError::Storage(format!("consumed row {seq} is missing"))
                            })?;
                            push(format!("{group_id}:{seq}"), bytes.value())?;
                            taken += 1;
                            if taken > limit {
                                break 'groups;
                            }
                        }
                        group_id = group.prev;
                    }
                }
                None => {
                    // Each row is read once, from the range walk itself.
                    for entry in log.range(..before)?.rev().take(limit + 1) {
                        let (seq, bytes) = entry?;
                        push(seq.value().to_string(), bytes.value())?;
                    }
                }
            }
            Ok(page(items, limit))
        })
    }
}
