//! [`Rows`] over redb's tables, inside one write transaction.

use billing_api::ConsumedRecord;
use billing_api::otoml::MAX_KEY_BYTES;
use redb::{ReadableTable, Table, WriteTransaction};

use super::StoreError;
use super::alerts::outbox::DeliveryRow;
use super::alerts::{AlertRow, EventRow};
use super::codec::{
    self, ConsumedGroup, ConsumedRow, META_KEY, MetaRow, NodeRow, PaymentRow, PendingRow,
    RejectedRow, SourceRow, TallyRow, UserRow,
};
use super::ledger::{LOW_BALANCE_DEFAULT_KEY, Rows};
use super::tables;
use super::user_index::{self, SortKeys, UserIndex};

/// The open tables of one write transaction.
pub(crate) struct RedbRows<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    /// `list_users`'s indexes, written with every user row.
    user_index: UserIndex<'t>,
    consumed_keys: Table<'t, &'static str, u64>,
    consumed_log: Table<'t, u64, &'static [u8]>,
    sources: Table<'t, u64, &'static [u8]>,
    user_consumed: Table<'t, u64, &'static [u8]>,
    pending: Table<'t, &'static str, &'static [u8]>,
    user_pending: Table<'t, (&'static str, &'static str), ()>,
    rejected: Table<'t, u64, &'static [u8]>,
    fingerprints: Table<'t, &'static str, u64>,
    rejected_counts: Table<'t, u64, u64>,
    tallies: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    nodes: Table<'t, &'static str, &'static [u8]>,
    consumed_files: Table<'t, (&'static str, &'static str), &'static str>,
    payments: Option<PaymentTables<'t>>,
    alerts: Option<AlertTables<'t>>,
    txn: &'t WriteTransaction,
    buf: Vec<u8>,
}

/// Opened at the first balance change of a transaction.
struct AlertTables<'t> {
    alerts: Table<'t, &'static str, &'static [u8]>,
    events: Table<'t, u64, &'static [u8]>,
    /// The next event's seq, once read.
    next_event: Option<u64>,
}

struct PaymentTables<'t> {
    payments: Table<'t, &'static str, &'static [u8]>,
    log: Table<'t, u64, &'static str>,
    by_user: Table<'t, (&'static str, u64), &'static str>,
}

impl<'t> RedbRows<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(RedbRows {
            meta: txn.open_table(tables::META)?,
            users: txn.open_table(tables::USERS)?,
            user_index: UserIndex::open(txn)?,
            consumed_keys: txn.open_table(tables::CONSUMED_KEYS)?,
            consumed_log: txn.open_table(tables::CONSUMED_LOG)?,
            sources: txn.open_table(tables::CONSUMED_SOURCES)?,
            user_consumed: txn.open_table(tables::USER_CONSUMED)?,
            pending: txn.open_table(tables::PENDING)?,
            user_pending: txn.open_table(tables::USER_PENDING)?,
            rejected: txn.open_table(tables::REJECTED)?,
            fingerprints: txn.open_table(tables::REJECTED_FINGERPRINTS)?,
            rejected_counts: txn.open_table(tables::REJECTED_COUNTS)?,
            tallies: txn.open_table(tables::FILE_TALLIES)?,
            nodes: txn.open_table(tables::NODES)?,
            consumed_files: txn.open_table(tables::CONSUMED_FILES)?,
            payments: None,
            alerts: None,
            txn,
            buf: Vec::with_capacity(256),
        })
    }

    /// The payment tables, opened by the first payment of the transaction.
    fn payment_tables(&mut self) -> Result<&mut PaymentTables<'t>, StoreError> {
        if self.payments.is_none() {
            self.payments = Some(PaymentTables {
                payments: self.txn.open_table(tables::PAYMENTS)?,
                log: self.txn.open_table(tables::PAYMENT_LOG)?,
                by_user: self.txn.open_table(tables::USER_PAYMENTS)?,
            });
        }
        Ok(self.payments.as_mut().expect("opened above"))
    }

    fn alert_tables(&mut self) -> Result<&mut AlertTables<'t>, StoreError> {
        if self.alerts.is_none() {
            self.alerts = Some(AlertTables {
                alerts: self.txn.open_table(tables::ALERTS)?,
                events: self.txn.open_table(tables::EVENTS)?,
                next_event: None,
            });
        }
        Ok(self.alerts.as_mut().expect("opened above"))
    }
}

