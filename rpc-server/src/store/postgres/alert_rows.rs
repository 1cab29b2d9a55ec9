//! The outbox rows of one PostgreSQL ledger transaction: alert levels read
//! with the users they belong to (one query per batch), events and changed
//! levels written at the end, like every other row (`rows.rs`).

use std::collections::{BTreeSet, HashMap};

use postgres::Transaction;

use super::super::StoreError;
use super::super::alerts::outbox::DeliveryRow;
use super::super::alerts::{AlertRow, EventRow, Level};
use super::super::ledger::LOW_BALANCE_DEFAULT_KEY;
use super::{db_err, from_db, to_db};

#[derive(Default)]
pub(super) struct PgAlerts {
    rows: HashMap<String, Option<AlertRow>>,
    dirty: BTreeSet<String>,
    events: Vec<(u64, EventRow)>,
    next_event: Option<u64>,
    default: Option<Option<i64>>,
}

impl PgAlerts {
    /// Reads the alert rows of `subjects` that are not cached yet.
    pub fn prefetch(
        &mut self,
        txn: &mut Transaction<'_>,
        subjects: &[String],
    ) -> Result<(), StoreError> {
        let missing: Vec<&str> = subjects
            .iter()
            .map(String::as_str)
            .filter(|s| !self.rows.contains_key(*s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = txn
            .query(
                "SELECT subject, level, low_balance_cents FROM alerts WHERE subject = ANY($1)",
                &[&missing],
            )
            .map_err(db_err)?;
        for subject in &missing {
            self.rows.insert(subject.to_string(), None);
        }
        for row in rows {
            let alert = AlertRow {
                level: Level::from_code(row.get(1)).ok_or_else(|| {
                    StoreError::Storage(format!(
                        "stored alert level {} is unknown; the ledger was written by a newer binary",
                        row.get::<_, i16>(1)
                    ))
                })?,
                low_balance_cents: row.get(2),
            };
            self.rows.insert(row.get(0), Some(alert));
        }
        Ok(())
    }

    pub fn get(
        &mut self,
        txn: &mut Transaction<'_>,
        subject: &str,
    ) -> Result<Option<AlertRow>, StoreError> {
        if !self.rows.contains_key(subject) {
            self.prefetch(txn, &[subject.to_string()])?;
        }
        Ok(self.rows.get(subject).cloned().flatten())
    }

    pub fn put(&mut self, subject: &str, row: &AlertRow) {
        self.rows.insert(subject.to_string(), Some(row.clone()));
        self.dirty.insert(subject.to_string());
    }

    pub fn low_balance_default(
        &mut self,
        txn: &mut Transaction<'_>,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(cents) = self.default {
            return Ok(cents);
        }
        let cents = txn
            .query_opt(
                "SELECT value FROM ledger_settings WHERE key = $1",
                &[&LOW_BALANCE_DEFAULT_KEY],
            )
            .map_err(db_err)?
            .map(|r| r.get::<_, i64>(0));
        self.default = Some(cents);
        Ok(cents)
    }

    pub fn push_event(
        &mut self,
        txn: &mut Transaction<'_>,
        row: &EventRow,
    ) -> Result<u64, StoreError> {
        let seq = match self.next_event {
            Some(seq) => seq,
            // Writers hold the meta row lock, so no other transaction adds events meanwhile.
            None => {
                let last: i64 = txn
                    .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])
                    .map_err(db_err)?
                    .get(0);
                from_db(last) + 1
            }
        };
        self.events.push((seq, row.clone()));
        self.next_event = Some(seq + 1);
        Ok(seq)
    }

    pub fn put_low_balance_default(
        &mut self,
        txn: &mut Transaction<'_>,
        cents: i64,
    ) -> Result<(), StoreError> {
        txn.execute(
            "INSERT INTO ledger_settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&LOW_BALANCE_DEFAULT_KEY, &cents],
        )
        .map_err(db_err)?;
        self.default = Some(Some(cents));
        Ok(())
    }

    pub fn next_event_seq(&mut self, txn: &mut Transaction<'_>) -> Result<u64, StoreError> {
        if let Some(seq) = self.next_event {
            return Ok(seq);
        }
        let last: i64 = txn
            .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])
            .map_err(db_err)?
            .get(0);
        Ok(from_db(last) + 1)
    }

    /// Committed events from `seq` on (this transaction's own come after them).
    pub fn events_from(
        txn: &mut Transaction<'_>,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventRow)>, StoreError> {
        let rows = txn
            .query(
                "SELECT seq, kind, created_ms, subject, data FROM events WHERE seq >= $1 \
                 ORDER BY seq LIMIT $2",
                &[&to_db(seq), &(limit as i64)],
            )
            .map_err(db_err)?;
        Ok(rows.iter().map(event_of).collect())
    }

    pub fn delivery(
        txn: &mut Transaction<'_>,
        seq: u64,
        url: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let row = txn
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE seq = $1 AND url = $2"),
                &[&to_db(seq), &url],
            )
            .map_err(db_err)?;
        Ok(row.as_ref().map(delivery_of))
    }

    pub fn put_delivery(
        txn: &mut Transaction<'_>,
        seq: u64,
        url: &str,
        d: &DeliveryRow,
    ) -> Result<(), StoreError> {
        txn.execute(
            "INSERT INTO deliveries (seq, url, status, attempts, first_attempt_ms, \
             next_attempt_ms, last_status, last_error, done_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (seq, url) DO UPDATE SET \
             status = EXCLUDED.status, attempts = EXCLUDED.attempts, \
             first_attempt_ms = EXCLUDED.first_attempt_ms, \
             next_attempt_ms = EXCLUDED.next_attempt_ms, last_status = EXCLUDED.last_status, \
             last_error = EXCLUDED.last_error, done_ms = EXCLUDED.done_ms",
            &[
                &to_db(seq),
                &url,
                &i16::from(d.status),
                &i32::try_from(d.attempts).unwrap_or(i32::MAX),
                &to_db(d.first_attempt_ms),
                &to_db(d.next_attempt_ms),
                &d.last_status.map(i32::from),
                &d.last_error,
                &d.done_ms.map(to_db),
            ],
        )
        .map_err(db_err)?;
        Ok(())
    }

    pub fn webhook_cursor(txn: &mut Transaction<'_>, url: &str) -> Result<Option<u64>, StoreError> {
        let row = txn
            .query_opt("SELECT seq FROM webhook_cursors WHERE url = $1", &[&url])
            .map_err(db_err)?;
        Ok(row.map(|r| from_db(r.get(0))))
    }

    pub fn put_webhook_cursor(
        txn: &mut Transaction<'_>,
        url: &str,
        seq: u64,
    ) -> Result<(), StoreError> {
        txn.execute(
            "INSERT INTO webhook_cursors (url, seq) VALUES ($1, $2) \
             ON CONFLICT (url) DO UPDATE SET seq = EXCLUDED.seq",
            &[&url, &to_db(seq)],
        )
        .map_err(db_err)?;
        Ok(())
    }

    /// Writes the changed levels and the new events.
    pub fn flush(&self, txn: &mut Transaction<'_>) -> Result<(), StoreError> {
        if !self.dirty.is_empty() {
            let mut subjects = Vec::new();
            let mut levels = Vec::new();
            let mut own = Vec::new();
            for subject in &self.dirty {
                if let Some(Some(row)) = self.rows.get(subject) {
                    subjects.push(subject.as_str());
                    levels.push(row.level.code());
                    own.push(row.low_balance_cents);
                }
            }
            txn.execute(
                "INSERT INTO alerts (subject, level, low_balance_cents) \
                 SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[]) \
                 ON CONFLICT (subject) DO UPDATE SET level = EXCLUDED.level, \
                 low_balance_cents = EXCLUDED.low_balance_cents",
                &[&subjects, &levels, &own],
            )
            .map_err(db_err)?;
        }
        if !self.events.is_empty() {
            let mut seqs = Vec::new();
            let mut kinds = Vec::new();
            let mut created = Vec::new();
            let mut subjects = Vec::new();
            let mut data = Vec::new();
            for (seq, row) in &self.events {
                seqs.push(to_db(*seq));
                kinds.push(row.kind.as_str());
                created.push(to_db(row.created_ms));
                subjects.push(row.subject.as_str());
                data.push(row.data.as_str());
            }
            txn.execute(
                "INSERT INTO events (seq, kind, created_ms, subject, data) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[])",
                &[&seqs, &kinds, &created, &subjects, &data],
            )
            .map_err(db_err)?;
        }
        Ok(())
    }
}

