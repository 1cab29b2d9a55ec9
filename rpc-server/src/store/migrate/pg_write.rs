//! Writing a migrated ledger into an empty PostgreSQL database: one
//! transaction, a batch per multi-row `INSERT … SELECT * FROM unnest`, as
//! `postgres/rows.rs` writes them.

use postgres::Transaction;

use super::super::StoreError;
use super::super::alerts::{AlertRow, EventRow};
use super::super::codec::{
    MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, RunRow, SourceRow, TallyRow, UserRow,
    status_code,
};
use super::super::postgres::{
    REJECTED_INSERT_COLUMNS, REJECTED_UNNEST, RejectedColumns, clean, to_db, write_meta,
};
use super::super::runs::RunTotals;
use super::pg_read::{connect, context, count, read_meta};
use super::{AppliedRow, Counts, FileKey, Sent, Sink, compare, outbox, rolled_back, seqs_used};

/// Names the operation in an error that does not yet.
fn with_context(op: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Storage(m) if !m.contains(op) => StoreError::Storage(format!("{op}: {m}")),
        StoreError::Io(m) if !m.contains(op) => StoreError::Io(format!("{op}: {m}")),
        other => other,
    }
}

/// Runs `copy` (a reader sending the source's rows) into the empty ledger in
/// the database at `config`, in one transaction; returns the rows copied.
pub(super) fn copy_into(
    config: &tokio_postgres::Config,
    to: &str,
    copy: impl FnOnce(&mut dyn Sink) -> Result<Sent, StoreError>,
) -> Result<Counts, StoreError> {
    let op = format!("copy the ledger into {to}");
    let mut client = connect(config, to)?;
    let mut txn = client.transaction().map_err(|e| context(&op, e))?;
    let (meta, _) = read_meta(&mut txn, true).map_err(|e| with_context(&op, e))?;
    let held = count(&mut txn).map_err(|e| with_context(&op, e))?;
    if held != Counts::default() || seqs_used(&meta) {
        let what = match held.nonzero() {
            none if none.is_empty() => "no rows, but its sequence numbers are in use".to_string(),
            some => some,
        };
        return Err(StoreError::Conflict(format!(
            "the target ledger {to} is not empty: it holds {what}. migrate-ledger copies only \
             into an empty ledger, so that nothing in the target is lost or mixed up: pass \
             --to a new database (createdb NAME), or drop and create this one again if what it \
             holds is not needed; nothing was changed"
        )));
    }
    let sent = copy(&mut PgSink { txn: &mut txn }).map_err(|e| rolled_back(&op, e))?;
    let target = count(&mut txn).map_err(|e| rolled_back(&op, e))?;
    compare(&sent, &target, to)?;
    let default = outbox::pg_default(&mut txn).map_err(|e| rolled_back(&op, e))?;
    outbox::check_default(sent.low_balance_default, default, to)?;
    check_user_sums(&mut txn, to)?;
    txn.commit()
        .map_err(|e| rolled_back(&op, context("commit", e)))?;
    Ok(sent.copied)
}