pub(crate) fn load_source(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<SourceRow, StoreError> {
    let bytes = table.get(id)?.ok_or_else(|| {
        StoreError::Storage(format!("source row {id} of consumed records is missing"))
    })?;
    codec::decode_owned(bytes.value(), "consumed source")
}

impl Rows for RedbRows<'_> {
    fn meta(&mut self) -> Result<MetaRow, StoreError> {
        match self.meta.get(META_KEY)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
            None => Ok(MetaRow::default()),
        }
    }

    fn put_meta(&mut self, meta: &MetaRow) -> Result<(), StoreError> {
        codec::encode(meta, &mut self.buf)?;
        self.meta.insert(META_KEY, self.buf.as_slice())?;
        Ok(())
    }

    fn user(&mut self, sid: &str) -> Result<Option<UserRow>, StoreError> {
        match self.users.get(sid)? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "user")?)),
            None => Ok(None),
        }
    }

    fn put_user(
        &mut self,
        sid: &str,
        row: &mut UserRow,
        before: Option<SortKeys>,
        new_seqs: &[u64],
        meta: &mut MetaRow,
    ) -> Result<(), StoreError> {
        self.user_index.update(
            sid,
            before,
            SortKeys::of(row),
            user_index::balance_version(meta),
        )?;
        if !new_seqs.is_empty() {
            meta.group_seq += 1;
            let group = meta.group_seq;
            ConsumedGroup::encode(row.id, row.last_group, new_seqs, &mut self.buf);
            self.user_consumed.insert(group, self.buf.as_slice())?;
            row.last_group = group;
        }
        codec::encode(row, &mut self.buf)?;
        self.users.insert(sid, self.buf.as_slice())?;
        Ok(())
    }

    fn is_consumed(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.consumed_keys.get(key)?.is_some())
    }

    fn claim_key(&mut self, key: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        // `insert` returns what was there, so a new key costs one tree walk
        // instead of a lookup plus an insert.
        let previous = self.consumed_keys.insert(key, seq)?.map(|g| g.value());
        if let Some(old) = previous {
            self.consumed_keys.insert(key, old)?;
        }
        Ok(previous)
    }

    fn put_consumed(&mut self, seq: u64, row: &ConsumedRow<'_>) -> Result<(), StoreError> {
        row.encode(&mut self.buf)?;
        self.consumed_log.insert(seq, self.buf.as_slice())?;
        Ok(())
    }

    fn put_source(&mut self, id: u64, row: &SourceRow) -> Result<(), StoreError> {
        codec::encode(row, &mut self.buf)?;
        self.sources.insert(id, self.buf.as_slice())?;
        Ok(())
    }

    fn consumed(&mut self, key: &str) -> Result<Option<ConsumedRecord>, StoreError> {
        let Some(seq) = self.consumed_keys.get(key)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let bytes = self.consumed_log.get(seq)?.ok_or_else(|| {
            StoreError::Storage(format!(
                "consumed index names row {seq} for key `{key}` but the row is missing"
            ))
        })?;
        let row = ConsumedRow::decode(bytes.value())?;
        let source = load_source(&self.sources, row.source)?;
        Ok(Some(row.to_api(&source)))
    }

    fn pending(&mut self, key: &str) -> Result<Option<PendingRow>, StoreError> {
        match self.pending.get(key)? {
            Some(bytes) => Ok(Some(PendingRow::decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn put_pending(&mut self, key: &str, row: &PendingRow) -> Result<(), StoreError> {
        row.encode(&mut self.buf)?;
        self.pending.insert(key, self.buf.as_slice())?;
        self.user_pending.insert((row.user_sid.as_str(), key), ())?;
        Ok(())
    }

    fn take_pending(&mut self, sid: &str, key: &str) -> Result<Option<PendingRow>, StoreError> {
        let held = match self.pending.remove(key)? {
            Some(bytes) => PendingRow::decode(bytes.value())?,
            None => return Ok(None),
        };
        self.user_pending.remove((sid, key))?;
        Ok(Some(held))
    }

    fn held_keys(&mut self, sid: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for entry in self.user_pending.range((sid, "")..)? {
            let (k, _) = entry?;
            let (user, key) = k.value();
            if user != sid {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }

    fn held_users(&mut self) -> Result<Vec<String>, StoreError> {
        // Skips from user to user rather than reading every held record. This
        // sorts after every key of at most MAX_KEY_BYTES bytes: valid UTF-8
        // never exceeds the bytes of U+10FFFF.
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

    fn put_rejected(&mut self, id: u64, row: &RejectedRow) -> Result<(), StoreError> {
        codec::encode(row, &mut self.buf)?;
        self.rejected.insert(id, self.buf.as_slice())?;
        Ok(())
    }

    fn remove_rejected(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.rejected.remove(id)?.is_some())
    }

    fn put_rejected_count(&mut self, id: u64, records: u64) -> Result<(), StoreError> {
        self.rejected_counts.insert(id, records)?;
        Ok(())
    }

    fn has_fingerprint(&mut self, fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self.fingerprints.get(fingerprint)?.is_some())
    }

    fn put_fingerprint(&mut self, fingerprint: &str, id: u64) -> Result<(), StoreError> {
        self.fingerprints.insert(fingerprint, id)?;
        Ok(())
    }

    fn take_fingerprint(&mut self, fingerprint: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.fingerprints.remove(fingerprint)?.map(|id| id.value()))
    }

    fn tally(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
    ) -> Result<Option<TallyRow>, StoreError> {
        match self.tallies.get((node, path, blob))? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "file tally")?)),
            None => Ok(None),
        }
    }

    fn put_tally(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
        row: &TallyRow,
    ) -> Result<(), StoreError> {
        codec::encode(row, &mut self.buf)?;
        self.tallies
            .insert((node, path, blob), self.buf.as_slice())?;
        Ok(())
    }

    fn node(&mut self, name: &str) -> Result<Option<NodeRow>, StoreError> {
        match self.nodes.get(name)? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "node")?)),
            None => Ok(None),
        }
    }

    fn put_node(&mut self, name: &str, row: &NodeRow) -> Result<(), StoreError> {
        codec::encode(row, &mut self.buf)?;
        self.nodes.insert(name, self.buf.as_slice())?;
        Ok(())
    }

    fn put_consumed_file(&mut self, node: &str, path: &str, blob: &str) -> Result<(), StoreError> {
        self.consumed_files.insert((node, path), blob)?;
        Ok(())
    }

    fn payment(&mut self, payment_id: &str) -> Result<Option<PaymentRow>, StoreError> {
        let tables = self.payment_tables()?;
        match tables.payments.get(payment_id)? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "payment")?)),
            None => Ok(None),
        }
    }

    fn alert(&mut self, subject: &str) -> Result<Option<AlertRow>, StoreError> {
        match self.alert_tables()?.alerts.get(subject)? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "alert")?)),
            None => Ok(None),
        }
    }

    fn put_alert(&mut self, subject: &str, row: &AlertRow) -> Result<(), StoreError> {
        let bytes = codec::to_bytes(row)?;
        self.alert_tables()?
            .alerts
            .insert(subject, bytes.as_slice())?;
        Ok(())
    }

    fn low_balance_default(&mut self) -> Result<Option<i64>, StoreError> {
        match self.meta.get(LOW_BALANCE_DEFAULT_KEY)? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "alert setting")?)),
            None => Ok(None),
        }
    }

    fn put_event(&mut self, row: &EventRow) -> Result<u64, StoreError> {
        let bytes = codec::to_bytes(row)?;
        let tables = self.alert_tables()?;
        let seq = match tables.next_event {
            Some(seq) => seq,
            None => tables.events.last()?.map_or(1, |(k, _)| k.value() + 1),
        };
        tables.events.insert(seq, bytes.as_slice())?;
        tables.next_event = Some(seq + 1);
        Ok(seq)
    }

    fn put_low_balance_default(&mut self, cents: i64) -> Result<(), StoreError> {
        let bytes = codec::to_bytes(&cents)?;
        self.meta
            .insert(LOW_BALANCE_DEFAULT_KEY, bytes.as_slice())?;
        Ok(())
    }

    fn next_event_seq(&mut self) -> Result<u64, StoreError> {
        let tables = self.alert_tables()?;
        match tables.next_event {
            Some(seq) => Ok(seq),
            None => Ok(tables.events.last()?.map_or(1, |(k, _)| k.value() + 1)),
        }
    }

    fn events_from(&mut self, seq: u64, limit: usize) -> Result<Vec<(u64, EventRow)>, StoreError> {
        let tables = self.alert_tables()?;
        let mut out = Vec::new();
        for entry in tables.events.range(seq..)?.take(limit) {
            let (k, v) = entry?;
            out.push((k.value(), codec::decode_owned(v.value(), "event")?));
        }
        Ok(out)
    }

    fn delivery(&mut self, seq: u64, url: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let table = self.txn.open_table(tables::DELIVERIES)?;
        match table.get((seq, url))? {
            Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "delivery")?)),
            None => Ok(None),
        }
    }

    fn put_delivery(&mut self, seq: u64, url: &str, row: &DeliveryRow) -> Result<(), StoreError> {
        let bytes = codec::to_bytes(row)?;
        let mut table = self.txn.open_table(tables::DELIVERIES)?;
        table.insert((seq, url), bytes.as_slice())?;
        Ok(())
    }

    fn webhook_cursor(&mut self, url: &str) -> Result<Option<u64>, StoreError> {
        let table = self.txn.open_table(tables::WEBHOOK_CURSORS)?;
        Ok(table.get(url)?.map(|v| v.value()))
    }

    fn put_webhook_cursor(&mut self, url: &str, seq: u64) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(tables::WEBHOOK_CURSORS)?;
        table.insert(url, seq)?;
        Ok(())
    }

    fn put_payment(&mut self, payment_id: &str, row: &PaymentRow) -> Result<(), StoreError> {
        let bytes = codec::to_bytes(row)?;
        let tables = self.payment_tables()?;
        tables.payments.insert(payment_id, bytes.as_slice())?;
        tables.log.insert(row.seq, payment_id)?;
        tables
            .by_user
            .insert((row.user_sid.as_str(), row.seq), payment_id)?;
        Ok(())
    }
}

/// A ledger over the tables of `txn`.
pub(crate) fn ledger(
    txn: &WriteTransaction,
    now_ms: u64,
) -> Result<super::ledger::LedgerTxn<RedbRows<'_>>, StoreError> {
    super::ledger::LedgerTxn::open(RedbRows::open(txn)?, now_ms)
}
