//! [`Rows`] over PostgreSQL, inside one transaction. A round trip per record
//! would cap a pass at a few thousand records a second, so rows are read in
//! batches before the ledger runs (`prefetch`: every user, applied key, held
//! key and file tally a chunk names), looked up one by one only on a miss
//! (rare paths: conflicts, fingerprints), and written in batches at the end
//! (`flush`: one multi-row statement per table, through `unnest` arrays).
//!
//! The caches hold the transaction's view: a read after a write sees the
//! write. What a key ends as (written or removed) is what `flush` sends.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use billing_api::ConsumedRecord;
use postgres::Transaction;

use super::super::StoreError;
use super::super::codec::{
    ConsumedRow, MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, SourceRow, TallyRow,
    UserRow,
};
use super::super::ledger::Rows;
use super::super::user_index::SortKeys;
use super::alert_rows::PgAlerts;
use super::columns::{
    NODE_COLUMNS, PAYMENT_COLUMNS, PENDING_COLUMNS, PENDING_WIDTH, TALLY_COLUMNS, node_of,
    payment_of, pending_of, read_meta, tally_of, write_meta,
};
use super::flush::Flush;
use super::{db_err, from_db, to_db};

mod prefetch;
use crate::store::alerts::outbox::DeliveryRow;
use crate::store::alerts::{AlertRow, EventRow};

/// An applied record as the consumed index holds it.
#[derive(Clone)]
pub(super) struct Applied {
    pub seq: u64,
    pub user_sid: String,
    pub cost_cents: i64,
    pub source: u64,
    /// Kept for new rows only (the flush writes it); rows read back for the
    /// dedup checks leave it out.
    pub resource: Option<String>,
}

pub(super) type FileKey = (String, String, String);

/// The rows of one ledger transaction on PostgreSQL.
pub(crate) struct PgRows<'t, 'c> {
    txn: &'t mut Transaction<'c>,
    meta: Option<MetaRow>,
    meta_dirty: bool,
    users: HashMap<String, Option<UserRow>>,
    users_dirty: BTreeSet<String>,
    /// Key -> seq of its consumed row (`None`: not applied).
    keys: HashMap<String, Option<u64>>,
    applied: HashMap<u64, Applied>,
    new_applied: Vec<(String, u64)>,
    sources: HashMap<u64, SourceRow>,
    new_sources: Vec<u64>,
    pending: HashMap<String, Option<PendingRow>>,
    pending_dirty: BTreeSet<String>,
    /// Rejected items written (`Some`) or removed (`None`) in this transaction.
    rejected: BTreeMap<u64, Option<RejectedRow>>,
    rejected_exists: HashMap<u64, bool>,
    record_counts: BTreeMap<u64, u64>,
    fingerprints: HashMap<String, Option<u64>>,
    fingerprints_dirty: BTreeSet<String>,
    tallies: HashMap<FileKey, Option<TallyRow>>,
    tallies_dirty: BTreeSet<FileKey>,
    nodes: HashMap<String, Option<NodeRow>>,
    nodes_dirty: BTreeSet<String>,
    files: BTreeMap<(String, String), String>,
    payments: HashMap<String, Option<PaymentRow>>,
    new_payments: Vec<String>,
    alerts: PgAlerts,
}

impl<'t, 'c> PgRows<'t, 'c> {
    /// Starts a ledger transaction's rows by locking the meta row: every
    /// writer takes that lock first, so every row read after it is the latest
    /// committed one and stays so until this transaction ends. (Rows read
    /// before it could be stale by the time the lock is granted.)
    pub fn lock(txn: &'t mut Transaction<'c>) -> Result<Self, StoreError> {
        let meta = read_meta(txn, true)?;
        Ok(PgRows {
            txn,
            meta: Some(meta),
            meta_dirty: false,
            users: HashMap::new(),
            users_dirty: BTreeSet::new(),
            keys: HashMap::new(),
            applied: HashMap::new(),
            new_applied: Vec::new(),
            sources: HashMap::new(),
            new_sources: Vec::new(),
            pending: HashMap::new(),
            pending_dirty: BTreeSet::new(),
            rejected: BTreeMap::new(),
            rejected_exists: HashMap::new(),
            record_counts: BTreeMap::new(),
            fingerprints: HashMap::new(),
            fingerprints_dirty: BTreeSet::new(),
            tallies: HashMap::new(),
            tallies_dirty: BTreeSet::new(),
            nodes: HashMap::new(),
            nodes_dirty: BTreeSet::new(),
            files: BTreeMap::new(),
            payments: HashMap::new(),
            new_payments: Vec::new(),
            alerts: PgAlerts::default(),
        })
    }

