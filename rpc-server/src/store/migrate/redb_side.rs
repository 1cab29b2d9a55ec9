//! The redb end of a migration: reading a ledger in one read transaction,
//! and writing one into a new file in one write transaction. Writing rebuilds
//! the per-user index of applied records (`USER_CONSUMED`), which PostgreSQL
//! does without, the payment and held-record indexes, as `redb_rows.rs`
//! writes them, and the `list_users` indexes (`user_index.rs`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use redb::{AccessGuard, ReadTransaction, ReadableTable, ReadableTableMetadata, Table};
use redb::{Key, ReadableDatabase, Value, WriteTransaction};

use super::super::alerts::{AlertRow, EventRow};
use super::super::codec::{
    self, ConsumedGroup, ConsumedRow, META_KEY, MetaRow, NodeRow, PaymentRow, PendingRow,
    RUN_TOTALS_KEY, RejectedRow, RunRow, SourceRow, TallyRow, UserRow,
};
use super::super::runs::RunTotals;
use super::super::{RedbStore, StoreError, StoreOptions, tables, user_index};
use super::{AppliedRow, Batch, Counts, FileKey, Sent, Sink, UNCHECKED};
use super::{compare, outbox, rolled_back, seqs_used};

/// Applied records per group of the rebuilt per-user index. The aggregator
/// writes a group per user per transaction; a listing decodes a whole group
/// for each page, so a user's records are split into groups of this size.
const GROUP_SEQS: usize = 4096;

/// Row counts of the copied tables in a read or write transaction.
macro_rules! count_tables {
    ($txn:expr) => {{
        let txn = $txn;
        let rejected = txn.open_table(tables::REJECTED)?;
        let mut rejected_counts = 0;
        for entry in txn.open_table(tables::REJECTED_COUNTS)?.iter()? {
            // A count whose item is gone is not copied (PostgreSQL keeps it on the item).
            if rejected.get(entry?.0.value())?.is_some() {
                rejected_counts += 1;
            }
        }
        Counts {
            users: txn.open_table(tables::USERS)?.len()?,
            payments: txn.open_table(tables::PAYMENTS)?.len()?,
            consumed_sources: txn.open_table(tables::CONSUMED_SOURCES)?.len()?,
            consumed: txn.open_table(tables::CONSUMED_KEYS)?.len()?,
            pending: txn.open_table(tables::PENDING)?.len()?,
            rejected: rejected.len()?,
            rejected_counts,
            rejected_fingerprints: txn.open_table(tables::REJECTED_FINGERPRINTS)?.len()?,
            file_tallies: txn.open_table(tables::FILE_TALLIES)?.len()?,
            nodes: txn.open_table(tables::NODES)?.len()?,
            consumed_files: txn.open_table(tables::CONSUMED_FILES)?.len()?,
            runs: txn.open_table(tables::RUNS)?.len()?,
            alerts: txn.open_table(tables::ALERTS)?.len()?,
            events: txn.open_table(tables::EVENTS)?.len()?,
            deliveries: txn.open_table(tables::DELIVERIES)?.len()?,
            webhook_cursors: txn.open_table(tables::WEBHOOK_CURSORS)?.len()?,
        }
    }};
}

/// The meta row and run totals (summed from the runs in a ledger older than the totals).
fn read_meta(txn: &ReadTransaction) -> Result<(MetaRow, RunTotals), StoreError> {
    let table = txn.open_table(tables::META)?;
    let meta = match table.get(META_KEY)? {
        Some(bytes) => codec::decode_owned(bytes.value(), "meta")?,
        None => MetaRow::default(),
    };
    if let Some(bytes) = table.get(RUN_TOTALS_KEY)? {
        return Ok((meta, codec::decode_owned(bytes.value(), "run totals")?));
    }
    let mut totals = RunTotals::default();
    for entry in txn.open_table(tables::RUNS)?.iter()? {
        let (_, bytes) = entry?;
        totals.add(&codec::decode_owned::<RunRow>(bytes.value(), "run")?.to_api());
    }
    Ok((meta, totals))
}

/// Sends every row of `table` to `send`, converted, a batch at a time.
pub(super) fn send_table<K: Key + 'static, V: Value + 'static, T>(
    table: &impl ReadableTable<K, V>,
    convert: impl Fn(AccessGuard<'_, K>, AccessGuard<'_, V>) -> Result<T, StoreError>,
    mut send: impl FnMut(&[T]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut batch = Batch::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        batch.push(convert(k, v)?, &mut send)?;
    }
    batch.finish(&mut send)
}

