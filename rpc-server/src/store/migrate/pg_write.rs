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
    CONSUMED_INSERT_COLUMNS, CONSUMED_UNNEST, ConsumedColumns, PAYMENT_COLUMNS, PAYMENT_UNNEST,
    PENDING_COLUMNS, PENDING_UNNEST, PaymentColumns, PendingColumns, REJECTED_INSERT_COLUMNS,
    REJECTED_UNNEST, RejectedColumns, SOURCE_INSERT_COLUMNS, SOURCE_UNNEST, SourceColumns,
    TALLY_COLUMNS, TALLY_UNNEST, TallyColumns, USER_COLUMNS, USER_UNNEST, UserColumns, clean,
    to_db, write_meta,
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
        let columns = UserColumns::of(rows.iter().map(|(sid, u)| (sid.as_str(), u)));
        self.exec(
            "users",
            &format!("INSERT INTO users ({USER_COLUMNS}) SELECT * FROM unnest({USER_UNNEST})"),
            &columns.params(),
        )
    }

    fn payments(&mut self, rows: &[(String, PaymentRow)]) -> Result<(), StoreError> {
        let columns = PaymentColumns::of(rows.iter().map(|(id, p)| (id.as_str(), p)));
        self.exec(
            "payments",
            &format!(
                "INSERT INTO payments ({PAYMENT_COLUMNS}) SELECT * FROM unnest({PAYMENT_UNNEST})"
            ),
            &columns.params(),
        )
    }

    fn sources(&mut self, rows: &[(u64, SourceRow)]) -> Result<(), StoreError> {
        let columns = SourceColumns::of(rows.iter().map(|(id, s)| (*id, s)));
        self.exec(
            "consumed_sources",
            &format!(
                "INSERT INTO consumed_sources ({SOURCE_INSERT_COLUMNS}) \
                 SELECT * FROM unnest({SOURCE_UNNEST})"
            ),
            &columns.params(),
        )
    }

    fn consumed(&mut self, rows: &[AppliedRow]) -> Result<(), StoreError> {
        let mut columns = ConsumedColumns::with_capacity(rows.len());
        for r in rows {
            columns.push(
                &r.key,
                r.seq,
                &r.user_sid,
                r.cost_cents,
                r.source,
                r.resource.as_deref(),
            );
        }
        self.exec(
            "consumed",
            &format!(
                "INSERT INTO consumed ({CONSUMED_INSERT_COLUMNS}) \
                 SELECT * FROM unnest({CONSUMED_UNNEST})"
            ),
            &columns.params(),
        )
    }

    fn pending(&mut self, rows: &[(String, PendingRow)]) -> Result<(), StoreError> {
        let columns = PendingColumns::of(rows.iter().map(|(key, p)| (key.as_str(), p)));
        self.exec(
            "pending",
            &format!(
                "INSERT INTO pending ({PENDING_COLUMNS}) SELECT * FROM unnest({PENDING_UNNEST})"
            ),
            &columns.params(),
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
        let columns = TallyColumns::of(rows.iter().map(|(key, t)| (key, t)));
        self.exec(
            "file_tallies",
            &format!(
                "INSERT INTO file_tallies ({TALLY_COLUMNS}) SELECT * FROM unnest({TALLY_UNNEST})"
            ),
            &columns.params(),
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
