//! Reading a PostgreSQL ledger for a migration: one snapshot, each table
//! streamed through a portal a batch at a time. Columns and encodings are
//! those of `postgres/rows.rs`.

use postgres::{Client, NoTls, Row, Transaction};

use super::super::codec::{
    MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, RunRow, SourceRow, TallyRow, UserRow,
    existing_row, reason_code, status_code,
};
use super::super::postgres::{db_err, from_db};
use super::super::runs::RunTotals;
use super::super::{LedgerCounts, StoreError};
use super::{AppliedRow, BATCH, Counts, Sent, Sink, outbox};

/// A database error, saying what failed where.
pub(super) fn context(op: &str, e: postgres::Error) -> StoreError {
    match db_err(e) {
        StoreError::Io(m) => StoreError::Io(format!(
            "{op}: {m}; check that PostgreSQL is up and reachable, then run the copy again"
        )),
        StoreError::Storage(m) => StoreError::Storage(format!("{op}: {m}")),
        other => other,
    }
}

/// A connection of the migration's own, outside `PgStore`'s pool.
pub(super) fn connect(
    config: &tokio_postgres::Config,
    location: &str,
) -> Result<Client, StoreError> {
    let mut config = postgres::Config::from(config.clone());
    config.application_name("rpc-server migrate-ledger");
    config.connect(NoTls).map_err(|e| {
        StoreError::Io(format!(
            "cannot connect to the ledger database {location}: {}. Check the URL, that \
             PostgreSQL runs there and accepts connections from this host, and the password \
             (--ledger-password-file or PGPASSWORD)",
            billing_api::text::error_chain(&e)
        ))
    })
}

/// Refuses a database without a ledger, instead of creating an empty one to copy.
pub(super) fn check_has_ledger(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let row = client
        .query_one("SELECT to_regclass('ledger_meta') IS NOT NULL", &[])
        .map_err(|e| context(&format!("look for the ledger in {location}"), e))?;
    if row.get(0) {
        return Ok(());
    }
    Err(StoreError::InvalidInput(format!(
        "the database {location} holds no ledger (no table ledger_meta); check the database \
         name in --from"
    )))
}

/// Row counts of every copied table.
pub(super) fn count(txn: &mut Transaction<'_>) -> Result<Counts, StoreError> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM payments), \
         (SELECT count(*) FROM consumed_sources), (SELECT count(*) FROM consumed), \
         (SELECT count(*) FROM pending), (SELECT count(*) FROM rejected), \
         (SELECT count(record_count) FROM rejected), \
         (SELECT count(*) FROM rejected_fingerprints), (SELECT count(*) FROM file_tallies), \
         (SELECT count(*) FROM nodes), (SELECT count(*) FROM consumed_files), \
         (SELECT count(*) FROM runs), {}",
        outbox::PG_COUNTS
    );
    let row = txn.query_one(&sql, &[]).map_err(db_err)?;
    let n = |i: usize| from_db(row.get(i));
    Ok(Counts {
        users: n(0),
        payments: n(1),
        consumed_sources: n(2),
        consumed: n(3),
        pending: n(4),
        rejected: n(5),
        rejected_counts: n(6),
        rejected_fingerprints: n(7),
        file_tallies: n(8),
        nodes: n(9),
        consumed_files: n(10),
        runs: n(11),
        alerts: n(12),
        events: n(13),
        deliveries: n(14),
        webhook_cursors: n(15),
    })
}