    /// Writes everything this transaction changed, in batches.
    pub fn flush(self) -> Result<(), StoreError> {
        let mut w = Flush { txn: self.txn };
        w.sources(&self.new_sources, &self.sources)?;
        w.users(&self.users_dirty, &self.users, self.meta.as_ref())?;
        w.consumed(&self.new_applied, &self.applied)?;
        w.payments(&self.new_payments, &self.payments)?;
        w.pending(&self.pending_dirty, &self.pending)?;
        w.rejected(&self.rejected, &self.record_counts)?;
        w.fingerprints(&self.fingerprints_dirty, &self.fingerprints)?;
        w.tallies(&self.tallies_dirty, &self.tallies)?;
        w.nodes(&self.nodes_dirty, &self.nodes)?;
        w.files(&self.files)?;
        self.alerts.flush(w.txn)?;
        if self.meta_dirty
            && let Some(meta) = &self.meta
        {
            write_meta(w.txn, meta)?;
        }
        Ok(())
    }
}

impl Rows for &mut PgRows<'_, '_> {
    fn meta(&mut self) -> Result<MetaRow, StoreError> {
        if self.meta.is_none() {
            self.meta = Some(read_meta(self.txn, true)?);
        }
        Ok(self.meta.clone().expect("read above"))
    }

    fn alert(&mut self, subject: &str) -> Result<Option<AlertRow>, StoreError> {
        self.alerts.get(self.txn, subject)
    }

    fn put_alert(&mut self, subject: &str, row: &AlertRow) -> Result<(), StoreError> {
        self.alerts.put(subject, row);
        Ok(())
    }

    fn low_balance_default(&mut self) -> Result<Option<i64>, StoreError> {
        self.alerts.low_balance_default(self.txn)
    }

    fn put_event(&mut self, row: &EventRow) -> Result<u64, StoreError> {
        self.alerts.push_event(self.txn, row)
    }

    fn put_low_balance_default(&mut self, cents: i64) -> Result<(), StoreError> {
        self.alerts.put_low_balance_default(self.txn, cents)
    }

    fn next_event_seq(&mut self) -> Result<u64, StoreError> {
        self.alerts.next_event_seq(self.txn)
    }

    fn events_from(&mut self, seq: u64, limit: usize) -> Result<Vec<(u64, EventRow)>, StoreError> {
        PgAlerts::events_from(self.txn, seq, limit)
    }

    fn delivery(&mut self, seq: u64, url: &str) -> Result<Option<DeliveryRow>, StoreError> {
        PgAlerts::delivery(self.txn, seq, url)
    }

    fn put_delivery(&mut self, seq: u64, url: &str, row: &DeliveryRow) -> Result<(), StoreError> {
        PgAlerts::put_delivery(self.txn, seq, url, row)
    }

    fn webhook_cursor(&mut self, url: &str) -> Result<Option<u64>, StoreError> {
        PgAlerts::webhook_cursor(self.txn, url)
    }

    fn put_webhook_cursor(&mut self, url: &str, seq: u64) -> Result<(), StoreError> {
        PgAlerts::put_webhook_cursor(self.txn, url, seq)
    }

    fn put_meta(&mut self, meta: &MetaRow) -> Result<(), StoreError> {
        self.meta = Some(meta.clone());
        self.meta_dirty = true;
        Ok(())
    }

    fn user(&mut self, sid: &str) -> Result<Option<UserRow>, StoreError> {
        if !self.users.contains_key(sid) {
            self.prefetch_users(&[sid])?;
        }
        Ok(self.users.get(sid).cloned().flatten())
    }

    fn put_user(
        &mut self,
        sid: &str,
        row: &mut UserRow,
        _before: Option<SortKeys>,
        _new_seqs: &[u64],
        _meta: &mut MetaRow,
    ) -> Result<(), StoreError> {
        // Applied records and list_users' orders are found through PostgreSQL's indexes.
        self.users.insert(sid.to_string(), Some(row.clone()));
        self.users_dirty.insert(sid.to_string());
        Ok(())
    }

    fn is_consumed(&mut self, key: &str) -> Result<bool, StoreError> {
        if !self.keys.contains_key(key) {
            self.prefetch_keys(&[key])?;
        }
        Ok(matches!(self.keys.get(key), Some(Some(_))))
    }