/// The columns `delivery_of` reads.
pub(super) const DELIVERY_COLUMNS: &str =
    "status, attempts, first_attempt_ms, next_attempt_ms, last_status, last_error, done_ms";

pub(super) fn delivery_of(row: &postgres::Row) -> DeliveryRow {
    delivery_of_at(row, 0)
}

/// [`delivery_of`] for [`DELIVERY_COLUMNS`] starting at column `at`.
pub(super) fn delivery_of_at(row: &postgres::Row, at: usize) -> DeliveryRow {
    DeliveryRow {
        status: u8::try_from(row.get::<_, i16>(at)).unwrap_or(0),
        attempts: u32::try_from(row.get::<_, i32>(at + 1)).unwrap_or(0),
        first_attempt_ms: from_db(row.get(at + 2)),
        next_attempt_ms: from_db(row.get(at + 3)),
        last_status: row
            .get::<_, Option<i32>>(at + 4)
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.get(at + 5),
        done_ms: row.get::<_, Option<i64>>(at + 6).map(from_db),
    }
}

/// `seq, kind, created_ms, subject, data` of an event.
pub(super) fn event_of(row: &postgres::Row) -> (u64, EventRow) {
    (
        from_db(row.get(0)),
        EventRow {
            kind: row.get(1),
            created_ms: from_db(row.get(2)),
            subject: row.get(3),
            data: row.get(4),
        },
    )
}