/// The meta row and run totals; `lock` takes the row lock every writer takes first.
pub(super) fn read_meta(
    txn: &mut Transaction<'_>,
    lock: bool,
) -> Result<(MetaRow, RunTotals), StoreError> {
    let sql = format!(
        "SELECT total_users, total_balance_cents::text, overdrawn_users, consumed_records, \
         pending_records, rejected_items, consumed_seq, payment_seq, rejected_seq, run_seq, \
         user_seq, group_seq, source_seq, clean_head, run_totals FROM ledger_meta WHERE id = 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = txn.query_one(&sql, &[]).map_err(db_err)?;
    let total: String = row.get(1);
    let total_balance_cents = total.parse::<i128>().map_err(|e| {
        StoreError::Storage(format!(
            "ledger_meta.total_balance_cents `{total}` is not a whole number ({e})"
        ))
    })?;
    let n = |i: usize| from_db(row.get(i));
    let meta = MetaRow {
        counts: LedgerCounts {
            total_users: n(0),
            total_balance_cents,
            overdrawn_users: n(2),
            consumed_records: n(3),
            pending_records: n(4),
            rejected_items: n(5),
        },
        consumed_seq: n(6),
        payment_seq: n(7),
        rejected_seq: n(8),
        run_seq: n(9),
        user_seq: n(10),
        group_seq: n(11),
        source_seq: n(12),
        clean_head: row.get(13),
    };
    // A new ledger's totals are `{}`: none yet (as `PgStore::run_totals` reads them).
    let totals = serde_json::from_value(row.get(14)).unwrap_or_default();
    Ok((meta, totals))
}

/// Streams the rows of `sql` a batch at a time.
pub(super) fn stream<T>(
    txn: &mut Transaction<'_>,
    sql: &str,
    convert: impl Fn(&Row) -> Result<T, StoreError>,
    mut send: impl FnMut(&[T]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let portal = txn.bind(sql, &[]).map_err(db_err)?;
    let mut sent = 0;
    loop {
        let rows = txn.query_portal(&portal, BATCH as i32).map_err(db_err)?;
        let batch = rows.iter().map(&convert).collect::<Result<Vec<T>, _>>()?;
        if !batch.is_empty() {
            send(&batch)?;
            sent += batch.len() as u64;
        }
        if rows.len() < BATCH {
            return Ok(sent);
        }
    }
}

pub(super) fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("a stored {what} cannot be read ({e})"))
}

/// Sends every row of the ledger `txn` sees to `sink`.
pub(super) fn read(txn: &mut Transaction<'_>, sink: &mut dyn Sink) -> Result<Sent, StoreError> {
    let source = count(txn)?;
    let (meta, totals) = read_meta(txn, false)?;
    sink.meta(&meta, &totals)?;
    let mut c = Counts {
        users: stream(
            txn,
            "SELECT user_sid, user_id, display_name, email, created_at_ms, balance_cents, \
         paid_cents, consumed_cents FROM users ORDER BY user_sid",
            |r| {
                let row = UserRow {
                    id: from_db(r.get(1)),
                    last_group: 0,
                    display_name: r.get(2),
                    email: r.get(3),
                    created_at_ms: from_db(r.get(4)),
                    balance_cents: r.get(5),
                    paid_cents: r.get(6),
                    consumed_cents: r.get(7),
                };
                Ok((r.get(0), row))
            },
            |b| sink.users(b),
        )?,
        ..Counts::default()
    };
    c.payments = stream(
        txn,
        "SELECT payment_id, seq, user_sid, amount_cents, kind, reference, created_at_ms \
         FROM payments ORDER BY seq",
        |r| {
            let row = PaymentRow {
                seq: from_db(r.get(1)),
                user_sid: r.get(2),
                amount_cents: r.get(3),
                kind: r.get(4),
                reference: r.get(5),
                created_at_ms: from_db(r.get(6)),
            };
            Ok((r.get(0), row))
        },
        |b| sink.payments(b),
    )?;
    c.consumed_sources = stream(
        txn,
        "SELECT source_id, node_name, commit_sha, file_path, applied_at_ms \
         FROM consumed_sources ORDER BY source_id",
        |r| {
            let row = SourceRow {
                node_name: r.get(1),
                commit_sha: r.get(2),
                file_path: r.get(3),
                applied_at_ms: from_db(r.get(4)),
            };
            Ok((from_db(r.get(0)), row))
        },
        |b| sink.sources(b),
    )?;
    // Grouped by user, for redb's per-user index (see `Sink::consumed`).
    c.consumed = stream(
        txn,
        "SELECT idempotency_key, seq, user_sid, cost_cents, source_id, resource FROM consumed \
         ORDER BY user_sid, seq",
        |r| {
            Ok(AppliedRow {
                key: r.get(0),
                seq: from_db(r.get(1)),
                user_sid: r.get(2),
                cost_cents: r.get(3),
                source: from_db(r.get(4)),
                resource: r.get(5),
            })
        },
        |b| sink.consumed(b),
    )?;
    c.pending = stream(
        txn,
        "SELECT idempotency_key, user_sid, node_name, cost_cents, commit_sha, file_path, \
         blob_id, record_index, first_seen_ms, rejected_id, resource FROM pending \
         ORDER BY idempotency_key",
        |r| {
            let row = PendingRow {
                user_sid: r.get(1),
                node_name: r.get(2),
                cost_cents: r.get(3),
                commit_sha: r.get(4),
                file_path: r.get(5),
                blob_id: r.get(6),
                record_index: u32::try_from(r.get::<_, i64>(7)).unwrap_or(u32::MAX),
                first_seen_ms: from_db(r.get(8)),
                rejected_id: from_db(r.get(9)),
                resource: r.get(10),
            };
            Ok((r.get(0), row))
        },
        |b| sink.pending(b),
    )?;
    let mut with_count = 0;
    c.rejected = stream(
        txn,
        "SELECT rejected_id, reason, node_name, file_path, blob_id, commit_sha, record_index, \
         idempotency_key, user_sid, cost_cents, detail, existing, first_seen_ms, fingerprint, \
         record_count FROM rejected ORDER BY rejected_id",
        rejected_of,
        |b| {
            with_count += b.iter().filter(|r| r.2.is_some()).count() as u64;
            sink.rejected(b)
        },
    )?;
    c.rejected_counts = with_count;
    c.rejected_fingerprints = stream(
        txn,
        "SELECT fingerprint, rejected_id FROM rejected_fingerprints ORDER BY fingerprint",
        |r| {
            let fp = String::from_utf8(r.get(0)).map_err(|e| bad("fingerprint", e))?;
            Ok((fp, from_db(r.get(1))))
        },
        |b| sink.fingerprints(b),
    )?;
    c.file_tallies = stream(
        txn,
        "SELECT node_name, file_path, blob_id, next_index, stored, omitted, by_kind, summary_id \
         FROM file_tallies ORDER BY node_name, file_path, blob_id",
        |r| {
            let by_kind = serde_json::from_value(r.get(6)).map_err(|e| bad("file tally", e))?;
            let row = TallyRow {
                next_index: from_db(r.get(3)),
                stored: from_db(r.get(4)),
                omitted: from_db(r.get(5)),
                by_kind,
                summary_id: from_db(r.get(7)),
            };
            Ok(((r.get(0), r.get(1), r.get(2)), row))
        },
        |b| sink.tallies(b),
    )?;
    c.nodes = stream(
        txn,
        "SELECT node_name, tree_id, last_commit_sha, last_run_at_ms, records_consumed_total, \
         status, last_error FROM nodes ORDER BY node_name",
        |r| {
            let code: i16 = r.get(5);
            let status = u8::try_from(code)
                .ok()
                .and_then(status_code::status)
                .ok_or_else(|| bad("node", format!("unknown status code {code}")))?;
            let row = NodeRow {
                tree_id: r.get(1),
                last_commit_sha: r.get(2),
                last_run_at_ms: r.get::<_, Option<i64>>(3).map(from_db),
                records_consumed_total: from_db(r.get(4)),
                status,
                last_error: r.get(6),
            };
            Ok((r.get(0), row))
        },
        |b| sink.nodes(b),
    )?;
    c.consumed_files = stream(
        txn,
        "SELECT node_name, file_path, blob_id FROM consumed_files ORDER BY node_name, file_path",
        |r| Ok((r.get(0), r.get(1), r.get(2))),
        |b| sink.consumed_files(b),
    )?;
    c.runs = stream(
        txn,
        "SELECT summary, replica FROM runs ORDER BY run_id",
        |r| {
            let row: RunRow = serde_json::from_value(r.get(0)).map_err(|e| bad("run", e))?;
            Ok((row, r.get(1)))
        },
        |b| sink.runs(b),
    )?;
    let low_balance_default = outbox::read_pg(txn, sink, &mut c)?;
    Ok(Sent {
        copied: c,
        source,
        low_balance_default,
    })
}

