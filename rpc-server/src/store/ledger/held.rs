//! Held records: usage of users not registered yet, kept until
//! `register_user` (or the pass's safety net) applies it.

use billing_api::RejectReason;

use super::super::codec::PendingRow;
use super::super::redb_rows;
use super::super::{ApplyOutcome, RedbStore, StoreError, UsageRecord};
use super::consumed::{Charge, Debit};
use super::{LedgerTxn, Provenance, Rows, take_one};

impl<R: Rows> LedgerTxn<R> {
    /// Holds a record of an unknown user, visible as an `unknown_user` rejection.
    pub(super) fn hold(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let rejected_id = self.next_rejected_id();
        let detail = format!(
            "user `{}` is not registered; the record is held and will be applied as soon as the \
             user is registered (register_user)",
            rec.user_sid
        );
        let reject =
            from.rejected_record(RejectReason::UnknownUser, index, rec, detail, self.now_ms);
        self.rows.put_rejected(rejected_id, &reject)?;
        let held = PendingRow {
            user_sid: rec.user_sid.clone(),
            node_name: rec.node_name.clone(),
            cost_cents: rec.cost_cents,
            commit_sha: from.commit.to_string(),
            file_path: from.path.to_string(),
            blob_id: from.blob.to_string(),
            record_index: index,
            first_seen_ms: self.now_ms,
            rejected_id,
            resource: rec.resource.clone(),
        };
        self.rows.put_pending(&rec.idempotency_key, &held)?;
        self.meta.counts.pending_records += 1;
        self.meta.counts.rejected_items += 1;
        self.outcome.pending += 1;
        Ok(())
    }

    /// Users with held records, in sid order.
    pub fn held_users(&mut self) -> Result<Vec<String>, StoreError> {
        self.rows.held_users()
    }

    /// Applies every record held for `sid` (who must now exist).
    pub fn apply_held(&mut self, sid: &str) -> Result<(), StoreError> {
        for key in self.rows.held_keys(sid)? {
            let held: PendingRow = match self.rows.take_pending(sid, &key)? {
                Some(held) => held,
                None => {
                    return Err(StoreError::Storage(format!(
                        "held-record index names key `{key}` of user `{sid}` but the record is \
                         missing"
                    )));
                }
            };
            if self.rows.remove_rejected(held.rejected_id)? {
                take_one(&mut self.meta.counts.rejected_items, "rejected_items")?;
            }
            take_one(&mut self.meta.counts.pending_records, "pending_records")?;
            let from = Provenance {
                node: &held.node_name,
                commit: &held.commit_sha,
                path: &held.file_path,
                blob: &held.blob_id,
            };
            let charge = Charge {
                key: &key,
                sid,
                node: &held.node_name,
                cost: held.cost_cents,
                resource: held.resource.as_deref(),
            };
            match self.debit(charge, &held.commit_sha, &held.file_path)? {
                Debit::Applied => {}
                // Holding checks the consumed index, so this cannot happen; never apply twice.
                Debit::AlreadyApplied => self.outcome.duplicate += 1,
                // Only the user's own total consumed can overflow (see `debit`), and no
                // payment lowers it: retrying would never succeed.
                Debit::Overflow(reason) => self.invalid_record(
                    from,
                    held.record_index,
                    Some(&key),
                    Some(sid),
                    &reason,
                    "",
                )?,
            }
        }
        Ok(())
    }
}

impl RedbStore {
    /// Applies every held record whose user now exists. `register_user` already
    /// does this for its user; this is the safety net each pass runs.
    pub fn apply_pending(&self, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        self.write("apply held records", |txn| {
            let mut ledger = redb_rows::ledger(txn, now_ms)?;
            if ledger.meta.counts.pending_records == 0 {
                return Ok(ApplyOutcome::default());
            }
            for sid in ledger.held_users()? {
                if ledger.user(&sid)?.is_some() {
                    ledger.apply_held(&sid)?;
                }
            }
            ledger.finish()
        })
    }
}
