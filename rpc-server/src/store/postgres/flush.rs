//! The batched writes that end a ledger transaction on PostgreSQL
//! ([`super::rows::PgRows::flush`]): one multi-row statement per table,
//! through `unnest` arrays.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use postgres::Transaction;

use super::super::StoreError;
use super::super::codec::{
    MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, SourceRow, TallyRow, UserRow,
    status_code,
};
use super::super::user_index::balance_version;
use super::arrays::{
    CONSUMED_INSERT_COLUMNS, CONSUMED_UNNEST, ConsumedColumns, PAYMENT_UNNEST, PENDING_UNNEST,
    PaymentColumns, PendingColumns, REJECTED_INSERT_COLUMNS, REJECTED_UNNEST, RejectedColumns,
    SOURCE_INSERT_COLUMNS, SOURCE_UNNEST, SourceColumns, TALLY_UNNEST, TallyColumns, USER_UNNEST,
    UserColumns,
};
use super::columns::{PAYMENT_COLUMNS, PENDING_COLUMNS, TALLY_COLUMNS, USER_COLUMNS};
use super::rows::{Applied, FileKey};
use super::{clean, db_err, to_db};

/// The batched writes of [`PgRows::flush`].
pub(super) struct Flush<'t, 'c> {
    pub txn: &'t mut Transaction<'c>,
}

impl Flush<'_, '_> {
    fn exec(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        self.txn.execute(sql, params).map_err(db_err)?;
        Ok(())
    }

    pub fn sources(
        &mut self,
        ids: &[u64],
        rows: &HashMap<u64, SourceRow>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let columns = SourceColumns::of(ids.iter().map(|id| (*id, &rows[id])));
        self.exec(
            &format!(
                "INSERT INTO consumed_sources ({SOURCE_INSERT_COLUMNS}) \
                 SELECT * FROM unnest({SOURCE_UNNEST})"
            ),
            &columns.params(),
        )
    }

    /// Writes the users, with each balance that changed the ledger's balance
    /// version after this transaction (`meta`; see `user_index.rs`).
    pub fn users(
        &mut self,
        dirty: &BTreeSet<String>,
        users: &HashMap<String, Option<UserRow>>,
        meta: Option<&MetaRow>,
    ) -> Result<(), StoreError> {
        let version = meta.map_or(0, balance_version);
        let columns = UserColumns::of(dirty.iter().filter_map(|sid| {
            users
                .get(sid)
                .and_then(Option::as_ref)
                .map(|u| (sid.as_str(), u))
        }));
        if columns.is_empty() {
            return Ok(());
        }
        let version = to_db(version);
        let mut params = columns.params().to_vec();
        params.push(&version);
        // SET reads the row as it was: its balance before this transaction.
        self.exec(
            &format!(
                "INSERT INTO users ({USER_COLUMNS}, balance_changed_seq) \
                 SELECT *, $9::int8 FROM unnest({USER_UNNEST}) \
                 ON CONFLICT (user_sid) DO UPDATE SET display_name = EXCLUDED.display_name, \
                 email = EXCLUDED.email, balance_cents = EXCLUDED.balance_cents, \
                 paid_cents = EXCLUDED.paid_cents, consumed_cents = EXCLUDED.consumed_cents, \
                 balance_changed_seq = CASE WHEN users.balance_cents = EXCLUDED.balance_cents \
                 THEN users.balance_changed_seq ELSE EXCLUDED.balance_changed_seq END"
            ),
            &params,
        )
    }