fn rejected_of(r: &Row) -> Result<(u64, RejectedRow, Option<u64>), StoreError> {
    let code: i16 = r.get(1);
    let reason = u8::try_from(code)
        .ok()
        .and_then(reason_code::reason)
        .ok_or_else(|| bad("rejected item", format!("unknown reason code {code}")))?;
    let existing = match r.get::<_, Option<serde_json::Value>>(11) {
        Some(v) => existing_row::deserialize(v).map_err(|e| bad("rejected item", e))?,
        None => None,
    };
    let fingerprint = r
        .get::<_, Option<Vec<u8>>>(13)
        .map(String::from_utf8)
        .transpose()
        .map_err(|e| bad("rejected item's fingerprint", e))?;
    let row = RejectedRow {
        reason,
        node_name: r.get(2),
        file_path: r.get(3),
        blob_id: r.get(4),
        commit_sha: r.get(5),
        record_index: r
            .get::<_, Option<i64>>(6)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX)),
        idempotency_key: r.get(7),
        user_sid: r.get(8),
        cost_cents: r.get(9),
        detail: r.get(10),
        existing,
        first_seen_ms: from_db(r.get(12)),
        fingerprint,
    };
    Ok((
        from_db(r.get(0)),
        row,
        r.get::<_, Option<i64>>(14).map(from_db),
    ))
}
