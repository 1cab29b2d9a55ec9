//! Applying usage: the exactly-once core. `LedgerTxn` holds the rows of one
//! write transaction (a backend's [`Rows`]), caches the users it touches and
//! writes each of them, the counters and the node totals once, in `finish`.

mod alerts;
mod consumed;
mod held;
mod rejected;
mod rows;

use std::collections::HashMap;

pub(crate) use alerts::LOW_BALANCE_DEFAULT_KEY;
pub(crate) use rows::Rows;

use billing_api::RejectReason;

use super::codec::{MetaRow, RejectedRow, SourceRow, UserRow};
use super::user_index::SortKeys;
use super::{ApplyOutcome, StoreError, UsageRecord};

/// Where a record came from.
#[derive(Clone, Copy)]
pub(crate) struct Provenance<'a> {
    pub node: &'a str,
    pub commit: &'a str,
    pub path: &'a str,
    pub blob: &'a str,
}

impl Provenance<'_> {
    /// A rejected item of this file (the whole file: no record fields),
    /// first seen at `now_ms`; its fingerprint is set when it is stored.
    pub fn rejected(self, reason: RejectReason, detail: String, now_ms: u64) -> RejectedRow {
        RejectedRow {
            reason,
            node_name: self.node.to_string(),
            file_path: self.path.to_string(),
            blob_id: self.blob.to_string(),
            commit_sha: self.commit.to_string(),
            record_index: None,
            idempotency_key: None,
            user_sid: None,
            cost_cents: None,
            detail,
            existing: None,
            first_seen_ms: now_ms,
            fingerprint: None,
        }
    }

    /// A rejected item of record `index` of this file, `rec`.
    pub fn rejected_record(
        self,
        reason: RejectReason,
        index: u32,
        rec: &UsageRecord,
        detail: String,
        now_ms: u64,
    ) -> RejectedRow {
        RejectedRow {
            record_index: Some(index),
            idempotency_key: Some(rec.idempotency_key.clone()),
            user_sid: Some(rec.user_sid.clone()),
            cost_cents: Some(rec.cost_cents),
            ..self.rejected(reason, detail, now_ms)
        }
    }
}

pub(crate) struct CachedUser {
    pub row: UserRow,
    /// Balance and total consumed when first read in this transaction
    /// (`None` for a new user).
    before: Option<SortKeys>,
    pub dirty: bool,
    /// Consumed seqs applied to this user in this transaction, ascending.
    new_seqs: Vec<u64>,
}

/// The rows of one write transaction plus the state written back at the end.
pub(crate) struct LedgerTxn<R: Rows> {
    pub now_ms: u64,
    pub meta: MetaRow,
    pub outcome: ApplyOutcome,
    pub(super) rows: R,
    /// The source the last applied record was written with.
    current_source: Option<(u64, SourceRow)>,
    /// The per-record rejections of the file being read (see `tally.rs`).
    pub(super) tally: Option<super::tally::OpenTally>,
    user_cache: HashMap<String, Option<CachedUser>>,
    /// Records applied per node in this transaction, added to the node totals in `finish`.
    node_applied: HashMap<String, u64>,
    /// The default low-balance threshold, once read (see `alerts.rs`).
    low_balance_default: Option<i64>,
}

impl<R: Rows> LedgerTxn<R> {
    pub fn open(mut rows: R, now_ms: u64) -> Result<Self, StoreError> {
        let meta = rows.meta()?;
        Ok(LedgerTxn {
            now_ms,
            meta,
            outcome: ApplyOutcome::default(),
            rows,
            current_source: None,
            tally: None,
            user_cache: HashMap::new(),
            node_applied: HashMap::new(),
            low_balance_default: None,
        })
    }

    /// The backend's rows, for writes the ledger does not make itself.
    pub fn rows(&mut self) -> &mut R {
        &mut self.rows
    }

    /// The user, read once per transaction; `None` if not registered.
    pub fn user(&mut self, sid: &str) -> Result<Option<&mut CachedUser>, StoreError> {
        if !self.user_cache.contains_key(sid) {
            let cached = self.rows.user(sid)?.map(|row| CachedUser {
                before: Some(SortKeys::of(&row)),
                row,
                dirty: false,
                new_seqs: Vec::new(),
            });
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
                before: None,
                row,
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
    pub fn finish(mut self) -> Result<ApplyOutcome, StoreError> {
        self.flush_tally()?;
        let mut changed = Vec::new();
        for (sid, cached) in &mut self.user_cache {
            let Some(user) = cached else { continue };
            if !user.dirty {
                continue;
            }
            if user.before.is_none() {
                self.meta.counts.total_users += 1;
            }
            let was_overdrawn = user.before.is_some_and(|b| b.balance_cents < 0);
            let is_overdrawn = user.row.balance_cents < 0;
            if was_overdrawn && !is_overdrawn {
                take_one(&mut self.meta.counts.overdrawn_users, "overdrawn_users")?;
            } else if !was_overdrawn && is_overdrawn {
                self.meta.counts.overdrawn_users += 1;
            }
            self.rows.put_user(
                sid,
                &mut user.row,
                user.before,
                &user.new_seqs,
                &mut self.meta,
            )?;
            let balance_before = user.before.map_or(0, |b| b.balance_cents);
            if balance_before != user.row.balance_cents {
                changed.push((sid.clone(), balance_before, user.row.balance_cents));
            }
        }
        // In sid order, so that events of one transaction are numbered the same on every run.
        changed.sort_unstable();
        for (sid, before, after) in changed {
            self.balance_alert(&sid, before, after)?;
        }
        let node_applied = std::mem::take(&mut self.node_applied);
        for (node, applied) in node_applied {
            self.set_node_state(&node, |row| {
                row.records_consumed_total = row.records_consumed_total.saturating_add(applied)
            })?;
        }
        self.rows.put_meta(&self.meta)?;
        Ok(self.outcome)
    }
}

/// Takes one from a stored counter. A counter already at zero while a row it
/// counts goes away disagrees with the rows: the write fails instead of
/// wrapping around.
pub(super) fn take_one(counter: &mut u64, name: &str) -> Result<(), StoreError> {
    *counter = counter.checked_sub(1).ok_or_else(|| {
        StoreError::Storage(format!(
            "the ledger's counter `{name}` is 0 while a row it counts is being removed: the \
             counters disagree with the rows. Nothing was written; stop the server and run \
             `rpc-server verify --repair` to recount them"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod counter_tests {
    use super::take_one;

    #[test]
    fn a_counter_at_zero_is_refused_by_name() {
        let mut n = 2;
        take_one(&mut n, "pending_records").unwrap();
        assert_eq!(n, 1);
        take_one(&mut n, "pending_records").unwrap();
        let err = take_one(&mut n, "pending_records").unwrap_err().to_string();
        assert_eq!(n, 0);
        assert!(
            err.contains("`pending_records`") && err.contains("verify --repair"),
            "{err}"
        );
    }
}