    pub fn consumed(
        &mut self,
        new: &[(String, u64)],
        applied: &HashMap<u64, Applied>,
    ) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut columns = ConsumedColumns::with_capacity(new.len());
        for (key, seq) in new {
            let a = applied.get(seq).ok_or_else(|| {
                StoreError::Storage(format!("key `{key}` was claimed but its row never written"))
            })?;
            columns.push(
                key,
                a.seq,
                &a.user_sid,
                a.cost_cents,
                a.source,
                a.resource.as_deref(),
            );
        }
        // No ON CONFLICT: a key applied by another writer fails the whole
        // transaction (the primary key is the last guard of exactly-once).
        self.exec(
            &format!(
                "INSERT INTO consumed ({CONSUMED_INSERT_COLUMNS}) \
                 SELECT * FROM unnest({CONSUMED_UNNEST})"
            ),
            &columns.params(),
        )
    }

    pub fn payments(
        &mut self,
        new: &[String],
        payments: &HashMap<String, Option<PaymentRow>>,
    ) -> Result<(), StoreError> {
        let columns = PaymentColumns::of(new.iter().filter_map(|id| {
            payments
                .get(id)
                .and_then(Option::as_ref)
                .map(|p| (id.as_str(), p))
        }));
        if columns.is_empty() {
            return Ok(());
        }
        self.exec(
            &format!(
                "INSERT INTO payments ({PAYMENT_COLUMNS}) SELECT * FROM unnest({PAYMENT_UNNEST})"
            ),
            &columns.params(),
        )
    }

    pub fn pending(
        &mut self,
        dirty: &BTreeSet<String>,
        pending: &HashMap<String, Option<PendingRow>>,
    ) -> Result<(), StoreError> {
        if dirty.is_empty() {
            return Ok(());
        }
        let gone: Vec<&str> = dirty
            .iter()
            .filter(|k| matches!(pending.get(*k), Some(None) | None))
            .map(String::as_str)
            .collect();
        if !gone.is_empty() {
            self.exec(
                "DELETE FROM pending WHERE idempotency_key = ANY($1)",
                &[&gone],
            )?;
        }
        let columns = PendingColumns::of(dirty.iter().filter_map(|k| {
            pending
                .get(k)
                .and_then(Option::as_ref)
                .map(|p| (k.as_str(), p))
        }));
        if columns.is_empty() {
            return Ok(());
        }
        self.exec(
            &format!(
                "INSERT INTO pending ({PENDING_COLUMNS}) SELECT * FROM unnest({PENDING_UNNEST}) \
                 ON CONFLICT (idempotency_key) DO UPDATE SET user_sid = EXCLUDED.user_sid, \
                 node_name = EXCLUDED.node_name, cost_cents = EXCLUDED.cost_cents, \
                 commit_sha = EXCLUDED.commit_sha, file_path = EXCLUDED.file_path, \
                 blob_id = EXCLUDED.blob_id, record_index = EXCLUDED.record_index, \
                 first_seen_ms = EXCLUDED.first_seen_ms, rejected_id = EXCLUDED.rejected_id, \
                 resource = EXCLUDED.resource"
            ),
            &columns.params(),
        )
    }

    pub fn rejected(
        &mut self,
        rejected: &BTreeMap<u64, Option<RejectedRow>>,
        counts: &BTreeMap<u64, u64>,
    ) -> Result<(), StoreError> {
        let gone: Vec<i64> = rejected
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(id, _)| to_db(*id))
            .collect();
        if !gone.is_empty() {
            self.exec("DELETE FROM rejected WHERE rejected_id = ANY($1)", &[&gone])?;
        }
        let rows = RejectedColumns::of(
            rejected
                .iter()
                .filter_map(|(id, r)| r.as_ref().map(|r| (*id, r))),
        )?;
        if !rows.is_empty() {
            self.exec(
                &format!(
                    "INSERT INTO rejected ({REJECTED_INSERT_COLUMNS}) \
                     SELECT * FROM unnest({REJECTED_UNNEST}) \
                     ON CONFLICT (rejected_id) DO UPDATE SET detail = EXCLUDED.detail, \
                     first_seen_ms = EXCLUDED.first_seen_ms, commit_sha = EXCLUDED.commit_sha"
                ),
                &rows.params(),
            )?;
        }
        if !counts.is_empty() {
            let ids: Vec<i64> = counts.keys().map(|id| to_db(*id)).collect();
            let n: Vec<i64> = counts.values().map(|n| to_db(*n)).collect();
            self.exec(
                "UPDATE rejected r SET record_count = u.n \
                 FROM unnest($1::int8[], $2::int8[]) AS u(id, n) WHERE r.rejected_id = u.id",
                &[&ids, &n],
            )?;
        }
        Ok(())
    }

    pub fn fingerprints(
        &mut self,
        dirty: &BTreeSet<String>,
        fps: &HashMap<String, Option<u64>>,
    ) -> Result<(), StoreError> {
        let gone: Vec<&[u8]> = dirty
            .iter()
            .filter(|f| matches!(fps.get(*f), Some(None) | None))
            .map(|f| f.as_bytes())
            .collect();
        if !gone.is_empty() {
            self.exec(
                "DELETE FROM rejected_fingerprints WHERE fingerprint = ANY($1)",
                &[&gone],
            )?;
        }
        let rows: Vec<(&[u8], i64)> = dirty
            .iter()
            .filter_map(|f| {
                fps.get(f)
                    .copied()
                    .flatten()
                    .map(|id| (f.as_bytes(), to_db(id)))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let keys: Vec<&[u8]> = rows.iter().map(|r| r.0).collect();
        let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
        self.exec(
            "INSERT INTO rejected_fingerprints (fingerprint, rejected_id) \
             SELECT * FROM unnest($1::bytea[], $2::int8[]) \
             ON CONFLICT (fingerprint) DO UPDATE SET rejected_id = EXCLUDED.rejected_id",
            &[&keys, &ids],
        )
    }

    pub fn tallies(
        &mut self,
        dirty: &BTreeSet<FileKey>,
        tallies: &HashMap<FileKey, Option<TallyRow>>,
    ) -> Result<(), StoreError> {
        let columns = TallyColumns::of(
            dirty
                .iter()
                .filter_map(|k| tallies.get(k).and_then(Option::as_ref).map(|t| (k, t))),
        );
        if columns.is_empty() {
            return Ok(());
        }
        self.exec(
            &format!(
                "INSERT INTO file_tallies ({TALLY_COLUMNS}) SELECT * FROM unnest({TALLY_UNNEST}) \
                 ON CONFLICT (node_name, file_path, blob_id) DO UPDATE SET \
                 next_index = EXCLUDED.next_index, stored = EXCLUDED.stored, \
                 omitted = EXCLUDED.omitted, by_kind = EXCLUDED.by_kind, \
                 summary_id = EXCLUDED.summary_id"
            ),
            &columns.params(),
        )
    }

    pub fn nodes(
        &mut self,
        dirty: &BTreeSet<String>,
        nodes: &HashMap<String, Option<NodeRow>>,
    ) -> Result<(), StoreError> {
        for name in dirty {
            let Some(Some(row)) = nodes.get(name) else {
                continue;
            };
            upsert_node(self.txn, name, row)?;
        }
        Ok(())
    }

    pub fn files(&mut self, files: &BTreeMap<(String, String), String>) -> Result<(), StoreError> {
        if files.is_empty() {
            return Ok(());
        }
        let nodes: Vec<&str> = files.keys().map(|k| k.0.as_str()).collect();
        let paths: Vec<&str> = files.keys().map(|k| k.1.as_str()).collect();
        let blobs: Vec<&str> = files.values().map(String::as_str).collect();
        self.exec(
            "INSERT INTO consumed_files (node_name, file_path, blob_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT (node_name, file_path) DO UPDATE SET blob_id = EXCLUDED.blob_id",
            &[&nodes, &paths, &blobs],
        )
    }
}

/// Writes one node's row.
fn upsert_node(txn: &mut Transaction<'_>, name: &str, row: &NodeRow) -> Result<(), StoreError> {
    txn.execute(
        "INSERT INTO nodes (node_name, tree_id, last_commit_sha, last_run_at_ms, \
         records_consumed_total, status, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (node_name) DO UPDATE SET tree_id = EXCLUDED.tree_id, \
         last_commit_sha = EXCLUDED.last_commit_sha, last_run_at_ms = EXCLUDED.last_run_at_ms, \
         records_consumed_total = EXCLUDED.records_consumed_total, status = EXCLUDED.status, \
         last_error = EXCLUDED.last_error",
        &[
            &name,
            &row.tree_id,
            &row.last_commit_sha,
            &row.last_run_at_ms.map(to_db),
            &to_db(row.records_consumed_total),
            &i16::from(status_code::of(row.status)),
            &row.last_error.as_deref().map(clean),
        ],
    )
    .map_err(db_err)?;
    Ok(())
}
