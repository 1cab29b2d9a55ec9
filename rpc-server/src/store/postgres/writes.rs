//! Writes on PostgreSQL: the same ledger rules as on redb, each operation in
//! one transaction whose rows are read and written in batches.

use billing_api::otoml::MAX_NODE_NAME_BYTES;
use billing_api::{AggregateSummary, Payment, RecordPayment, RegisterUser, UserBilling};

use super::super::chunks::{NodeChunk, apply_items};
use super::super::codec::{NodeRow, RunRow};
use super::super::ledger::LedgerTxn;
use super::super::payments::{NewPayment, credit_group, group_op};
use super::super::runs::RunTotals;
use super::super::users::{check_registrations, register_into};
use super::super::{ApplyOutcome, LedgerCounts, StoreError, check_identifier};
use super::columns::{read_meta, write_meta};
use super::rows::PgRows;
use super::{PgStore, db_err, lock, to_db};

impl PgStore {
    /// Applies one chunk of a node's new files in one transaction.
    pub fn apply_chunk(&self, chunk: &NodeChunk, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        check_identifier("node_name", &chunk.node_name, MAX_NODE_NAME_BYTES)?;
        let op = format!(
            "apply usage of node `{}` at commit {}",
            chunk.node_name, chunk.head_commit
        );
        self.write_pass(&op, |txn| {
            let mut rows = PgRows::lock(txn)?;
            rows.prefetch(&chunk.node_name, &chunk.items)?;
            let ledger = LedgerTxn::open(&mut rows, now_ms)?;
            let (outcome, _, _) = apply_items(ledger, chunk, 0, now_ms, || false)?;
            rows.flush()?;
            Ok(outcome)
        })
    }

    /// Applies every held record whose user now exists.
    pub fn apply_pending(&self, now_ms: u64) -> Result<ApplyOutcome, StoreError> {
        self.write_pass("apply held records", |txn| {
            let mut rows = PgRows::lock(txn)?;
            let mut ledger = LedgerTxn::open(&mut rows, now_ms)?;
            if ledger.meta.counts.pending_records == 0 {
                return Ok(ApplyOutcome::default());
            }
            for sid in ledger.held_users()? {
                if ledger.user(&sid)?.is_some() {
                    ledger.apply_held(&sid)?;
                }
            }
            let outcome = ledger.finish()?;
            rows.flush()?;
            Ok(outcome)
        })
    }

    pub fn register_users(
        &self,
        reqs: &[RegisterUser],
        now_ms: u64,
    ) -> Result<Vec<UserBilling>, StoreError> {
        let what = check_registrations(reqs)?;
        self.write(&what, |txn| {
            let mut rows = PgRows::lock(txn)?;
            let sids: Vec<&str> = reqs.iter().map(|r| r.user_sid.as_str()).collect();
            rows.prefetch_users(&sids)?;
            let out = register_into(LedgerTxn::open(&mut rows, now_ms)?, reqs, now_ms)?;
            rows.flush()?;
            Ok(out)
        })
    }

    /// Credits a payment; payments waiting together commit in one transaction.
    pub fn record_payment(&self, req: &RecordPayment, now_ms: u64) -> Result<Payment, StoreError> {
        let payment = NewPayment::check(req, now_ms)?;
        self.shared
            .payments
            .submit(payment, |group| self.commit_payments(group))
    }

    fn commit_payments(
        &self,
        group: &[NewPayment],
    ) -> Result<Vec<Result<Payment, StoreError>>, StoreError> {
        let Some(op) = group_op(group) else {
            return Ok(Vec::new());
        };
        self.write(&op, |txn| {
            let mut rows = PgRows::lock(txn)?;
            let results = credit_group(LedgerTxn::open(&mut rows, group[0].now_ms())?, group)?;
            rows.flush()?;
            Ok(results)
        })
    }

    /// Records that a pass failed on this node; its consumed position is kept.
    pub fn node_failed(&self, node_name: &str, error: &str, now_ms: u64) -> Result<(), StoreError> {
        self.write_pass(
            &format!("record the failure of node `{node_name}`"),
            |txn| {
                let mut rows = PgRows::lock(txn)?;
                let mut ledger = LedgerTxn::open(&mut rows, now_ms)?;
                ledger.set_node_state(node_name, |row: &mut NodeRow| {
                    row.status = billing_api::NodeStatus::Error;
                    row.last_error = Some(error.to_string());
                    row.last_run_at_ms = Some(now_ms);
                })?;
                ledger.finish()?;
                rows.flush()
            },
        )
    }

    /// Stores a pass summary under a new run id (and any kept by an earlier
    /// failure before it), and `clean_head` if given; returns the run id.
    pub fn record_run(
        &self,
        summary: &AggregateSummary,
        clean_head: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut deferred = lock(&self.shared.deferred_runs);
        let keep = self.shared.keep_runs;
        let runs: Vec<(&AggregateSummary, Option<&str>)> = deferred
            .iter()
            .map(|(s, h)| (s, h.as_deref()))
            .chain(std::iter::once((summary, clean_head)))
            .collect();
        let replica = super::lock(&self.shared.replica).clone();
        let result = self.write_pass("record an aggregation run", |txn| {
            let mut meta = read_meta(txn, true)?;
            let totals: serde_json::Value = txn
                .query_one("SELECT run_totals FROM ledger_meta WHERE id = 1", &[])
                .map_err(db_err)?
                .get(0);
            let mut totals: RunTotals = serde_json::from_value(totals).unwrap_or_default();
            for (summary, head) in &runs {
                meta.run_seq += 1;
                if let Some(head) = head {
                    meta.clean_head = Some(head.to_string());
                }
                let mut stored = (*summary).clone();
                stored.run_id = meta.run_seq;
                let row = super::run_json(&RunRow::from_api(&stored))?;
                txn.execute(
                    "INSERT INTO runs (run_id, summary, replica) VALUES ($1, $2, $3)",
                    &[&to_db(meta.run_seq), &row, &replica],
                )
                .map_err(db_err)?;
                totals.add(&stored);
            }
            let pruned = txn
                .execute(
                    "DELETE FROM runs WHERE run_id <= $1",
                    &[&(to_db(meta.run_seq) - to_db(keep))],
                )
                .map_err(db_err)?;
            totals.runs_pruned += pruned;
            write_meta(txn, &meta)?;
            let totals = serde_json::to_value(totals)
                .map_err(|e| StoreError::Storage(format!("cannot encode run totals: {e}")))?;
            txn.execute(
                "UPDATE ledger_meta SET run_totals = $1 WHERE id = 1",
                &[&totals],
            )
            .map_err(db_err)?;
            Ok(meta.run_seq)
        });
        match &result {
            Ok(_) => deferred.clear(),
            Err(StoreError::Io(_)) => {
                deferred.push((summary.clone(), clean_head.map(str::to_string)));
            }
            Err(_) => {}
        }
        result
    }

    /// Rewrites the stored counters from the rows (`verify --repair`).
    pub fn repair_counters(&self) -> Result<LedgerCounts, StoreError> {
        self.write("rewrite the ledger counters", |txn| {
            let mut meta = read_meta(txn, true)?;
            meta.counts = super::queries::recount_in(txn)?;
            write_meta(txn, &meta)?;
            Ok(meta.counts)
        })
    }
}
