//! The outbox in a migration, for both ends: alert levels and users' own
//! thresholds (`alerts`), events, webhook deliveries and cursors, and the
//! default threshold. Rows are copied as stored, event seqs included, so that
//! the next event, every URL's cursor and every delivery state carry over.
//! redb encodes them as `alerts/redb.rs` and `redb_rows.rs` do; PostgreSQL
//! as `postgres/alert_rows.rs` does.

use postgres::{Row, Transaction};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::super::alerts::outbox::DeliveryRow;
use super::super::alerts::{AlertRow, EventRow, Level};
use super::super::ledger::LOW_BALANCE_DEFAULT_KEY;
use super::super::postgres::{db_err, from_db, to_db};
use super::super::{StoreError, codec, tables};
use super::pg_read::{bad, context, stream};
use super::redb_side::send_table;
use super::{Counts, Sink};

/// `(event seq, webhook URL, state)`: one event's delivery to one URL.
pub(super) type Delivery = (u64, String, DeliveryRow);

type Bytes = &'static [u8];

fn level_from_db(code: i16) -> Result<Level, StoreError> {
    Level::from_code(code).ok_or_else(|| bad("alert", format!("unknown level code {code}")))
}

/// The default threshold stored in a redb ledger's meta table.
pub(super) fn redb_default(
    meta: &impl ReadableTable<&'static str, Bytes>,
) -> Result<Option<i64>, StoreError> {
    match meta.get(LOW_BALANCE_DEFAULT_KEY)? {
        Some(bytes) => Ok(Some(codec::decode_owned(bytes.value(), "alert setting")?)),
        None => Ok(None),
    }
}

/// Stores (or with `None` removes) the default threshold in a redb meta table.
pub(super) fn put_redb_default(
    meta: &mut Table<'_, &'static str, Bytes>,
    cents: Option<i64>,
) -> Result<(), StoreError> {
    match cents {
        Some(c) => {
            meta.insert(LOW_BALANCE_DEFAULT_KEY, codec::to_bytes(&c)?.as_slice())?;
        }
        None => {
            meta.remove(LOW_BALANCE_DEFAULT_KEY)?;
        }
    }
    Ok(())
}

/// The default threshold of a PostgreSQL ledger.
pub(super) fn pg_default(txn: &mut Transaction<'_>) -> Result<Option<i64>, StoreError> {
    let row = txn
        .query_opt(
            "SELECT value FROM ledger_settings WHERE key = $1",
            &[&LOW_BALANCE_DEFAULT_KEY],
        )
        .map_err(db_err)?;
    Ok(row.map(|r| r.get(0)))
}

/// Checks that the target reads back the source's default threshold.
pub(super) fn check_default(
    source: Option<i64>,
    target: Option<i64>,
    to: &str,
) -> Result<(), StoreError> {
    if source == target {
        return Ok(());
    }
    let shown = |c: Option<i64>| c.map_or("none".to_string(), |c| c.to_string());
    Err(StoreError::Storage(format!(
        "the copy into {to} does not hold the source's default low-balance threshold (source \
         {}, target {}); nothing was written",
        shown(source),
        shown(target)
    )))
}

/// Sends the outbox of the redb ledger `txn` sees to `sink`, counting the
/// rows into `c`; returns the default threshold sent.
pub(super) fn read_redb(
    txn: &ReadTransaction,
    sink: &mut dyn Sink,
    c: &mut Counts,
) -> Result<Option<i64>, StoreError> {
    c.alerts = send_table(
        &txn.open_table(tables::ALERTS)?,
        |k, v| {
            let row = codec::decode_owned(v.value(), "alert")?;
            Ok((k.value().to_string(), row))
        },
        |b| sink.alerts(b),
    )?;
    c.events = send_table(
        &txn.open_table(tables::EVENTS)?,
        |k, v| Ok((k.value(), codec::decode_owned(v.value(), "event")?)),
        |b| sink.events(b),
    )?;
    c.deliveries = send_table(
        &txn.open_table(tables::DELIVERIES)?,
        |k, v| {
            let (seq, url) = k.value();
            let row = codec::decode_owned(v.value(), "delivery")?;
            Ok((seq, url.to_string(), row))
        },
        |b| sink.deliveries(b),
    )?;
    c.webhook_cursors = send_table(
        &txn.open_table(tables::WEBHOOK_CURSORS)?,
        |k, v| Ok((k.value().to_string(), v.value())),
        |b| sink.webhook_cursors(b),
    )?;
    let default = redb_default(&txn.open_table(tables::META)?)?;
    sink.low_balance_default(default)?;
    Ok(default)
}