/// Sends every row of the ledger `txn` sees to `sink`.
pub(super) fn read(txn: &ReadTransaction, sink: &mut dyn Sink) -> Result<Sent, StoreError> {
    let source = count_tables!(txn);
    let (meta, totals) = read_meta(txn)?;
    sink.meta(&meta, &totals)?;
    let key = |k: AccessGuard<'_, &'static str>| k.value().to_string();
    let mut c = Counts {
        users: send_table(
            &txn.open_table(tables::USERS)?,
            |k, v| Ok((key(k), codec::decode_owned(v.value(), "user")?)),
            |b| sink.users(b),
        )?,
        ..Counts::default()
    };
    c.payments = send_table(
        &txn.open_table(tables::PAYMENTS)?,
        |k, v| Ok((key(k), codec::decode_owned(v.value(), "payment")?)),
        |b| sink.payments(b),
    )?;
    c.consumed_sources = send_table(
        &txn.open_table(tables::CONSUMED_SOURCES)?,
        |k, v| {
            Ok((
                k.value(),
                codec::decode_owned(v.value(), "consumed source")?,
            ))
        },
        |b| sink.sources(b),
    )?;
    c.consumed = send_table(
        &txn.open_table(tables::CONSUMED_LOG)?,
        |k, v| {
            let row = ConsumedRow::decode(v.value())?;
            Ok(AppliedRow {
                key: row.key.to_string(),
                seq: k.value(),
                user_sid: row.user_sid.to_string(),
                cost_cents: row.cost_cents,
                source: row.source,
                resource: row.resource.map(str::to_string),
            })
        },
        |b| sink.consumed(b),
    )?;
    c.pending = send_table(
        &txn.open_table(tables::PENDING)?,
        |k, v| Ok((key(k), PendingRow::decode(v.value())?)),
        |b| sink.pending(b),
    )?;
    let counts = txn.open_table(tables::REJECTED_COUNTS)?;
    let mut with_count = 0;
    c.rejected = send_table(
        &txn.open_table(tables::REJECTED)?,
        |k, v| {
            let id = k.value();
            let count = counts.get(id)?.map(|n| n.value());
            Ok((id, codec::decode_owned(v.value(), "rejected item")?, count))
        },
        |b| {
            with_count += b.iter().filter(|r| r.2.is_some()).count() as u64;
            sink.rejected(b)
        },
    )?;
    c.rejected_counts = with_count;
    c.rejected_fingerprints = send_table(
        &txn.open_table(tables::REJECTED_FINGERPRINTS)?,
        |k, v| Ok((key(k), v.value())),
        |b| sink.fingerprints(b),
    )?;
    c.file_tallies = send_table(
        &txn.open_table(tables::FILE_TALLIES)?,
        |k, v| {
            let (node, path, blob) = k.value();
            let file = (node.to_string(), path.to_string(), blob.to_string());
            Ok((file, codec::decode_owned(v.value(), "file tally")?))
        },
        |b| sink.tallies(b),
    )?;
    c.nodes = send_table(
        &txn.open_table(tables::NODES)?,
        |k, v| Ok((key(k), codec::decode_owned(v.value(), "node")?)),
        |b| sink.nodes(b),
    )?;
    c.consumed_files = send_table(
        &txn.open_table(tables::CONSUMED_FILES)?,
        |k, v| {
            let (node, path) = k.value();
            Ok((node.to_string(), path.to_string(), v.value().to_string()))
        },
        |b| sink.consumed_files(b),
    )?;
    c.runs = send_table(
        &txn.open_table(tables::RUNS)?,
        |_, v| Ok((codec::decode_owned(v.value(), "run")?, None)),
        |b| sink.runs(b),
    )?;
    let low_balance_default = outbox::read_redb(txn, sink, &mut c)?;
    Ok(Sent {
        copied: c,
        source,
        low_balance_default,
    })
}

