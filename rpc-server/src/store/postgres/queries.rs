//! Reads on PostgreSQL: the same answers, pages and cursors as on redb.

use std::collections::HashMap;
use std::time::Instant;

use billing_api::{
    AggregateSummary, Balance, ConsumedRecord, Page, Payment, RejectedItem, UserBilling,
};

use super::super::codec::{ConsumedRow, RejectedRow, RunRow, SourceRow, existing_row, reason_code};
use super::super::nodes::NodeRecord;
use super::super::runs::RunTotals;
use super::super::verify::{Depth, Finding, VerifyReport};
use super::super::{LedgerCounts, StoreError, clamp_limit, page, seq_cursor};
use super::async_reads::{READ_TIMEOUT, ReadError};
use super::columns::{NODE_COLUMNS, PAYMENT_COLUMNS, node_of, payment_of, read_meta, user_of};
use super::{PgStore, db_err, from_db, to_db};

/// Applied records whose user or source row is missing (the consumed table has
/// no foreign keys: see migration 0002).
fn orphans(txn: &mut postgres::Transaction<'_>) -> Result<Vec<Finding>, StoreError> {
    let row = txn
        .query_one(
            "SELECT (SELECT count(*) FROM consumed c \
                     WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_sid = c.user_sid)), \
                    (SELECT count(*) FROM consumed c WHERE NOT EXISTS \
                     (SELECT 1 FROM consumed_sources s WHERE s.source_id = c.source_id))",
            &[],
        )
        .map_err(db_err)?;
    let mut findings = Vec::new();
    for (i, what) in [
        "applied records of unknown users",
        "applied records without a source",
    ]
    .into_iter()
    .enumerate()
    {
        let n: i64 = row.get(i);
        if n > 0 {
            findings.push(Finding {
                what: what.to_string(),
                stored: n.to_string(),
                actual: "0".to_string(),
            });
        }
    }
    Ok(findings)
}

/// Users listed one by one in a verify report; the rest are counted.
const MAX_LISTED: usize = 20;

/// Recomputes the counters from the rows.
pub(super) fn recount_in(txn: &mut postgres::Transaction<'_>) -> Result<LedgerCounts, StoreError> {
    let row = txn
        .query_one(
            "SELECT count(*), coalesce(sum(balance_cents), 0)::text, \
             count(*) FILTER (WHERE balance_cents < 0), \
             (SELECT count(*) FROM consumed), (SELECT count(*) FROM pending), \
             (SELECT count(*) FROM rejected) FROM users",
            &[],
        )
        .map_err(db_err)?;
    let total: String = row.get(1);
    Ok(LedgerCounts {
        total_users: from_db(row.get(0)),
        total_balance_cents: total.parse().map_err(|e| {
            StoreError::Storage(format!(
                "the sum of balances `{total}` is not a number ({e})"
            ))
        })?,
        overdrawn_users: from_db(row.get(2)),
        consumed_records: from_db(row.get(3)),
        pending_records: from_db(row.get(4)),
        rejected_items: from_db(row.get(5)),
    })
}

fn not_found(sid: &str) -> StoreError {
    StoreError::NotFound {
        what: "user",
        key: sid.to_string(),
    }
}

fn user_exists(txn: &mut postgres::Transaction<'_>, sid: &str) -> Result<(), StoreError> {
    txn.query_opt("SELECT 1 FROM users WHERE user_sid = $1", &[&sid])
        .map_err(db_err)?
        .map(|_| ())
        .ok_or_else(|| not_found(sid))
}

fn decode_run(value: serde_json::Value) -> Result<AggregateSummary, StoreError> {
    serde_json::from_value::<RunRow>(value)
        .map(|r| r.to_api())
        .map_err(|e| StoreError::Storage(format!("a stored run cannot be read ({e})")))
}

impl PgStore {
    /// O(1) headline counters.
    pub fn overview_counts(&self) -> Result<LedgerCounts, StoreError> {
        self.read("read the ledger counters", |txn| {
            Ok(read_meta(txn, false)?.counts)
        })
    }

    /// Recomputes the counters from every row; for audits and tests.
    pub fn recount(&self) -> Result<LedgerCounts, StoreError> {
        self.read("recount the ledger", recount_in)
    }