/// The outbox tables of a redb write transaction, for `RedbSink`.
pub(super) struct RedbOutbox<'t> {
    alerts: Table<'t, &'static str, Bytes>,
    events: Table<'t, u64, Bytes>,
    deliveries: Table<'t, (u64, &'static str), Bytes>,
    cursors: Table<'t, &'static str, u64>,
    buf: Vec<u8>,
}

impl<'t> RedbOutbox<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(RedbOutbox {
            alerts: txn.open_table(tables::ALERTS)?,
            events: txn.open_table(tables::EVENTS)?,
            deliveries: txn.open_table(tables::DELIVERIES)?,
            cursors: txn.open_table(tables::WEBHOOK_CURSORS)?,
            buf: Vec::with_capacity(256),
        })
    }

    pub fn alerts(&mut self, rows: &[(String, AlertRow)]) -> Result<(), StoreError> {
        for (subject, row) in rows {
            codec::encode(row, &mut self.buf)?;
            self.alerts.insert(subject.as_str(), self.buf.as_slice())?;
        }
        Ok(())
    }

    pub fn events(&mut self, rows: &[(u64, EventRow)]) -> Result<(), StoreError> {
        for (seq, row) in rows {
            codec::encode(row, &mut self.buf)?;
            self.events.insert(*seq, self.buf.as_slice())?;
        }
        Ok(())
    }

    pub fn deliveries(&mut self, rows: &[Delivery]) -> Result<(), StoreError> {
        for (seq, url, row) in rows {
            codec::encode(row, &mut self.buf)?;
            self.deliveries
                .insert((*seq, url.as_str()), self.buf.as_slice())?;
        }
        Ok(())
    }

    pub fn webhook_cursors(&mut self, rows: &[(String, u64)]) -> Result<(), StoreError> {
        for (url, seq) in rows {
            self.cursors.insert(url.as_str(), *seq)?;
        }
        Ok(())
    }
}

/// Row counts of the outbox tables of a PostgreSQL ledger, as `count` selects them.
pub(super) const PG_COUNTS: &str = "(SELECT count(*) FROM alerts), \
     (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries), \
     (SELECT count(*) FROM webhook_cursors)";

/// Sends the outbox of the PostgreSQL ledger `txn` sees to `sink`, counting
/// the rows into `c`; returns the default threshold sent.
pub(super) fn read_pg(
    txn: &mut Transaction<'_>,
    sink: &mut dyn Sink,
    c: &mut Counts,
) -> Result<Option<i64>, StoreError> {
    c.alerts = stream(
        txn,
        "SELECT subject, level, low_balance_cents FROM alerts ORDER BY subject",
        |r| {
            let row = AlertRow {
                level: level_from_db(r.get(1))?,
                low_balance_cents: r.get(2),
            };
            Ok((r.get(0), row))
        },
        |b| sink.alerts(b),
    )?;
    c.events = stream(
        txn,
        "SELECT seq, kind, created_ms, subject, data FROM events ORDER BY seq",
        |r| {
            let row = EventRow {
                kind: r.get(1),
                created_ms: from_db(r.get(2)),
                subject: r.get(3),
                data: r.get(4),
            };
            Ok((from_db(r.get(0)), row))
        },
        |b| sink.events(b),
    )?;
    c.deliveries = stream(
        txn,
        "SELECT seq, url, status, attempts, first_attempt_ms, next_attempt_ms, last_status, \
         last_error, done_ms FROM deliveries ORDER BY seq, url",
        delivery_of,
        |b| sink.deliveries(b),
    )?;
    c.webhook_cursors = stream(
        txn,
        "SELECT url, seq FROM webhook_cursors ORDER BY url",
        |r| Ok((r.get(0), from_db(r.get(1)))),
        |b| sink.webhook_cursors(b),
    )?;
    let default = pg_default(txn)?;
    sink.low_balance_default(default)?;
    Ok(default)
}

fn delivery_of(r: &Row) -> Result<Delivery, StoreError> {
    let bad_field = |field: &str, value: i64| bad("delivery", format!("{field} {value}"));
    let status = r.get::<_, i16>(2);
    let attempts = r.get::<_, i32>(3);
    let last_status = match r.get::<_, Option<i32>>(6) {
        Some(s) => Some(u16::try_from(s).map_err(|_| bad_field("HTTP status", s.into()))?),
        None => None,
    };
    let row = DeliveryRow {
        status: u8::try_from(status).map_err(|_| bad_field("status", status.into()))?,
        attempts: u32::try_from(attempts).map_err(|_| bad_field("attempts", attempts.into()))?,
        first_attempt_ms: from_db(r.get(4)),
        next_attempt_ms: from_db(r.get(5)),
        last_status,
        last_error: r.get(7),
        done_ms: r.get::<_, Option<i64>>(8).map(from_db),
    };
    Ok((from_db(r.get(0)), r.get(1), row))
}