/// Opens (creating it and its directory if missing) the redb ledger to copy
/// into, and refuses one that holds anything.
pub(super) fn open_target(path: &Path) -> Result<RedbStore, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the data dir {}: {e}; check --to-data-dir",
                dir.display()
            ))
        })?;
    }
    let options = StoreOptions {
        init: true,
        ..UNCHECKED
    };
    let store = RedbStore::open_with(path, options)?;
    let db = store.db()?;
    let txn = db
        .begin_read()
        .map_err(|e| store.storage("read the ledger", e))?;
    let held = count_tables!(&txn);
    if held != Counts::default() || seqs_used(&read_meta(&txn)?.0) {
        let what = match held.nonzero() {
            none if none.is_empty() => "no rows, but its sequence numbers are in use".to_string(),
            some => some,
        };
        return Err(StoreError::Conflict(format!(
            "the target ledger {} is not empty: it holds {what}. migrate-ledger writes only a \
             new ledger: pass --to-data-dir a directory without a ledger.redb, or move this file \
             away if it is not needed; nothing was changed",
            path.display()
        )));
    }
    Ok(store)
}

/// Runs `copy` (a reader sending the source's rows) into the empty ledger
/// `target`, in one write transaction; returns the rows copied.
pub(super) fn copy_into(
    target: &RedbStore,
    from: &str,
    copy: impl FnOnce(&mut dyn Sink) -> Result<Sent, StoreError>,
) -> Result<Counts, StoreError> {
    let to = target.shared.location.to_string();
    let op = format!("copy the ledger from {from} into {to}");
    target.write(&op, |txn| {
        let mut sink = RedbSink::open(txn)?;
        let sent = copy(&mut sink).map_err(|e| rolled_back(&op, e))?;
        let written = sink.finish().map_err(|e| rolled_back(&op, e))?;
        user_index::rebuild(txn).map_err(|e| rolled_back(&op, e))?;
        compare(&sent, &written, &to)?;
        let default = outbox::redb_default(&txn.open_table(tables::META)?)?;
        outbox::check_default(sent.low_balance_default, default, &to)?;
        Ok(sent.copied)
    })
}

type Bytes = &'static [u8];

/// The tables of the write transaction of [`copy_into`].
struct RedbSink<'t> {
    txn: &'t WriteTransaction,
    meta_table: Table<'t, &'static str, Bytes>,
    users: Table<'t, &'static str, Bytes>,
    payments: Table<'t, &'static str, Bytes>,
    payment_log: Table<'t, u64, &'static str>,
    user_payments: Table<'t, (&'static str, u64), &'static str>,
    consumed_keys: Table<'t, &'static str, u64>,
    consumed_log: Table<'t, u64, Bytes>,
    sources: Table<'t, u64, Bytes>,
    user_consumed: Table<'t, u64, Bytes>,
    pending: Table<'t, &'static str, Bytes>,
    user_pending: Table<'t, (&'static str, &'static str), ()>,
    rejected: Table<'t, u64, Bytes>,
    rejected_counts: Table<'t, u64, u64>,
    fingerprints: Table<'t, &'static str, u64>,
    tallies: Table<'t, (&'static str, &'static str, &'static str), Bytes>,
    nodes: Table<'t, &'static str, Bytes>,
    consumed_files: Table<'t, (&'static str, &'static str), &'static str>,
    runs: Table<'t, u64, Bytes>,
    outbox: outbox::RedbOutbox<'t>,
    /// Written last, with the group ids the rebuilt index used.
    meta: MetaRow,
    user_ids: HashMap<String, u64>,
    /// The user whose applied records are being indexed.
    open_user: Option<UserGroups>,
    indexed_users: HashSet<String>,
    /// Groups written (their ids are 1..=groups) and the seqs they hold.
    groups: u64,
    indexed: u64,
    buf: Vec<u8>,
}

/// The per-user index of one user, being rebuilt.
struct UserGroups {
    sid: String,
    id: u64,
    /// The user's last group written (0 = none).
    prev: u64,
    last_seq: u64,
    seqs: Vec<u64>,
}