    /// Checks the stored counters against the rows, and (full) every user's
    /// totals against its payments and applied records.
    pub fn verify(&self, depth: Depth) -> Result<VerifyReport, StoreError> {
        let clock = Instant::now();
        self.read("verify the ledger", |txn| {
            let stored = read_meta(txn, false)?.counts;
            let counts = recount_in(txn)?;
            let mut findings = Vec::new();
            let mut more = 0u64;
            let fields = [
                (
                    "total_users",
                    stored.total_users.into(),
                    counts.total_users.into(),
                ),
                (
                    "total_balance_cents",
                    stored.total_balance_cents,
                    counts.total_balance_cents,
                ),
                (
                    "overdrawn_users",
                    stored.overdrawn_users.into(),
                    counts.overdrawn_users.into(),
                ),
                (
                    "consumed_records",
                    stored.consumed_records.into(),
                    counts.consumed_records.into(),
                ),
                (
                    "pending_records",
                    stored.pending_records.into(),
                    counts.pending_records.into(),
                ),
                (
                    "rejected_items",
                    stored.rejected_items.into(),
                    counts.rejected_items.into(),
                ),
            ];
            for (name, s, a) in fields {
                let (s, a): (i128, i128) = (s, a);
                if s != a {
                    findings.push(Finding {
                        what: format!("counter {name}"),
                        stored: s.to_string(),
                        actual: a.to_string(),
                    });
                }
            }
            if depth == Depth::Full {
                let rows = txn
                    .query(
                        "SELECT u.user_sid, u.paid_cents, u.consumed_cents, \
                         coalesce(p.s, 0)::text, coalesce(c.s, 0)::text \
                         FROM users u \
                         LEFT JOIN (SELECT user_sid, sum(amount_cents) AS s FROM payments \
                                    GROUP BY user_sid) p ON p.user_sid = u.user_sid \
                         LEFT JOIN (SELECT user_sid, sum(cost_cents) AS s FROM consumed \
                                    GROUP BY user_sid) c ON c.user_sid = u.user_sid \
                         WHERE u.paid_cents <> coalesce(p.s, 0) \
                            OR u.consumed_cents <> coalesce(c.s, 0) \
                         ORDER BY u.user_sid",
                        &[],
                    )
                    .map_err(db_err)?;
                let mut listed = 0;
                for row in rows {
                    let sid: String = row.get(0);
                    let (paid, consumed): (i64, i64) = (row.get(1), row.get(2));
                    let (sum_paid, sum_consumed): (String, String) = (row.get(3), row.get(4));
                    for (what, stored, sum, of) in [
                        ("total paid", paid, sum_paid, "sum of payments"),
                        (
                            "total consumed",
                            consumed,
                            sum_consumed,
                            "sum of applied records",
                        ),
                    ] {
                        if stored.to_string() == sum {
                            continue;
                        }
                        if listed < MAX_LISTED {
                            listed += 1;
                            findings.push(Finding {
                                what: format!("user `{sid}` {what}"),
                                stored: stored.to_string(),
                                actual: format!("{sum} ({of})"),
                            });
                        } else {
                            more += 1;
                        }
                    }
                }
            }
            if depth == Depth::Full {
                findings.extend(orphans(txn)?);
            }
            Ok(VerifyReport {
                ledger: self.location().to_string(),
                depth,
                consistent: findings.is_empty() && more == 0,
                stored,
                recounted: counts,
                users_checked: counts.total_users,
                findings,
                more_findings: more,
                elapsed_ms: clock.elapsed().as_millis() as u64,
            })
        })
    }

    pub fn get_user(&self, sid: &str) -> Result<UserBilling, StoreError> {
        let row = self
            .user_row("read a user", sid)?
            .ok_or_else(|| not_found(sid))?;
        let (sid, user) = user_of(&row);
        Ok(user.to_api(&sid))
    }

    pub fn get_balance(&self, sid: &str) -> Result<Balance, StoreError> {
        let row = self
            .user_row("read a balance", sid)?
            .ok_or_else(|| not_found(sid))?;
        let (sid, user) = user_of(&row);
        Ok(user.to_balance(&sid))
    }

    /// `get_balance` for a caller on an async runtime: on the runtime itself,
    /// over the pipelined read connections (see `async_reads`).
    pub async fn read_balance(&self, sid: &str) -> Result<Balance, StoreError> {
        let balance = self.shared.async_reads.balance(sid).await;
        self.async_result("read a balance", balance)?
            .ok_or_else(|| not_found(sid))
    }

    /// A read on the async connections as a store error, noted for `problem`.
    pub(super) fn async_result<T>(
        &self,
        op: &str,
        result: Result<T, ReadError>,
    ) -> Result<T, StoreError> {
        let result = result
            .map_err(|e| match e {
                ReadError::Db(e) => e,
                ReadError::TimedOut => StoreError::Io(format!(
                    "no answer from the ledger database within {}s",
                    READ_TIMEOUT.as_secs()
                )),
            })
            .map_err(|e| self.context(op, e));
        self.note(&result);
        result
    }