/// Runs one multi-row statement of the PostgreSQL sink.
fn exec(
    txn: &mut Transaction<'_>,
    table: &str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<(), StoreError> {
    txn.execute(sql, params)
        .map_err(|e| context(&format!("write table {table}"), e))?;
    Ok(())
}

pub(super) fn write_pg_alerts(
    txn: &mut Transaction<'_>,
    rows: &[(String, AlertRow)],
) -> Result<(), StoreError> {
    let subjects: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let levels: Vec<i16> = rows.iter().map(|r| r.1.level.code()).collect();
    let own: Vec<Option<i64>> = rows.iter().map(|r| r.1.low_balance_cents).collect();
    exec(
        txn,
        "alerts",
        "INSERT INTO alerts (subject, level, low_balance_cents) \
         SELECT * FROM unnest($1::text[], $2::int2[], $3::int8[])",
        &[&subjects, &levels, &own],
    )
}

pub(super) fn write_pg_events(
    txn: &mut Transaction<'_>,
    rows: &[(u64, EventRow)],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = rows.iter().map(|r| to_db(r.0)).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.1.kind.as_str()).collect();
    let created: Vec<i64> = rows.iter().map(|r| to_db(r.1.created_ms)).collect();
    let subjects: Vec<&str> = rows.iter().map(|r| r.1.subject.as_str()).collect();
    let data: Vec<&str> = rows.iter().map(|r| r.1.data.as_str()).collect();
    exec(
        txn,
        "events",
        "INSERT INTO events (seq, kind, created_ms, subject, data) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[])",
        &[&seqs, &kinds, &created, &subjects, &data],
    )
}

pub(super) fn write_pg_deliveries(
    txn: &mut Transaction<'_>,
    rows: &[Delivery],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = rows.iter().map(|r| to_db(r.0)).collect();
    let urls: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let status: Vec<i16> = rows.iter().map(|r| i16::from(r.2.status)).collect();
    let attempts = rows
        .iter()
        .map(|r| {
            i32::try_from(r.2.attempts).map_err(|_| {
                StoreError::Storage(format!(
                    "the delivery of event {} to a webhook counts {} attempts, more than \
                     PostgreSQL stores",
                    r.0, r.2.attempts
                ))
            })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    let first: Vec<i64> = rows.iter().map(|r| to_db(r.2.first_attempt_ms)).collect();
    let next: Vec<i64> = rows.iter().map(|r| to_db(r.2.next_attempt_ms)).collect();
    let last: Vec<Option<i32>> = rows
        .iter()
        .map(|r| r.2.last_status.map(i32::from))
        .collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.2.last_error.as_deref()).collect();
    let done: Vec<Option<i64>> = rows.iter().map(|r| r.2.done_ms.map(to_db)).collect();
    exec(
        txn,
        "deliveries",
        "INSERT INTO deliveries (seq, url, status, attempts, first_attempt_ms, \
         next_attempt_ms, last_status, last_error, done_ms) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::int2[], $4::int4[], $5::int8[], \
         $6::int8[], $7::int4[], $8::text[], $9::int8[])",
        &[
            &seqs, &urls, &status, &attempts, &first, &next, &last, &errors, &done,
        ],
    )
}

pub(super) fn write_pg_cursors(
    txn: &mut Transaction<'_>,
    rows: &[(String, u64)],
) -> Result<(), StoreError> {
    let urls: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| to_db(r.1)).collect();
    exec(
        txn,
        "webhook_cursors",
        "INSERT INTO webhook_cursors (url, seq) SELECT * FROM unnest($1::text[], $2::int8[])",
        &[&urls, &seqs],
    )
}

/// Stores (or with `None` removes) the default threshold of a PostgreSQL ledger.
pub(super) fn write_pg_default(
    txn: &mut Transaction<'_>,
    cents: Option<i64>,
) -> Result<(), StoreError> {
    match cents {
        Some(c) => exec(
            txn,
            "ledger_settings",
            "INSERT INTO ledger_settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&LOW_BALANCE_DEFAULT_KEY, &c],
        ),
        None => exec(
            txn,
            "ledger_settings",
            "DELETE FROM ledger_settings WHERE key = $1",
            &[&LOW_BALANCE_DEFAULT_KEY],
        ),
    }
}
