//! Rejected records and files: stored once per fingerprint, and listed for
//! the operator (see `tally.rs` for the per-file sample and counts).

use billing_api::{ConsumedRecord, RejectReason, RejectedItem};

use super::super::codec::{self, RejectedRow};
use super::super::{
    InvalidRecord, Page, RedbStore, StoreError, UsageRecord, clamp_limit, page, seq_cursor, tables,
};
use super::{LedgerTxn, Provenance, Rows};

impl<R: Rows> LedgerTxn<R> {
    pub(super) fn conflict(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
        detail: String,
        existing: Option<ConsumedRecord>,
    ) -> Result<(), StoreError> {
        let fingerprint = format!(
            "conflict\0{}\0{}\0{}\0{}",
            rec.idempotency_key, rec.user_sid, rec.node_name, rec.cost_cents
        );
        if !self.sample(from, index, "conflict", &fingerprint)? {
            return Ok(());
        }
        let row = from.rejected_record(RejectReason::Conflict, index, rec, detail, self.now_ms);
        self.reject(RejectedRow { existing, ..row }, fingerprint)
    }

    /// An invalid record of a decoded file.
    pub fn invalid(&mut self, from: Provenance<'_>, rec: &InvalidRecord) -> Result<(), StoreError> {
        let index = u32::try_from(rec.index).unwrap_or(u32::MAX);
        self.invalid_record(
            from,
            index,
            rec.idempotency_key.as_deref(),
            rec.user_sid.as_deref(),
            &rec.reason,
            &rec.raw,
        )
    }

    pub(super) fn invalid_record(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        key: Option<&str>,
        sid: Option<&str>,
        reason: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        self.outcome.invalid += 1;
        // Content-based, so a re-commit of the same bad record adds no second item.
        let fingerprint = format!(
            "invalid\0{}\0{}\0{index}\0{}\0{reason}\0{raw}",
            from.node,
            from.path,
            key.unwrap_or("")
        );
        if !self.sample(from, index, reason, &fingerprint)? {
            return Ok(());
        }
        let mut detail = format!(
            "record {index} of {} is invalid: {reason}. It was not applied; the rest of the file \
             was. Fix the record on the node with a new idempotency key, or leave it out",
            from.path
        );
        if !raw.is_empty() {
            detail.push_str("; as written: ");
            detail.push_str(raw.trim_end());
        }
        let row = RejectedRow {
            record_index: Some(index),
            idempotency_key: key.map(str::to_string),
            user_sid: sid.map(str::to_string),
            ..from.rejected(RejectReason::Invalid, detail, self.now_ms)
        };
        self.reject(row, fingerprint)
    }

    /// A whole file that was not read.
    pub fn reject_file(
        &mut self,
        from: Provenance<'_>,
        reason: RejectReason,
        detail: String,
    ) -> Result<(), StoreError> {
        self.outcome.file_rejected(reason, 1);
        self.outcome
            .rejected_files
            .push(super::super::RejectedFile {
                path: from.path.to_string(),
                reason,
                detail: detail.clone(),
            });
        let fingerprint = file_fingerprint(reason, from);
        self.reject(from.rejected(reason, detail, self.now_ms), fingerprint)
    }

    /// Removes the whole-file rejection of `from` for `reason`, if any: the
    /// file was read after all (e.g. an oversize file under a raised limit).
    pub fn resolve_file(
        &mut self,
        from: Provenance<'_>,
        reason: RejectReason,
    ) -> Result<(), StoreError> {
        let fingerprint = file_fingerprint(reason, from);
        let Some(id) = self.rows.take_fingerprint(&fingerprint)? else {
            return Ok(());
        };
        if self.rows.remove_rejected(id)? {
            super::take_one(&mut self.meta.counts.rejected_items, "rejected_items")?;
        }
        Ok(())
    }

    /// Stores a rejected item unless one with the same fingerprint exists.
    pub(super) fn reject(
        &mut self,
        mut row: RejectedRow,
        fingerprint: String,
    ) -> Result<(), StoreError> {
        if self.rows.has_fingerprint(&fingerprint)? {
            return Ok(());
        }
        let id = self.next_rejected_id();
        self.rows.put_fingerprint(&fingerprint, id)?;
        row.fingerprint = Some(fingerprint);
        self.rows.put_rejected(id, &row)?;
        self.meta.counts.rejected_items += 1;
        Ok(())
    }

    pub(in crate::store) fn next_rejected_id(&mut self) -> u64 {
        self.meta.rejected_seq += 1;
        self.meta.rejected_seq
    }
}

/// Dedup key of a whole-file rejection: one item per reason, node, path and blob.
fn file_fingerprint(reason: RejectReason, from: Provenance<'_>) -> String {
    format!(
        "{}\0{}\0{}\0{}",
        reason.as_str(),
        from.node,
        from.path,
        from.blob
    )
}

impl RedbStore {
    /// Held and rejected records and files, newest first.
    pub fn list_rejected(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RejectedItem>, StoreError> {
        let limit = clamp_limit(limit);
        let before = seq_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list rejected items", |txn| {
            let table = txn.open_table(tables::REJECTED)?;
            let counts = txn.open_table(tables::REJECTED_COUNTS)?;
            let mut items = Vec::with_capacity(limit + 1);
            for entry in table.range(..before)?.rev().take(limit + 1) {
                let (id, bytes) = entry?;
                let id = id.value();
                let row: RejectedRow = codec::decode_owned(bytes.value(), "rejected item")?;
                let mut item = row.to_api(id);
                if row.record_index.is_none() {
                    item.record_count = counts.get(id)?.map(|n| n.value());
                }
                items.push((id.to_string(), item));
            }
            Ok(page(items, limit))
        })
    }
}