impl<'t> RedbSink<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(RedbSink {
            txn,
            meta_table: txn.open_table(tables::META)?,
            users: txn.open_table(tables::USERS)?,
            payments: txn.open_table(tables::PAYMENTS)?,
            payment_log: txn.open_table(tables::PAYMENT_LOG)?,
            user_payments: txn.open_table(tables::USER_PAYMENTS)?,
            consumed_keys: txn.open_table(tables::CONSUMED_KEYS)?,
            consumed_log: txn.open_table(tables::CONSUMED_LOG)?,
            sources: txn.open_table(tables::CONSUMED_SOURCES)?,
            user_consumed: txn.open_table(tables::USER_CONSUMED)?,
            pending: txn.open_table(tables::PENDING)?,
            user_pending: txn.open_table(tables::USER_PENDING)?,
            rejected: txn.open_table(tables::REJECTED)?,
            rejected_counts: txn.open_table(tables::REJECTED_COUNTS)?,
            fingerprints: txn.open_table(tables::REJECTED_FINGERPRINTS)?,
            tallies: txn.open_table(tables::FILE_TALLIES)?,
            nodes: txn.open_table(tables::NODES)?,
            consumed_files: txn.open_table(tables::CONSUMED_FILES)?,
            runs: txn.open_table(tables::RUNS)?,
            outbox: outbox::RedbOutbox::open(txn)?,
            meta: MetaRow::default(),
            user_ids: HashMap::new(),
            open_user: None,
            indexed_users: HashSet::new(),
            groups: 0,
            indexed: 0,
            buf: Vec::with_capacity(256),
        })
    }

    /// Adds applied record `seq` to the per-user index of `sid`.
    fn index(&mut self, sid: &str, seq: u64) -> Result<(), StoreError> {
        if self.open_user.as_ref().is_none_or(|u| u.sid != sid) {
            self.end_user()?;
            let id = *self.user_ids.get(sid).ok_or_else(|| {
                StoreError::Storage(format!(
                    "applied record {seq} is of user `{sid}`, who is not in the users table"
                ))
            })?;
            if !self.indexed_users.insert(sid.to_string()) {
                return Err(StoreError::Storage(format!(
                    "the applied records of user `{sid}` did not come together; the per-user \
                     index cannot be rebuilt"
                )));
            }
            self.open_user = Some(UserGroups {
                sid: sid.to_string(),
                id,
                prev: 0,
                last_seq: 0,
                seqs: Vec::new(),
            });
        }
        let user = self.open_user.as_mut().expect("opened above");
        if seq <= user.last_seq {
            return Err(StoreError::Storage(format!(
                "the applied records of user `{sid}` did not come in ascending order ({seq} \
                 after {}); the per-user index cannot be rebuilt",
                user.last_seq
            )));
        }
        user.last_seq = seq;
        user.seqs.push(seq);
        if user.seqs.len() >= GROUP_SEQS {
            self.write_group()?;
        }
        Ok(())
    }

    /// Writes the open user's next group, linked to its previous one.
    fn write_group(&mut self) -> Result<(), StoreError> {
        let Some(user) = self.open_user.as_mut() else {
            return Ok(());
        };
        if user.seqs.is_empty() {
            return Ok(());
        }
        self.groups += 1;
        ConsumedGroup::encode(user.id, user.prev, &user.seqs, &mut self.buf);
        self.user_consumed
            .insert(self.groups, self.buf.as_slice())?;
        user.prev = self.groups;
        self.indexed += user.seqs.len() as u64;
        user.seqs.clear();
        Ok(())
    }

    /// Writes the open user's last group and points its row at it.
    fn end_user(&mut self) -> Result<(), StoreError> {
        self.write_group()?;
        let Some(user) = self.open_user.take() else {
            return Ok(());
        };
        let mut row: UserRow = match self.users.get(user.sid.as_str())? {
            Some(bytes) => codec::decode_owned(bytes.value(), "user")?,
            None => {
                return Err(StoreError::Storage(format!(
                    "user `{}` vanished while its applied records were indexed",
                    user.sid
                )));
            }
        };
        row.last_group = user.prev;
        codec::encode(&row, &mut self.buf)?;
        self.users.insert(user.sid.as_str(), self.buf.as_slice())?;
        Ok(())
    }

    /// Ends the index, writes the meta row and counts what was written.
    fn finish(mut self) -> Result<Counts, StoreError> {
        self.end_user()?;
        let applied = self.consumed_log.len()?;
        if self.indexed != applied {
            return Err(StoreError::Storage(format!(
                "the rebuilt per-user index holds {} of {applied} applied records",
                self.indexed
            )));
        }
        self.meta.group_seq = self.meta.group_seq.max(self.groups);
        codec::encode(&self.meta, &mut self.buf)?;
        self.meta_table.insert(META_KEY, self.buf.as_slice())?;
        let txn = self.txn;
        drop(self);
        Ok(count_tables!(txn))
    }

    fn put<T: serde::Serialize>(
        buf: &mut Vec<u8>,
        row: &T,
        insert: impl FnOnce(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        codec::encode(row, buf)?;
        insert(buf)
    }
}