    fn claim_key(&mut self, key: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        if !self.keys.contains_key(key) {
            self.prefetch_keys(&[key])?;
        }
        if let Some(Some(existing)) = self.keys.get(key) {
            return Ok(Some(*existing));
        }
        self.keys.insert(key.to_string(), Some(seq));
        self.new_applied.push((key.to_string(), seq));
        Ok(None)
    }

    fn put_consumed(&mut self, seq: u64, row: &ConsumedRow<'_>) -> Result<(), StoreError> {
        self.applied.insert(
            seq,
            Applied {
                seq,
                user_sid: row.user_sid.to_string(),
                cost_cents: row.cost_cents,
                source: row.source,
                resource: row.resource.map(str::to_string),
            },
        );
        Ok(())
    }

    fn put_source(&mut self, id: u64, row: &SourceRow) -> Result<(), StoreError> {
        self.sources.insert(id, row.clone());
        self.new_sources.push(id);
        Ok(())
    }

    fn consumed(&mut self, key: &str) -> Result<Option<ConsumedRecord>, StoreError> {
        if !self.keys.contains_key(key) {
            self.prefetch_keys(&[key])?;
        }
        let Some(Some(seq)) = self.keys.get(key) else {
            return Ok(None);
        };
        let a = self.applied.get(seq).ok_or_else(|| {
            StoreError::Storage(format!("applied row {seq} of key `{key}` is missing"))
        })?;
        let source = self.sources.get(&a.source).ok_or_else(|| {
            StoreError::Storage(format!(
                "source row {} of consumed records is missing",
                a.source
            ))
        })?;
        let row = ConsumedRow {
            key,
            user_sid: &a.user_sid,
            cost_cents: a.cost_cents,
            source: a.source,
            resource: a.resource.as_deref(),
        };
        Ok(Some(row.to_api(source)))
    }

    fn pending(&mut self, key: &str) -> Result<Option<PendingRow>, StoreError> {
        if let Some(held) = self.pending.get(key) {
            return Ok(held.clone());
        }
        let row = self
            .txn
            .query_opt(
                &format!("SELECT {PENDING_COLUMNS} FROM pending WHERE idempotency_key = $1"),
                &[&key],
            )
            .map_err(db_err)?;
        let held = row.map(|r| pending_of(&r).1);
        self.pending.insert(key.to_string(), held.clone());
        Ok(held)
    }

    fn put_pending(&mut self, key: &str, row: &PendingRow) -> Result<(), StoreError> {
        self.pending.insert(key.to_string(), Some(row.clone()));
        self.pending_dirty.insert(key.to_string());
        Ok(())
    }

    fn take_pending(&mut self, sid: &str, key: &str) -> Result<Option<PendingRow>, StoreError> {
        let held = self.pending(key)?.filter(|h| h.user_sid == sid);
        if held.is_some() {
            self.pending.insert(key.to_string(), None);
            self.pending_dirty.insert(key.to_string());
        }
        Ok(held)
    }