/// Every user's totals against its payments and applied records, before the
/// commit (the full `verify` runs again after it).
fn check_user_sums(txn: &mut Transaction<'_>, to: &str) -> Result<(), StoreError> {
    let rows = txn
        .query(
            "SELECT u.user_sid FROM users u \
             LEFT JOIN (SELECT user_sid, sum(amount_cents) AS s FROM payments GROUP BY user_sid) \
             p ON p.user_sid = u.user_sid \
             LEFT JOIN (SELECT user_sid, sum(cost_cents) AS s FROM consumed GROUP BY user_sid) \
             c ON c.user_sid = u.user_sid \
             WHERE u.paid_cents <> coalesce(p.s, 0) OR u.consumed_cents <> coalesce(c.s, 0) \
             ORDER BY u.user_sid LIMIT 5",
            &[],
        )
        .map_err(|e| context(&format!("check the copy in {to}"), e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let sids: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    Err(StoreError::Storage(format!(
        "the copy into {to} has users whose totals differ from their payments and applied \
         records ({}); nothing was written. Run `rpc-server verify` on the source",
        sids.join(", ")
    )))
}

/// Writes what a reader sends into the transaction of [`copy_into`].
struct PgSink<'t, 'c> {
    txn: &'t mut Transaction<'c>,
}

impl PgSink<'_, '_> {
    fn exec(
        &mut self,
        table: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        self.txn
            .execute(sql, params)
            .map_err(|e| context(&format!("write table {table}"), e))?;
        Ok(())
    }
}

impl Sink for PgSink<'_, '_> {
    fn meta(&mut self, m: &MetaRow, totals: &RunTotals) -> Result<(), StoreError> {
        let totals = serde_json::to_value(totals)
            .map_err(|e| StoreError::Storage(format!("cannot encode run totals: {e}")))?;
        write_meta(self.txn, m).map_err(|e| with_context("write table ledger_meta", e))?;
        self.exec(
            "ledger_meta",
            "UPDATE ledger_meta SET run_totals = $1 WHERE id = 1",
            &[&totals],
        )
    }

    fn users(&mut self, rows: &[(String, UserRow)]) -> Result<(), StoreError> {
        let sids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let ids: Vec<i64> = rows.iter().map(|r| to_db(r.1.id)).collect();
        let names: Vec<Option<&str>> = rows.iter().map(|r| r.1.display_name.as_deref()).collect();
        let emails: Vec<Option<&str>> = rows.iter().map(|r| r.1.email.as_deref()).collect();
        let created: Vec<i64> = rows.iter().map(|r| to_db(r.1.created_at_ms)).collect();
        let balance: Vec<i64> = rows.iter().map(|r| r.1.balance_cents).collect();
        let paid: Vec<i64> = rows.iter().map(|r| r.1.paid_cents).collect();
        let consumed: Vec<i64> = rows.iter().map(|r| r.1.consumed_cents).collect();
        self.exec(
            "users",
            "INSERT INTO users (user_sid, user_id, display_name, email, created_at_ms, \
             balance_cents, paid_cents, consumed_cents) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], \
             $6::int8[], $7::int8[], $8::int8[])",
            &[
                &sids, &ids, &names, &emails, &created, &balance, &paid, &consumed,
            ],
        )
    }

    fn payments(&mut self, rows: &[(String, PaymentRow)]) -> Result<(), StoreError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| to_db(r.1.seq)).collect();
        let sids: Vec<&str> = rows.iter().map(|r| r.1.user_sid.as_str()).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.1.amount_cents).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.1.kind.as_str()).collect();
        let refs: Vec<Option<&str>> = rows.iter().map(|r| r.1.reference.as_deref()).collect();
        let at: Vec<i64> = rows.iter().map(|r| to_db(r.1.created_at_ms)).collect();
        self.exec(
            "payments",
            "INSERT INTO payments (payment_id, seq, user_sid, amount_cents, kind, reference, \
             created_at_ms) SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], \
             $4::int8[], $5::text[], $6::text[], $7::int8[])",
            &[&ids, &seqs, &sids, &amounts, &kinds, &refs, &at],
        )
    }

    fn sources(&mut self, rows: &[(u64, SourceRow)]) -> Result<(), StoreError> {
        let ids: Vec<i64> = rows.iter().map(|r| to_db(r.0)).collect();
        let nodes: Vec<&str> = rows.iter().map(|r| r.1.node_name.as_str()).collect();
        let commits: Vec<&str> = rows.iter().map(|r| r.1.commit_sha.as_str()).collect();
        let paths: Vec<&str> = rows.iter().map(|r| r.1.file_path.as_str()).collect();
        let at: Vec<i64> = rows.iter().map(|r| to_db(r.1.applied_at_ms)).collect();
        self.exec(
            "consumed_sources",
            "INSERT INTO consumed_sources (source_id, node_name, commit_sha, file_path, \
             applied_at_ms) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], \
             $4::text[], $5::int8[])",
            &[&ids, &nodes, &commits, &paths, &at],
        )
    }

    fn consumed(&mut self, rows: &[AppliedRow]) -> Result<(), StoreError> {
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| to_db(r.seq)).collect();
        let sids: Vec<&str> = rows.iter().map(|r| r.user_sid.as_str()).collect();
        let costs: Vec<i64> = rows.iter().map(|r| r.cost_cents).collect();
        let sources: Vec<i64> = rows.iter().map(|r| to_db(r.source)).collect();
        let resources: Vec<Option<&str>> = rows.iter().map(|r| r.resource.as_deref()).collect();
        self.exec(
            "consumed",
            "INSERT INTO consumed (idempotency_key, seq, user_sid, cost_cents, source_id, \
             resource) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], \
             $6::text[])",
            &[&keys, &seqs, &sids, &costs, &sources, &resources],
        )
    }

    fn pending(&mut self, rows: &[(String, PendingRow)]) -> Result<(), StoreError> {
        let keys: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let sids: Vec<&str> = rows.iter().map(|r| r.1.user_sid.as_str()).collect();
        let nodes: Vec<&str> = rows.iter().map(|r| r.1.node_name.as_str()).collect();
        let costs: Vec<i64> = rows.iter().map(|r| r.1.cost_cents).collect();
        let commits: Vec<&str> = rows.iter().map(|r| r.1.commit_sha.as_str()).collect();
        let paths: Vec<&str> = rows.iter().map(|r| r.1.file_path.as_str()).collect();
        let blobs: Vec<&str> = rows.iter().map(|r| r.1.blob_id.as_str()).collect();
        let index: Vec<i64> = rows.iter().map(|r| i64::from(r.1.record_index)).collect();
        let seen: Vec<i64> = rows.iter().map(|r| to_db(r.1.first_seen_ms)).collect();
        let rejected: Vec<i64> = rows.iter().map(|r| to_db(r.1.rejected_id)).collect();
        let resources: Vec<Option<&str>> = rows.iter().map(|r| r.1.resource.as_deref()).collect();
        self.exec(
            "pending",
            "INSERT INTO pending (idempotency_key, user_sid, node_name, cost_cents, commit_sha, \
             file_path, blob_id, record_index, first_seen_ms, rejected_id, resource) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], \
             $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::text[])",
            &[
                &keys, &sids, &nodes, &costs, &commits, &paths, &blobs, &index, &seen, &rejected,
                &resources,
            ],
        )
    }

    fn rejected(&mut self, rows: &[(u64, RejectedRow, Option<u64>)]) -> Result<(), StoreError> {
        let columns = RejectedColumns::of(rows.iter().map(|(id, r, _)| (*id, r)))?;
        let counts: Vec<Option<i64>> = rows.iter().map(|(_, _, n)| n.map(to_db)).collect();
        let mut params = columns.params().to_vec();
        params.push(&counts);
        self.exec(
            "rejected",
            &format!(
                "INSERT INTO rejected ({REJECTED_INSERT_COLUMNS}, record_count) \
                 SELECT * FROM unnest({REJECTED_UNNEST}, $15::int8[])"
            ),
            &params,
        )
    }

    fn fingerprints(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError> {
        let fps: Vec<&[u8]> = rows.iter().map(|r| r.0.as_bytes()).collect();
        let ids: Vec<i64> = rows.iter().map(|r| to_db(r.1)).collect();
        self.exec(
            "rejected_fingerprints",
            "INSERT INTO rejected_fingerprints (fingerprint, rejected_id) \
             SELECT * FROM unnest($1::bytea[], $2::int8[])",
            &[&fps, &ids],
        )
    }

    fn tallies(&mut self, rows: &[(FileKey, TallyRow)]) -> Result<(), StoreError> {
        let nodes: Vec<&str> = rows.iter().map(|r| r.0.0.as_str()).collect();
        let paths: Vec<&str> = rows.iter().map(|r| r.0.1.as_str()).collect();
        let blobs: Vec<&str> = rows.iter().map(|r| r.0.2.as_str()).collect();
        let next: Vec<i64> = rows.iter().map(|r| to_db(r.1.next_index)).collect();
        let stored: Vec<i64> = rows.iter().map(|r| to_db(r.1.stored)).collect();
        let omitted: Vec<i64> = rows.iter().map(|r| to_db(r.1.omitted)).collect();
        let kinds: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let kinds = r.1.by_kind.iter();
                serde_json::Value::Array(
                    kinds
                        .map(|(k, n)| serde_json::json!([clean(k), n]))
                        .collect(),
                )
            })
            .collect();
        let summary: Vec<i64> = rows.iter().map(|r| to_db(r.1.summary_id)).collect();
        self.exec(
            "file_tallies",
            "INSERT INTO file_tallies (node_name, file_path, blob_id, next_index, stored, \
             omitted, by_kind, summary_id) SELECT * FROM unnest($1::text[], $2::text[], \
             $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::jsonb[], $8::int8[])",
            &[
                &nodes, &paths, &blobs, &next, &stored, &omitted, &kinds, &summary,
            ],
        )
    }

    fn nodes(&mut self, rows: &[(String, NodeRow)]) -> Result<(), StoreError> {
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let trees: Vec<Option<&str>> = rows.iter().map(|r| r.1.tree_id.as_deref()).collect();
        let commits: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.1.last_commit_sha.as_deref())
            .collect();
        let at: Vec<Option<i64>> = rows.iter().map(|r| r.1.last_run_at_ms.map(to_db)).collect();
        let totals: Vec<i64> = rows
            .iter()
            .map(|r| to_db(r.1.records_consumed_total))
            .collect();
        let status: Vec<i16> = rows
            .iter()
            .map(|r| i16::from(status_code::of(r.1.status)))
            .collect();
        let errors: Vec<Option<_>> = rows
            .iter()
            .map(|r| r.1.last_error.as_deref().map(clean))
            .collect();
        self.exec(
            "nodes",
            "INSERT INTO nodes (node_name, tree_id, last_commit_sha, last_run_at_ms, \
             records_consumed_total, status, last_error) SELECT * FROM unnest($1::text[], \
             $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int2[], $7::text[])",
            &[&names, &trees, &commits, &at, &totals, &status, &errors],
        )
    }

    fn consumed_files(&mut self, rows: &[FileKey]) -> Result<(), StoreError> {
        let nodes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let paths: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let blobs: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        self.exec(
            "consumed_files",
            "INSERT INTO consumed_files (node_name, file_path, blob_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
            &[&nodes, &paths, &blobs],
        )
    }

    fn runs(&mut self, rows: &[(RunRow, Option<String>)]) -> Result<(), StoreError> {
        let ids: Vec<i64> = rows.iter().map(|r| to_db(r.0.run_id)).collect();
        let summaries = rows
            .iter()
            .map(|r| super::super::postgres::run_json(&r.0))
            .collect::<Result<Vec<_>, _>>()?;
        let replicas: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        self.exec(
            "runs",
            "INSERT INTO runs (run_id, summary, replica) \
             SELECT * FROM unnest($1::int8[], $2::jsonb[], $3::text[])",
            &[&ids, &summaries, &replicas],
        )
    }

    fn alerts(&mut self, rows: &[(String, AlertRow)]) -> Result<(), StoreError> {
        outbox::write_pg_alerts(self.txn, rows)
    }

    fn events(&mut self, rows: &[(u64, EventRow)]) -> Result<(), StoreError> {
        outbox::write_pg_events(self.txn, rows)
    }

    fn deliveries(&mut self, rows: &[outbox::Delivery]) -> Result<(), StoreError> {
        outbox::write_pg_deliveries(self.txn, rows)
    }

    fn webhook_cursors(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError> {
        outbox::write_pg_cursors(self.txn, rows)
    }

    fn low_balance_default(&mut self, cents: Option<i64>) -> Result<(), StoreError> {
        outbox::write_pg_default(self.txn, cents)
    }
}
