//! A bounded sample of each file's per-record rejections. A hostile file of a
//! million invalid records must not add a million rows: the first
//! `REJECTION_SAMPLE` invalid records and conflicts of a file are stored one by
//! one, the rest are counted by kind into one summary item per file, whose
//! `record_count` says how many records it stands for.

use super::StoreError;
use super::codec::TallyRow;
use super::ledger::{LedgerTxn, Provenance, Rows};
use billing_api::RejectReason;

/// Per-record rejections of one file stored one by one.
pub const REJECTION_SAMPLE: u64 = 20;
/// Kinds of reason counted separately in a summary; the rest count as "other".
const MAX_KINDS: usize = 16;
const OTHER_KIND: &str = "other reasons";

/// The tally of the file being read, with where it came from.
pub(crate) struct OpenTally {
    node: String,
    path: String,
    blob: String,
    commit: String,
    row: TallyRow,
    /// Records an earlier read of this blob counted into the summary.
    omitted_before: u64,
    dirty: bool,
}

impl<R: Rows> LedgerTxn<R> {
    /// Whether a per-record rejection at `index` of `from` (whose item would
    /// have `fingerprint`) is stored one by one; otherwise it is counted into
    /// the file's summary, or was tallied already by an earlier read of the
    /// same blob (after a crash, or a force-push back to it).
    ///
    /// A record an earlier read reached is tallied again only if that read
    /// did not list it: it was valid then and is not now (a limit was lowered
    /// in between). When the earlier read counted records into the summary,
    /// it cannot be told apart from those, and is taken as counted.
    pub(super) fn sample(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        reason: &str,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        self.open_tally(from)?;
        let tally = self.tally.as_ref().expect("opened above");
        let index = u64::from(index);
        if index < tally.row.next_index
            && (tally.omitted_before > 0 || self.rows.has_fingerprint(fingerprint)?)
        {
            return Ok(false);
        }
        let tally = self.tally.as_mut().expect("opened above");
        tally.row.next_index = tally.row.next_index.max(index + 1);
        tally.dirty = true;
        if tally.row.stored < REJECTION_SAMPLE {
            tally.row.stored += 1;
            return Ok(true);
        }
        tally.row.omitted += 1;
        let kind = reason_kind(reason);
        let by_kind = &mut tally.row.by_kind;
        let slot = match by_kind.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None if by_kind.len() < MAX_KINDS - 1 => {
                by_kind.push((kind, 0));
                by_kind.len() - 1
            }
            None => match by_kind.iter().position(|(k, _)| k == OTHER_KIND) {
                Some(i) => i,
                None => {
                    by_kind.push((OTHER_KIND.to_string(), 0));
                    by_kind.len() - 1
                }
            },
        };
        by_kind[slot].1 += 1;
        Ok(false)
    }

    fn open_tally(&mut self, from: Provenance<'_>) -> Result<(), StoreError> {
        if let Some(t) = &self.tally
            && t.blob == from.blob
            && t.path == from.path
            && t.node == from.node
        {
            return Ok(());
        }
        self.flush_tally()?;
        let row = self
            .rows
            .tally(from.node, from.path, from.blob)?
            .unwrap_or_default();
        self.tally = Some(OpenTally {
            node: from.node.to_string(),
            path: from.path.to_string(),
            blob: from.blob.to_string(),
            commit: from.commit.to_string(),
            omitted_before: row.omitted,
            row,
            dirty: false,
        });
        Ok(())
    }

    /// Writes the open tally back, and its summary item when records were omitted.
    pub(super) fn flush_tally(&mut self) -> Result<(), StoreError> {
        let Some(mut t) = self.tally.take() else {
            return Ok(());
        };
        if !t.dirty {
            return Ok(());
        }
        if t.row.omitted > 0 {
            if t.row.summary_id == 0 {
                t.row.summary_id = self.next_rejected_id();
                self.meta.counts.rejected_items += 1;
            }
            let kinds: Vec<String> = t
                .row
                .by_kind
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            let detail = format!(
                "{} more rejected records of {} (blob {}) are counted here, not listed one by \
                 one (the first {REJECTION_SAMPLE} are). By reason: {}. None of them was \
                 applied; fix the file on the node and commit it again",
                t.row.omitted,
                t.path,
                t.blob,
                kinds.join("; ")
            );
            let from = Provenance {
                node: &t.node,
                commit: &t.commit,
                path: &t.path,
                blob: &t.blob,
            };
            let row = from.rejected(RejectReason::Invalid, detail, self.now_ms);
            self.rows.put_rejected(t.row.summary_id, &row)?;
            self.rows
                .put_rejected_count(t.row.summary_id, t.row.omitted)?;
        }
        self.rows.put_tally(&t.node, &t.path, &t.blob, &t.row)?;
        Ok(())
    }
}

/// The kind of a rejection reason: its words before the first value it quotes.
fn reason_kind(reason: &str) -> String {
    let end = [", got", ": ", " (", " `", " \""]
        .iter()
        .filter_map(|sep| reason.find(sep))
        .min()
        .unwrap_or(reason.len())
        .min(80);
    let mut end = end;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::reason_kind;

    #[test]
    fn kinds_leave_out_the_values() {
        assert_eq!(
            reason_kind("cost_cents must be >= 0, got -5"),
            "cost_cents must be >= 0"
        );
        assert_eq!(reason_kind("missing field `user_sid`"), "missing field");
        assert_eq!(
            reason_kind("the record is not valid TOML: invalid integer"),
            "the record is not valid TOML"
        );
        assert_eq!(reason_kind("conflict"), "conflict");
    }
}