    fn held_keys(&mut self, sid: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .txn
            .query(
                &format!(
                    "SELECT {PENDING_COLUMNS}, EXISTS (SELECT 1 FROM rejected r WHERE \
                     r.rejected_id = p.rejected_id) FROM pending p WHERE user_sid = $1"
                ),
                &[&sid],
            )
            .map_err(db_err)?;
        for row in rows {
            let (key, held) = pending_of(&row);
            self.rejected_exists
                .insert(held.rejected_id, row.get(PENDING_WIDTH));
            self.pending.entry(key).or_insert(Some(held));
        }
        let mut keys: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, h)| h.as_ref().is_some_and(|h| h.user_sid == sid))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn held_users(&mut self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .txn
            .query("SELECT DISTINCT user_sid FROM pending", &[])
            .map_err(db_err)?;
        let mut sids: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
        for held in self.pending.values().flatten() {
            sids.insert(held.user_sid.clone());
        }
        // A user whose every held record this transaction took may remain; the
        // caller's `held_keys` then finds nothing for it.
        Ok(sids.into_iter().collect())
    }

    fn put_rejected(&mut self, id: u64, row: &RejectedRow) -> Result<(), StoreError> {
        self.rejected.insert(id, Some(row.clone()));
        Ok(())
    }

    fn remove_rejected(&mut self, id: u64) -> Result<bool, StoreError> {
        let existed = match self.rejected.get(&id) {
            Some(row) => row.is_some(),
            None => match self.rejected_exists.get(&id) {
                Some(&exists) => exists,
                None => self
                    .txn
                    .query_opt(
                        "SELECT 1 FROM rejected WHERE rejected_id = $1",
                        &[&to_db(id)],
                    )
                    .map_err(db_err)?
                    .is_some(),
            },
        };
        self.rejected.insert(id, None);
        self.rejected_exists.insert(id, false);
        Ok(existed)
    }

    fn put_rejected_count(&mut self, id: u64, records: u64) -> Result<(), StoreError> {
        self.record_counts.insert(id, records);
        Ok(())
    }

    fn has_fingerprint(&mut self, fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self.fingerprint(fingerprint)?.is_some())
    }

    fn put_fingerprint(&mut self, fingerprint: &str, id: u64) -> Result<(), StoreError> {
        self.fingerprints.insert(fingerprint.to_string(), Some(id));
        self.fingerprints_dirty.insert(fingerprint.to_string());
        Ok(())
    }

    fn take_fingerprint(&mut self, fingerprint: &str) -> Result<Option<u64>, StoreError> {
        let id = self.fingerprint(fingerprint)?;
        if id.is_some() {
            self.fingerprints.insert(fingerprint.to_string(), None);
            self.fingerprints_dirty.insert(fingerprint.to_string());
        }
        Ok(id)
    }

    fn tally(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
    ) -> Result<Option<TallyRow>, StoreError> {
        let key = (node.to_string(), path.to_string(), blob.to_string());
        if let Some(t) = self.tallies.get(&key) {
            return Ok(t.clone());
        }
        let row = self
            .txn
            .query_opt(
                &format!(
                    "SELECT {TALLY_COLUMNS} FROM file_tallies WHERE node_name = $1 AND \
                     file_path = $2 AND blob_id = $3"
                ),
                &[&node, &path, &blob],
            )
            .map_err(db_err)?;
        let tally = row.map(|r| tally_of(&r)).transpose()?.map(|(_, t)| t);
        self.tallies.insert(key, tally.clone());
        Ok(tally)
    }

    fn put_tally(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
        row: &TallyRow,
    ) -> Result<(), StoreError> {
        let key = (node.to_string(), path.to_string(), blob.to_string());
        self.tallies.insert(key.clone(), Some(row.clone()));
        self.tallies_dirty.insert(key);
        Ok(())
    }

    fn node(&mut self, name: &str) -> Result<Option<NodeRow>, StoreError> {
        if let Some(n) = self.nodes.get(name) {
            return Ok(n.clone());
        }
        let row = self
            .txn
            .query_opt(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_name = $1"),
                &[&name],
            )
            .map_err(db_err)?;
        let node = row.map(|r| node_of(&r)).transpose()?.map(|(_, n)| n);
        self.nodes.insert(name.to_string(), node.clone());
        Ok(node)
    }

    fn put_node(&mut self, name: &str, row: &NodeRow) -> Result<(), StoreError> {
        self.nodes.insert(name.to_string(), Some(row.clone()));
        self.nodes_dirty.insert(name.to_string());
        Ok(())
    }

    fn put_consumed_file(&mut self, node: &str, path: &str, blob: &str) -> Result<(), StoreError> {
        self.files
            .insert((node.to_string(), path.to_string()), blob.to_string());
        Ok(())
    }

    fn payment(&mut self, payment_id: &str) -> Result<Option<PaymentRow>, StoreError> {
        if let Some(p) = self.payments.get(payment_id) {
            return Ok(p.clone());
        }
        let row = self
            .txn
            .query_opt(
                &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1"),
                &[&payment_id],
            )
            .map_err(db_err)?;
        let payment = row.map(|r| payment_of(&r).1);
        self.payments
            .insert(payment_id.to_string(), payment.clone());
        Ok(payment)
    }

    fn put_payment(&mut self, payment_id: &str, row: &PaymentRow) -> Result<(), StoreError> {
        self.payments
            .insert(payment_id.to_string(), Some(row.clone()));
        self.new_payments.push(payment_id.to_string());
        Ok(())
    }
}

impl PgRows<'_, '_> {
    fn fingerprint(&mut self, fingerprint: &str) -> Result<Option<u64>, StoreError> {
        if let Some(id) = self.fingerprints.get(fingerprint) {
            return Ok(*id);
        }
        let id = self
            .txn
            .query_opt(
                "SELECT rejected_id FROM rejected_fingerprints WHERE fingerprint = $1",
                &[&fingerprint.as_bytes()],
            )
            .map_err(db_err)?
            .map(|r| from_db(r.get(0)));
        self.fingerprints.insert(fingerprint.to_string(), id);
        Ok(id)
    }
}
