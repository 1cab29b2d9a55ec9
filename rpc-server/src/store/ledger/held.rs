//! Held records: usage of users not registered yet, kept until
//! `register_user` (or the pass's safety net) applies it.

use billing_api::RejectReason;
use billing_api::otoml::MAX_KEY_BYTES;
use redb::ReadableTable;

use super::super::codec::{self, PendingRow, RejectedRow};
use super::super::{NodeOutcome, Store, StoreError, UsageRecord};
use super::consumed::Debit;
use super::{Ledger, Provenance};

impl Ledger<'_> {
    /// Holds a record of an unknown user, visible as an `unknown_user` rejection.
    pub(super) fn hold(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let rejected_id = self.next_rejected_id();
        let reject = RejectedRow {
            reason: RejectReason::UnknownUser,
            node_name: from.node.to_string(),
            file_path: from.path.to_string(),
            blob_id: from.blob.to_string(),
            commit_sha: from.commit.to_string(),
            record_index: Some(index),
            idempotency_key: Some(rec.idempotency_key.clone()),
            user_sid: Some(rec.user_sid.clone()),
            cost_cents: Some(rec.cost_cents),
            detail: format!(
                "user `{}` is not registered; the record is held and will be applied as soon as \
                 the user is registered (register_user)",
                rec.user_sid
            ),
            existing: None,
            first_seen_ms: self.now_ms,
            fingerprint: None,
        };
        codec::encode(&reject, &mut self.buf)?;
        self.rejected.insert(rejected_id, self.buf.as_slice())?;
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
        };
        codec::encode(&held, &mut self.buf)?;
        self.pending
            .insert(rec.idempotency_key.as_str(), self.buf.as_slice())?;
        self.user_pending
            .insert((rec.user_sid.as_str(), rec.idempotency_key.as_str()), ())?;
        self.meta.counts.pending_records += 1;
        self.meta.counts.rejected_items += 1;
        self.outcome.pending += 1;
        Ok(())
    }

    /// Users with held records, in sid order. Skips from user to user rather
    /// than reading every held record.
    pub fn held_users(&self) -> Result<Vec<String>, StoreError> {
        // Sorts after every key of at most MAX_KEY_BYTES bytes: valid UTF-8 never
        // exceeds the bytes of U+10FFFF.
        let after_all_keys = "\u{10FFFF}".repeat(MAX_KEY_BYTES / 4 + 1);
        let mut sids: Vec<String> = Vec::new();
        loop {
            let next = match sids.last() {
                None => self.user_pending.range::<(&str, &str)>(..)?.next(),
                Some(sid) => self
                    .user_pending
                    .range((sid.as_str(), after_all_keys.as_str())..)?
                    .next(),
            };
            let Some(entry) = next else { break };
            let (k, _) = entry?;
            sids.push(k.value().0.to_string());
        }
        Ok(sids)
    }

    /// Applies every record held for `sid` (who must now exist).
    pub fn apply_held(&mut self, sid: &str) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for entry in self.user_pending.range((sid, "")..)? {
            let (k, _) = entry?;
            let (user, key) = k.value();
            if user != sid {
                break;
            }
            keys.push(key.to_string());
        }
        for key in keys {
            let held: PendingRow = match self.pending.remove(key.as_str())? {
                Some(bytes) => codec::decode_owned(bytes.value(), "held record")?,
                None => {
                    return Err(StoreError::Storage(format!(
                        "held-record index names key `{key}` of user `{sid}` but the record is \
                         missing"
                    )));
                }
            };
            self.user_pending.remove((sid, key.as_str()))?;
            if self.rejected.remove(held.rejected_id)?.is_some() {
                self.meta.counts.rejected_items -= 1;
            }
            self.meta.counts.pending_records -= 1;
            let from = Provenance {
                node: &held.node_name,
                commit: &held.commit_sha,
                path: &held.file_path,
                blob: &held.blob_id,
            };
            match self.debit(
                &key,
                sid,
                &held.node_name,
                held.cost_cents,
                &held.commit_sha,
                &held.file_path,
            )? {
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

impl Store {
    /// Applies every held record whose user now exists. `register_user` already
    /// does this for its user; this is the safety net each pass runs.
    pub fn apply_pending(&self, now_ms: u64) -> Result<NodeOutcome, StoreError> {
        self.write("apply held records", |txn| {
            let mut ledger = Ledger::open(txn, now_ms)?;
            if ledger.meta.counts.pending_records == 0 {
                return Ok(NodeOutcome::default());
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