    /// Payments, newest first; only `user_sid`'s if given.
    pub fn list_payments(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Payment>, StoreError> {
        let limit = clamp_limit(limit);
        let before = to_db(seq_cursor(cursor)?.unwrap_or(u64::MAX));
        self.read("list payments", |txn| {
            if let Some(sid) = user_sid {
                user_exists(txn, sid)?;
            }
            let rows = txn
                .query(
                    &format!(
                        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE seq < $1 AND \
                         ($2::text IS NULL OR user_sid = $2) ORDER BY seq DESC LIMIT $3"
                    ),
                    &[&before, &user_sid, &(limit as i64 + 1)],
                )
                .map_err(db_err)?;
            let items = rows
                .iter()
                .map(|r| {
                    let (id, p) = payment_of(r);
                    (p.seq.to_string(), p.to_api(&id))
                })
                .collect();
            Ok(page(items, limit))
        })
    }

    /// Applied records, newest first; only `user_sid`'s if given.
    pub fn list_consumed(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConsumedRecord>, StoreError> {
        let limit = clamp_limit(limit);
        let before = to_db(seq_cursor(cursor)?.unwrap_or(u64::MAX));
        self.read("list consumed records", |txn| {
            if let Some(sid) = user_sid {
                user_exists(txn, sid)?;
            }
            let rows = txn
                .query(
                    "SELECT c.idempotency_key, c.seq, c.user_sid, c.cost_cents, c.source_id, \
                     s.node_name, s.commit_sha, s.file_path, s.applied_at_ms, c.resource \
                     FROM consumed c JOIN consumed_sources s ON s.source_id = c.source_id \
                     WHERE c.seq < $1 AND ($2::text IS NULL OR c.user_sid = $2) \
                     ORDER BY c.seq DESC LIMIT $3",
                    &[&before, &user_sid, &(limit as i64 + 1)],
                )
                .map_err(db_err)?;
            let mut items = Vec::with_capacity(rows.len());
            for r in &rows {
                let key: String = r.get(0);
                let sid: String = r.get(2);
                let seq: i64 = r.get(1);
                let source = SourceRow {
                    node_name: r.get(5),
                    commit_sha: r.get(6),
                    file_path: r.get(7),
                    applied_at_ms: from_db(r.get(8)),
                };
                let row = ConsumedRow {
                    key: &key,
                    user_sid: &sid,
                    cost_cents: r.get(3),
                    source: from_db(r.get(4)),
                    resource: r.get::<_, Option<&str>>(9),
                };
                items.push((seq.to_string(), row.to_api(&source)));
            }
            Ok(page(items, limit))
        })
    }

    /// Held and rejected records and files, newest first.
    pub fn list_rejected(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RejectedItem>, StoreError> {
        let limit = clamp_limit(limit);
        let before = to_db(seq_cursor(cursor)?.unwrap_or(u64::MAX));
        self.read("list rejected items", |txn| {
            let rows = txn
                .query(
                    "SELECT rejected_id, reason, node_name, file_path, blob_id, commit_sha, \
                     record_index, idempotency_key, user_sid, cost_cents, detail, existing, \
                     first_seen_ms, record_count FROM rejected WHERE rejected_id < $1 \
                     ORDER BY rejected_id DESC LIMIT $2",
                    &[&before, &(limit as i64 + 1)],
                )
                .map_err(db_err)?;
            let mut items = Vec::with_capacity(rows.len());
            for r in &rows {
                let id = from_db(r.get(0));
                let code: i16 = r.get(1);
                let reason = u8::try_from(code)
                    .ok()
                    .and_then(reason_code::reason)
                    .ok_or_else(|| {
                        StoreError::Storage(format!("unknown reject reason code {code}"))
                    })?;
                let existing: Option<serde_json::Value> = r.get(11);
                let existing = match existing {
                    Some(v) => existing_row::deserialize(v).map_err(|e| {
                        StoreError::Storage(format!("a stored rejected item cannot be read ({e})"))
                    })?,
                    None => None,
                };
                let record_index: Option<i64> = r.get(6);
                let row = RejectedRow {
                    reason,
                    node_name: r.get(2),
                    file_path: r.get(3),
                    blob_id: r.get(4),
                    commit_sha: r.get(5),
                    record_index: record_index.map(|i| u32::try_from(i).unwrap_or(u32::MAX)),
                    idempotency_key: r.get(7),
                    user_sid: r.get(8),
                    cost_cents: r.get(9),
                    detail: r.get(10),
                    existing,
                    first_seen_ms: from_db(r.get(12)),
                    fingerprint: None,
                };
                let mut item = row.to_api(id);
                if row.record_index.is_none() {
                    item.record_count = r.get::<_, Option<i64>>(13).map(from_db);
                }
                items.push((id.to_string(), item));
            }
            Ok(page(items, limit))
        })
    }

    pub fn node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.read("read a node", |txn| {
            let row = txn
                .query_opt(
                    &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_name = $1"),
                    &[&node_name],
                )
                .map_err(db_err)?;
            row.map(|r| node_of(&r).map(|(name, n)| NodeRecord::of(&name, n)))
                .transpose()
        })
    }

    /// Every known node, sorted by name.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read("list nodes", |txn| {
            let rows = txn
                .query(
                    &format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_name"),
                    &[],
                )
                .map_err(db_err)?;
            rows.iter()
                .map(|r| node_of(r).map(|(name, n)| NodeRecord::of(&name, n)))
                .collect()
        })
    }

    /// Node -> the newest usage hour consumed from it (file name): an index
    /// read per node (the primary key is `(node_name, file_path)`).
    pub fn newest_hours(&self) -> Result<HashMap<String, String>, StoreError> {
        self.read("read the newest hour of every node", |txn| {
            let rows = txn
                .query(
                    "SELECT n.node_name, f.file_path FROM nodes n CROSS JOIN LATERAL \
                     (SELECT file_path FROM consumed_files c WHERE c.node_name = n.node_name \
                      ORDER BY file_path DESC LIMIT $1) f",
                    &[&(crate::store::nodes::NEWEST_HOUR_LOOKBACK as i64)],
                )
                .map_err(db_err)?;
            let mut out = HashMap::new();
            for row in &rows {
                let node: String = row.get(0);
                let path: &str = row.get(1);
                if let Some(hour) = crate::store::nodes::newest_hour_name(path)
                    && out.get(&node).is_none_or(|h: &String| h.as_str() < hour)
                {
                    out.insert(node, hour.to_string());
                }
            }
            Ok(out)
        })
    }

    /// The database's size on disk, in bytes.
    pub fn ledger_size_bytes(&self) -> Result<u64, StoreError> {
        self.read("read the ledger size", |txn| {
            let row = txn
                .query_one("SELECT pg_database_size(current_database())", &[])
                .map_err(db_err)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    /// Path -> blob id of every file of the node already consumed.
    pub fn consumed_files(&self, node_name: &str) -> Result<HashMap<String, String>, StoreError> {
        self.read("list consumed files", |txn| {
            let rows = txn
                .query(
                    "SELECT file_path, blob_id FROM consumed_files WHERE node_name = $1",
                    &[&node_name],
                )
                .map_err(db_err)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// Head commit of the last pass that had no errors.
    pub fn clean_head(&self) -> Result<Option<String>, StoreError> {
        self.read("read the clean head", |txn| {
            Ok(read_meta(txn, false)?.clean_head)
        })
    }

    /// Figures over every run recorded, pruned ones included.
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        self.read("read the run totals", |txn| {
            let v: serde_json::Value = txn
                .query_one("SELECT run_totals FROM ledger_meta WHERE id = 1", &[])
                .map_err(db_err)?
                .get(0);
            Ok(serde_json::from_value(v).unwrap_or_default())
        })
    }

    pub fn next_run_id(&self) -> Result<u64, StoreError> {
        self.read("read the run counter", |txn| {
            Ok(read_meta(txn, false)?.run_seq + 1)
        })
    }

    pub fn last_run(&self) -> Result<Option<AggregateSummary>, StoreError> {
        self.read("read the last run", |txn| {
            let row = txn
                .query_opt("SELECT summary FROM runs ORDER BY run_id DESC LIMIT 1", &[])
                .map_err(db_err)?;
            row.map(|r| decode_run(r.get(0))).transpose()
        })
    }

    /// The replica that recorded the last pass.
    pub fn last_run_replica(&self) -> Result<Option<String>, StoreError> {
        self.read("read the last run", |txn| {
            let row = txn
                .query_opt("SELECT replica FROM runs ORDER BY run_id DESC LIMIT 1", &[])
                .map_err(db_err)?;
            Ok(row.and_then(|r| r.get(0)))
        })
    }

    /// Aggregation runs, newest first.
    pub fn list_runs(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AggregateSummary>, StoreError> {
        let limit = clamp_limit(limit);
        let before = to_db(seq_cursor(cursor)?.unwrap_or(u64::MAX));
        self.read("list runs", |txn| {
            let rows = txn
                .query(
                    "SELECT run_id, summary FROM runs WHERE run_id < $1 \
                     ORDER BY run_id DESC LIMIT $2",
                    &[&before, &(limit as i64 + 1)],
                )
                .map_err(db_err)?;
            let mut items = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: i64 = r.get(0);
                items.push((id.to_string(), decode_run(r.get(1))?));
            }
            Ok(page(items, limit))
        })
    }
}