impl Sink for RedbSink<'_> {
    fn meta(&mut self, meta: &MetaRow, totals: &RunTotals) -> Result<(), StoreError> {
        self.meta = meta.clone();
        codec::encode(totals, &mut self.buf)?;
        self.meta_table
            .insert(RUN_TOTALS_KEY, self.buf.as_slice())?;
        Ok(())
    }

    fn users(&mut self, rows: &[(String, UserRow)]) -> Result<(), StoreError> {
        for (sid, row) in rows {
            // Pointed at its index groups once its applied records are in.
            let row = UserRow {
                last_group: 0,
                ..row.clone()
            };
            Self::put(&mut self.buf, &row, |b| {
                self.users.insert(sid.as_str(), b)?;
                Ok(())
            })?;
            self.user_ids.insert(sid.clone(), row.id);
        }
        Ok(())
    }

    fn payments(&mut self, rows: &[(String, PaymentRow)]) -> Result<(), StoreError> {
        for (id, row) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.payments.insert(id.as_str(), b)?;
                Ok(())
            })?;
            self.payment_log.insert(row.seq, id.as_str())?;
            self.user_payments
                .insert((row.user_sid.as_str(), row.seq), id.as_str())?;
        }
        Ok(())
    }

    fn sources(&mut self, rows: &[(u64, SourceRow)]) -> Result<(), StoreError> {
        for (id, row) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.sources.insert(*id, b)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn consumed(&mut self, rows: &[AppliedRow]) -> Result<(), StoreError> {
        for r in rows {
            if self.consumed_keys.insert(r.key.as_str(), r.seq)?.is_some() {
                return Err(StoreError::Storage(format!(
                    "key `{}` is applied twice in the source",
                    r.key
                )));
            }
            let row = ConsumedRow {
                key: &r.key,
                user_sid: &r.user_sid,
                cost_cents: r.cost_cents,
                source: r.source,
                resource: r.resource.as_deref(),
            };
            row.encode(&mut self.buf)?;
            self.consumed_log.insert(r.seq, self.buf.as_slice())?;
            self.index(&r.user_sid, r.seq)?;
        }
        Ok(())
    }

    fn pending(&mut self, rows: &[(String, PendingRow)]) -> Result<(), StoreError> {
        for (key, row) in rows {
            row.encode(&mut self.buf)?;
            self.pending.insert(key.as_str(), self.buf.as_slice())?;
            self.user_pending
                .insert((row.user_sid.as_str(), key.as_str()), ())?;
        }
        Ok(())
    }

    fn rejected(&mut self, rows: &[(u64, RejectedRow, Option<u64>)]) -> Result<(), StoreError> {
        for (id, row, count) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.rejected.insert(*id, b)?;
                Ok(())
            })?;
            if let Some(n) = count {
                self.rejected_counts.insert(*id, *n)?;
            }
        }
        Ok(())
    }

    fn fingerprints(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError> {
        for (fp, id) in rows {
            self.fingerprints.insert(fp.as_str(), *id)?;
        }
        Ok(())
    }

    fn tallies(&mut self, rows: &[(FileKey, TallyRow)]) -> Result<(), StoreError> {
        for ((node, path, blob), row) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.tallies
                    .insert((node.as_str(), path.as_str(), blob.as_str()), b)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn nodes(&mut self, rows: &[(String, NodeRow)]) -> Result<(), StoreError> {
        for (name, row) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.nodes.insert(name.as_str(), b)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn consumed_files(&mut self, rows: &[FileKey]) -> Result<(), StoreError> {
        for (node, path, blob) in rows {
            self.consumed_files
                .insert((node.as_str(), path.as_str()), blob.as_str())?;
        }
        Ok(())
    }

    fn runs(&mut self, rows: &[(RunRow, Option<String>)]) -> Result<(), StoreError> {
        // redb keeps no replica: one server owns the file.
        for (row, _) in rows {
            Self::put(&mut self.buf, row, |b| {
                self.runs.insert(row.run_id, b)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn alerts(&mut self, rows: &[(String, AlertRow)]) -> Result<(), StoreError> {
        self.outbox.alerts(rows)
    }

    fn events(&mut self, rows: &[(u64, EventRow)]) -> Result<(), StoreError> {
        self.outbox.events(rows)
    }

    fn deliveries(&mut self, rows: &[outbox::Delivery]) -> Result<(), StoreError> {
        self.outbox.deliveries(rows)
    }

    fn webhook_cursors(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError> {
        self.outbox.webhook_cursors(rows)
    }

    fn low_balance_default(&mut self, cents: Option<i64>) -> Result<(), StoreError> {
        outbox::put_redb_default(&mut self.meta_table, cents)
    }
}
