//! The outbox on PostgreSQL: the operations of `alerts/outbox.rs` in one
//! transaction each (after the meta row lock, like every ledger write), and
//! the event listing.

use std::collections::HashMap;

use billing_api::{Event, EventType, Page, UserThreshold};

use super::super::StoreError;
use super::super::alerts::outbox::{self, Attempted, Due, NodeChange};
use super::super::alerts::{Level, delivery_state, event_cursor, node_subject};
use super::super::ledger::LedgerTxn;
use super::alert_rows::{DELIVERY_COLUMNS, delivery_of_at, event_of};
use super::rows::PgRows;
use super::{PgStore, db_err, from_db, to_db};

impl PgStore {
    pub fn set_user_threshold(
        &self,
        sid: &str,
        cents: Option<i64>,
        now_ms: u64,
    ) -> Result<UserThreshold, StoreError> {
        self.write(&format!("set the threshold of user `{sid}`"), |txn| {
            let mut rows = PgRows::lock(txn)?;
            let out = outbox::set_threshold_into(LedgerTxn::open(&mut rows, now_ms)?, sid, cents)?;
            rows.flush()?;
            Ok(out)
        })
    }

    pub fn set_low_balance_default(&self, cents: i64, now_ms: u64) -> Result<(), StoreError> {
        self.write("store the default low-balance threshold", |txn| {
            let mut rows = PgRows::lock(txn)?;
            outbox::set_default_into(LedgerTxn::open(&mut rows, now_ms)?, cents)?;
            rows.flush()
        })
    }

    pub fn record_events(
        &self,
        nodes: &[NodeChange],
        failed: Option<serde_json::Value>,
        now_ms: u64,
    ) -> Result<Vec<u64>, StoreError> {
        // Most passes change nothing: they cost a read instead of a write under the meta lock.
        if failed.is_none()
            && !self.read("check node events", |txn| any_node_changed(txn, nodes))?
        {
            return Ok(Vec::new());
        }
        self.write("record node and pass events", |txn| {
            let mut rows = PgRows::lock(txn)?;
            let out = outbox::record_events_into(
                LedgerTxn::open(&mut rows, now_ms)?,
                nodes,
                failed.clone(),
            )?;
            rows.flush()?;
            Ok(out)
        })
    }

    pub fn claim_deliveries(
        &self,
        url: &str,
        lease_ms: u64,
        max: usize,
        now_ms: u64,
    ) -> Result<Vec<Due>, StoreError> {
        self.write("claim webhook deliveries", |txn| {
            let mut rows = PgRows::lock(txn)?;
            let out =
                outbox::claim_due_into(LedgerTxn::open(&mut rows, now_ms)?, url, lease_ms, max)?;
            rows.flush()?;
            Ok(out)
        })
    }

    pub fn record_deliveries(
        &self,
        url: &str,
        attempts: &[Attempted],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.write("record webhook deliveries", |txn| {
            let mut rows = PgRows::lock(txn)?;
            outbox::record_attempts_into(LedgerTxn::open(&mut rows, now_ms)?, url, attempts)?;
            rows.flush()
        })
    }

    /// Events newest first, only of `kind` if given, with their deliveries to `urls`.
    pub fn list_events(
        &self,
        cursor: Option<&str>,
        limit: u32,
        kind: Option<EventType>,
        urls: &[String],
    ) -> Result<Page<Event>, StoreError> {
        let before = event_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list events", |txn| {
            let kind_text = kind.map(|k| k.as_str());
            let rows = txn
                .query(
                    "SELECT seq, kind, created_ms, subject, data FROM events \
                     WHERE seq < $1 AND ($2::text IS NULL OR kind = $2) \
                     ORDER BY seq DESC LIMIT $3",
                    &[&to_db(before), &kind_text, &i64::from(limit)],
                )
                .map_err(db_err)?;
            let mut starts = Vec::new();
            for url in urls {
                let row = txn
                    .query_opt("SELECT seq FROM webhook_cursors WHERE url = $1", &[url])
                    .map_err(db_err)?;
                starts.push(row.map(|r| from_db(r.get(0))));
            }
            // Every delivery of the page's events in one query.
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let mut deliveries = HashMap::new();
            if !urls.is_empty() && !seqs.is_empty() {
                for row in txn
                    .query(
                        &format!(
                            "SELECT seq, url, {DELIVERY_COLUMNS} FROM deliveries \
                             WHERE seq = ANY($1) AND url = ANY($2)"
                        ),
                        &[&seqs, &urls],
                    )
                    .map_err(db_err)?
                {
                    let seq: i64 = row.get(0);
                    let url: String = row.get(1);
                    deliveries.insert((from_db(seq), url), delivery_of_at(&row, 2));
                }
            }
            let mut items = Vec::new();
            for row in &rows {
                let (seq, event_row) = event_of(row);
                let mut event = event_row.to_api(seq);
                for (url, start) in urls.iter().zip(&starts) {
                    let d = deliveries.remove(&(seq, url.clone()));
                    if let Some(state) = delivery_state(url, d, *start, seq) {
                        event.deliveries.push(state);
                    }
                }
                items.push(event);
            }
            let next_cursor = match items.last() {
                Some(last) if items.len() >= limit as usize => Some(last.id.clone()),
                _ => None,
            };
            Ok(Page { items, next_cursor })
        })
    }
}

/// Whether the staleness of any of `nodes` differs from what the outbox
/// last wrote for it (what `record_events_into` would write an event for).
fn any_node_changed(
    txn: &mut postgres::Transaction<'_>,
    nodes: &[NodeChange],
) -> Result<bool, StoreError> {
    let subjects: Vec<String> = nodes.iter().map(|n| node_subject(&n.node_name)).collect();
    let stale: HashMap<String, bool> = txn
        .query(
            "SELECT subject, level FROM alerts WHERE subject = ANY($1)",
            &[&subjects],
        )
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get::<_, i16>(1) != Level::Ok.code()))
        .collect();
    Ok(nodes
        .iter()
        .zip(&subjects)
        .any(|(n, s)| stale.get(s).copied().unwrap_or(false) != n.stale))
}
