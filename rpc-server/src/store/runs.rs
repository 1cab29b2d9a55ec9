//! The record of aggregation passes.

use billing_api::{AggregateSummary, Page};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{self, META_KEY, MetaRow, RUN_TOTALS_KEY, RunRow};
use super::{RedbStore, StoreError, clamp_limit, page, seq_cursor, tables};

/// Figures over every aggregation run ever recorded, including the runs the
/// runs table no longer keeps (it keeps the last `--keep-runs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTotals {
    pub runs_recorded: u64,
    /// Runs dropped from the runs table (the oldest first).
    pub runs_pruned: u64,
    /// Runs with at least one error.
    pub runs_with_errors: u64,
    pub files_read: u64,
    pub files_rejected: u64,
    pub records_applied: u64,
    pub records_duplicate: u64,
    pub records_conflict: u64,
    pub records_pending: u64,
    pub records_invalid: u64,
    pub cents_debited: i64,
}

impl RunTotals {
    pub(crate) fn add(&mut self, run: &AggregateSummary) {
        self.runs_recorded += 1;
        self.runs_with_errors += u64::from(!run.errors.is_empty());
        self.files_read += run.files_read;
        self.files_rejected += run.files_rejected;
        self.records_applied += run.records_applied;
        self.records_duplicate += run.records_duplicate;
        self.records_conflict += run.records_conflict;
        self.records_pending += run.records_pending;
        self.records_invalid += run.records_invalid;
        self.cents_debited = self.cents_debited.saturating_add(run.cents_debited);
    }
}

/// The stored totals; a ledger from before they existed sums its runs table once.
fn totals_load(txn: &WriteTransaction) -> Result<RunTotals, StoreError> {
    if let Some(bytes) = txn.open_table(tables::META)?.get(RUN_TOTALS_KEY)? {
        return codec::decode_owned(bytes.value(), "run totals");
    }
    let mut totals = RunTotals::default();
    for entry in txn.open_table(tables::RUNS)?.range::<u64>(..)? {
        let (_, bytes) = entry?;
        totals.add(&codec::decode_owned::<RunRow>(bytes.value(), "run")?.to_api());
    }
    Ok(totals)
}

fn meta_load(txn: &WriteTransaction) -> Result<MetaRow, StoreError> {
    let table = txn.open_table(tables::META)?;
    match table.get(META_KEY)? {
        Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
        None => Ok(MetaRow::default()),
    }
}

fn meta_store(txn: &WriteTransaction, meta: &MetaRow) -> Result<(), StoreError> {
    txn.open_table(tables::META)?
        .insert(META_KEY, codec::to_bytes(meta)?.as_slice())?;
    Ok(())
}

impl RedbStore {
    /// Head commit of the last pass that had no errors.
    pub fn clean_head(&self) -> Result<Option<String>, StoreError> {
        self.read("read the clean head", |txn| {
            Ok(Self::meta_read(txn)?.clean_head)
        })
    }

    /// Stores a pass summary under a newly allocated run id (1, 2, 3…), and
    /// `clean_head` if given; returns the run id. Summaries a storage failure
    /// kept from being recorded are recorded first, in the same transaction.
    /// If the storage fails now, the summary is kept in memory and recorded
    /// once the ledger works again. Keeps only the last `keep_runs` runs.
    pub fn record_run(
        &self,
        summary: &AggregateSummary,
        clean_head: Option<&str>,
    ) -> Result<u64, StoreError> {
        let result = self.record_runs(Some((summary, clean_head)));
        if let Err(StoreError::Io(_)) = &result {
            self.defer_run(summary.clone(), clean_head.map(str::to_string));
        }
        result
    }

    /// Records the summaries kept during a storage failure; returns how many.
    pub(super) fn record_deferred_runs(&self) -> Result<usize, StoreError> {
        let before = self.deferred_runs();
        self.record_runs(None)?;
        Ok(before)
    }

    fn record_runs(
        &self,
        new: Option<(&AggregateSummary, Option<&str>)>,
    ) -> Result<u64, StoreError> {
        let mut deferred = self
            .shared
            .deferred_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep = self.shared.keep_runs;
        let runs = deferred.iter().map(|(s, h)| (s, h.as_deref())).chain(new);
        let run_id = self.write("record an aggregation run", |txn| {
            let mut meta = meta_load(txn)?;
            let mut totals = totals_load(txn)?;
            let mut table = txn.open_table(tables::RUNS)?;
            for (summary, clean_head) in runs {
                meta.run_seq += 1;
                if let Some(head) = clean_head {
                    meta.clean_head = Some(head.to_string());
                }
                let mut stored = summary.clone();
                stored.run_id = meta.run_seq;
                table.insert(
                    meta.run_seq,
                    codec::to_bytes(&RunRow::from_api(&stored))?.as_slice(),
                )?;
                totals.add(&stored);
            }
            let excess = table.len()?.saturating_sub(keep);
            if excess > 0 {
                let oldest: Vec<u64> = table
                    .range::<u64>(..)?
                    .take(excess as usize)
                    .map(|e| e.map(|(id, _)| id.value()))
                    .collect::<Result<_, _>>()?;
                for id in oldest {
                    table.remove(id)?;
                }
                totals.runs_pruned += excess;
            }
            drop(table);
            txn.open_table(tables::META)?
                .insert(RUN_TOTALS_KEY, codec::to_bytes(&totals)?.as_slice())?;
            meta_store(txn, &meta)?;
            Ok(meta.run_seq)
        })?;
        deferred.clear();
        Ok(run_id)
    }

    /// Figures over every run recorded, pruned ones included.
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        self.read("read the run totals", |txn| {
            let meta = txn.open_table(tables::META)?;
            if let Some(bytes) = meta.get(RUN_TOTALS_KEY)? {
                return codec::decode_owned(bytes.value(), "run totals");
            }
            // Runs recorded before the totals existed: sum them.
            let mut totals = RunTotals::default();
            for entry in txn.open_table(tables::RUNS)?.range::<u64>(..)? {
                let (_, bytes) = entry?;
                totals.add(&codec::decode_owned::<RunRow>(bytes.value(), "run")?.to_api());
            }
            Ok(totals)
        })
    }

    /// The run id the next `record_run` will allocate.
    pub fn next_run_id(&self) -> Result<u64, StoreError> {
        self.read("read the run counter", |txn| {
            Ok(Self::meta_read(txn)?.run_seq + 1)
        })
    }

    pub fn last_run(&self) -> Result<Option<AggregateSummary>, StoreError> {
        self.read("read the last run", |txn| {
            let runs = txn.open_table(tables::RUNS)?;
            match runs.last()? {
                Some((_, bytes)) => Ok(Some(
                    codec::decode_owned::<RunRow>(bytes.value(), "run")?.to_api(),
                )),
                None => Ok(None),
            }
        })
    }

    /// Aggregation runs, newest first; the cursor is a run id.
    pub fn list_runs(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AggregateSummary>, StoreError> {
        let limit = clamp_limit(limit);
        let before = seq_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list runs", |txn| {
            let runs = txn.open_table(tables::RUNS)?;
            let mut items = Vec::with_capacity(limit + 1);
            for entry in runs.range(..before)?.rev().take(limit + 1) {
                let (id, bytes) = entry?;
                let summary = codec::decode_owned::<RunRow>(bytes.value(), "run")?.to_api();
                items.push((id.value().to_string(), summary));
            }
            Ok(page(items, limit))
        })
    }
}
