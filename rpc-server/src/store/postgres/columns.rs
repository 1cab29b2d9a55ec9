//! How the ledger's rows map to PostgreSQL columns: the column list of each
//! table as queries select it, and the row read back from it; the meta row's
//! read (with its lock) and write.

use postgres::Transaction;

use super::super::codec::{
    MetaRow, NodeRow, PaymentRow, PendingRow, TallyRow, UserRow, status_code,
};
use super::super::{LedgerCounts, StoreError};
use super::rows::FileKey;
use super::{db_err, from_db, to_db};

const META_COLUMNS: &str = "total_users, total_balance_cents::text, overdrawn_users, \
     consumed_records, pending_records, rejected_items, consumed_seq, payment_seq, rejected_seq, \
     run_seq, user_seq, group_seq, source_seq, clean_head";

/// The meta row of a query selecting [`META_COLUMNS`].
pub(super) fn meta_of(row: &postgres::Row) -> Result<MetaRow, StoreError> {
    let total: String = row.get(1);
    let total_balance_cents = total.parse::<i128>().map_err(|e| {
        StoreError::Storage(format!(
            "ledger_meta.total_balance_cents `{total}` is not a whole number ({e})"
        ))
    })?;
    Ok(MetaRow {
        counts: LedgerCounts {
            total_users: from_db(row.get(0)),
            total_balance_cents,
            overdrawn_users: from_db(row.get(2)),
            consumed_records: from_db(row.get(3)),
            pending_records: from_db(row.get(4)),
            rejected_items: from_db(row.get(5)),
        },
        consumed_seq: from_db(row.get(6)),
        payment_seq: from_db(row.get(7)),
        rejected_seq: from_db(row.get(8)),
        run_seq: from_db(row.get(9)),
        user_seq: from_db(row.get(10)),
        group_seq: from_db(row.get(11)),
        source_seq: from_db(row.get(12)),
        clean_head: row.get(13),
    })
}

/// Reads the meta row; `lock` takes its row lock, which orders every writer.
pub(super) fn read_meta(txn: &mut Transaction<'_>, lock: bool) -> Result<MetaRow, StoreError> {
    let sql = format!(
        "SELECT {META_COLUMNS} FROM ledger_meta WHERE id = 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = txn.query_one(&sql, &[]).map_err(db_err)?;
    meta_of(&row)
}

/// Writes the meta row (the caller holds its lock).
pub(crate) fn write_meta(txn: &mut Transaction<'_>, m: &MetaRow) -> Result<(), StoreError> {
    let c = &m.counts;
    txn.execute(
        "UPDATE ledger_meta SET total_users = $1, total_balance_cents = $2::text::numeric, \
         overdrawn_users = $3, consumed_records = $4, pending_records = $5, rejected_items = $6, \
         consumed_seq = $7, payment_seq = $8, rejected_seq = $9, run_seq = $10, user_seq = $11, \
         group_seq = $12, source_seq = $13, clean_head = $14 WHERE id = 1",
        &[
            &to_db(c.total_users),
            &c.total_balance_cents.to_string(),
            &to_db(c.overdrawn_users),
            &to_db(c.consumed_records),
            &to_db(c.pending_records),
            &to_db(c.rejected_items),
            &to_db(m.consumed_seq),
            &to_db(m.payment_seq),
            &to_db(m.rejected_seq),
            &to_db(m.run_seq),
            &to_db(m.user_seq),
            &to_db(m.group_seq),
            &to_db(m.source_seq),
            &m.clean_head,
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(crate) const USER_COLUMNS: &str = "user_sid, user_id, display_name, email, created_at_ms, balance_cents, paid_cents, consumed_cents";

pub(super) fn user_of(row: &postgres::Row) -> (String, UserRow) {
    (
        row.get(0),
        UserRow {
            id: from_db(row.get(1)),
            last_group: 0,
            display_name: row.get(2),
            email: row.get(3),
            created_at_ms: from_db(row.get(4)),
            balance_cents: row.get(5),
            paid_cents: row.get(6),
            consumed_cents: row.get(7),
        },
    )
}

pub(crate) const PENDING_COLUMNS: &str = "idempotency_key, user_sid, node_name, cost_cents, commit_sha, \
     file_path, blob_id, record_index, first_seen_ms, rejected_id, resource";
/// How many columns `PENDING_COLUMNS` names: the index of a column selected after them.
pub(super) const PENDING_WIDTH: usize = 11;

pub(super) fn pending_of(row: &postgres::Row) -> (String, PendingRow) {
    (
        row.get(0),
        PendingRow {
            user_sid: row.get(1),
            node_name: row.get(2),
            cost_cents: row.get(3),
            commit_sha: row.get(4),
            file_path: row.get(5),
            blob_id: row.get(6),
            record_index: u32::try_from(row.get::<_, i64>(7)).unwrap_or(u32::MAX),
            first_seen_ms: from_db(row.get(8)),
            rejected_id: from_db(row.get(9)),
            resource: row.get(10),
        },
    )
}

pub(super) const APPLIED_COLUMNS: &str = "c.idempotency_key, c.seq, c.user_sid, c.cost_cents, c.source_id, \
     s.node_name, s.commit_sha, s.file_path, s.applied_at_ms";

pub(crate) const TALLY_COLUMNS: &str =
    "node_name, file_path, blob_id, next_index, stored, omitted, by_kind, summary_id";

pub(super) fn tally_of(row: &postgres::Row) -> Result<(FileKey, TallyRow), StoreError> {
    let by_kind: serde_json::Value = row.get(6);
    let by_kind = serde_json::from_value(by_kind)
        .map_err(|e| StoreError::Storage(format!("a stored file tally cannot be read ({e})")))?;
    Ok((
        (row.get(0), row.get(1), row.get(2)),
        TallyRow {
            next_index: from_db(row.get(3)),
            stored: from_db(row.get(4)),
            omitted: from_db(row.get(5)),
            by_kind,
            summary_id: from_db(row.get(7)),
        },
    ))
}

pub(super) const NODE_COLUMNS: &str = "node_name, tree_id, last_commit_sha, last_run_at_ms, \
     records_consumed_total, status, last_error";

pub(super) fn node_of(row: &postgres::Row) -> Result<(String, NodeRow), StoreError> {
    let code: i16 = row.get(5);
    let status = u8::try_from(code)
        .ok()
        .and_then(status_code::status)
        .ok_or_else(|| StoreError::Storage(format!("unknown node status code {code}")))?;
    Ok((
        row.get(0),
        NodeRow {
            tree_id: row.get(1),
            last_commit_sha: row.get(2),
            last_run_at_ms: row.get::<_, Option<i64>>(3).map(from_db),
            records_consumed_total: from_db(row.get(4)),
            status,
            last_error: row.get(6),
        },
    ))
}

pub(crate) const PAYMENT_COLUMNS: &str =
    "payment_id, seq, user_sid, amount_cents, kind, reference, created_at_ms";

pub(super) fn payment_of(row: &postgres::Row) -> (String, PaymentRow) {
    (
        row.get(0),
        PaymentRow {
            seq: from_db(row.get(1)),
            user_sid: row.get(2),
            amount_cents: row.get(3),
            kind: row.get(4),
            reference: row.get(5),
            created_at_ms: from_db(row.get(6)),
        },
    )
}
