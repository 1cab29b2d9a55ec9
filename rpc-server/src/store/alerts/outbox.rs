//! Outbox operations written once against the ledger's rows (both backends
//! run them in one transaction each): users' thresholds, node and pass
//! events, and the delivery state of each event per webhook URL.

use billing_api::{EventType, UserThreshold};
use serde::{Deserialize, Serialize};

use super::super::StoreError;
use super::super::ledger::{LedgerTxn, Rows};
use super::{AlertRow, DEFAULT_LOW_BALANCE_CENTS, EventRow, Level, node_subject, user_subject};

/// Largest threshold a user may set (1,000,000,000.00).
pub const MAX_THRESHOLD_CENTS: i64 = 100_000_000_000;

/// Where one event's delivery to one URL stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveryRow {
    /// 0 pending, 1 delivered, 2 failed (given up).
    pub status: u8,
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub next_attempt_ms: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub done_ms: Option<u64>,
}

pub(crate) const PENDING: u8 = 0;
pub(crate) const DELIVERED: u8 = 1;
pub(crate) const FAILED: u8 = 2;

/// An event due for delivery to one URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub seq: u64,
    pub kind: String,
    pub created_ms: u64,
    pub data: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the first attempt was made (`None`: this is the first).
    pub first_attempt_ms: Option<u64>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    pub seq: u64,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    pub delivered: bool,
    pub error: Option<String>,
    /// When to try again; `None` after a delivery, or to give up.
    pub retry_at_ms: Option<u64>,
}

/// A node whose staleness changed since the last pass.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeChange {
    pub node_name: String,
    pub stale: bool,
    pub data: serde_json::Value,
}

/// Sets (or clears) a user's own threshold.
pub(crate) fn set_threshold_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    sid: &str,
    cents: Option<i64>,
) -> Result<UserThreshold, StoreError> {
    if let Some(c) = cents
        && !(0..=MAX_THRESHOLD_CENTS).contains(&c)
    {
        return Err(StoreError::InvalidInput(format!(
            "low_balance_cents must be between 0 and {MAX_THRESHOLD_CENTS}, got {c}; \
             pass null to use the server's --low-balance-cents"
        )));
    }
    if ledger.user(sid)?.is_none() {
        return Err(StoreError::NotFound {
            what: "user",
            key: sid.to_string(),
        });
    }
    let subject = user_subject(sid);
    let rows = ledger.rows();
    let alert = rows.alert(&subject)?.unwrap_or_default();
    rows.put_alert(
        &subject,
        &AlertRow {
            low_balance_cents: cents,
            ..alert
        },
    )?;
    let effective = match cents {
        Some(c) => c,
        None => rows
            .low_balance_default()?
            .unwrap_or(DEFAULT_LOW_BALANCE_CENTS),
    };
    ledger.finish()?;
    Ok(UserThreshold {
        user_sid: sid.to_string(),
        low_balance_cents: cents,
        effective_cents: effective,
    })
}

/// Writes node events for the nodes whose staleness changed (each once: the
/// node's level is stored), and `aggregation.failed` if given.
pub(crate) fn record_events_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    nodes: &[NodeChange],
    failed: Option<serde_json::Value>,
) -> Result<Vec<u64>, StoreError> {
    let now = ledger.now_ms;
    let rows = ledger.rows();
    let mut written = Vec::new();
    for change in nodes {
        let subject = node_subject(&change.node_name);
        let alert = rows.alert(&subject)?.unwrap_or_default();
        let was_stale = alert.level != Level::Ok;
        if was_stale == change.stale {
            continue;
        }
        let (kind, level) = if change.stale {
            (EventType::NodeStale, Level::Low)
        } else {
            (EventType::NodeRecovered, Level::Ok)
        };
        written.push(rows.put_event(&EventRow::new(
            kind,
            now,
            subject.clone(),
            change.data.clone(),
        ))?);
        rows.put_alert(&subject, &AlertRow { level, ..alert })?;
    }
    if let Some(data) = failed {
        let row = EventRow::new(EventType::AggregationFailed, now, "pass".into(), data);
        written.push(rows.put_event(&row)?);
    }
    ledger.finish()?;
    Ok(written)
}

/// Up to `max` events due for delivery to `url` at `now`: from the URL's
/// cursor on, the oldest undelivered event of each subject (so deliveries of
/// one user stay in order), whose retry time has come. Each is leased for
/// `lease_ms`, so that another replica does not send it meanwhile. A URL new
/// to the ledger starts with the next event written.
pub(crate) fn claim_due_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    url: &str,
    lease_ms: u64,
    max: usize,
) -> Result<Vec<Due>, StoreError> {
    let now = ledger.now_ms;
    let rows = ledger.rows();
    let Some(cursor) = rows.webhook_cursor(url)? else {
        let next = rows.next_event_seq()?;
        rows.put_webhook_cursor(url, next)?;
        ledger.finish()?;
        return Ok(Vec::new());
    };
    let mut blocked = std::collections::HashSet::new();
    let mut due = Vec::new();
    let mut done_prefix = true;
    let mut new_cursor = cursor;
    for (seq, event) in rows.events_from(cursor, SCAN_EVENTS)? {
        let delivery = rows.delivery(seq, url)?;
        let done = delivery.as_ref().is_some_and(|d| d.status != PENDING);
        if done {
            if done_prefix {
                new_cursor = seq + 1;
            }
            continue;
        }
        done_prefix = false;
        if !blocked.insert(event.subject.clone()) || due.len() >= max {
            continue;
        }
        let mut d = delivery.unwrap_or_default();
        if d.attempts > 0 && d.next_attempt_ms > now {
            continue;
        }
        due.push(Due {
            seq,
            kind: event.kind,
            created_ms: event.created_ms,
            data: event.data,
            attempts: d.attempts,
            first_attempt_ms: (d.attempts > 0).then_some(d.first_attempt_ms),
        });
        if d.attempts == 0 {
            d.first_attempt_ms = now;
        }
        // The lease: a crash mid-send retries after it.
        d.attempts += 1;
        d.next_attempt_ms = now + lease_ms;
        rows.put_delivery(seq, url, &d)?;
    }
    if new_cursor != cursor {
        rows.put_webhook_cursor(url, new_cursor)?;
    }
    ledger.finish()?;
    Ok(due)
}

/// Events looked at per claim.
const SCAN_EVENTS: usize = 1_000;

/// Records how the attempts at `url` ended.
pub(crate) fn record_attempts_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    url: &str,
    attempts: &[Attempted],
) -> Result<(), StoreError> {
    let now = ledger.now_ms;
    let rows = ledger.rows();
    for a in attempts {
        let mut d = rows.delivery(a.seq, url)?.unwrap_or_default();
        d.last_status = a.status;
        d.last_error = a.error.clone();
        if a.delivered {
            d.status = DELIVERED;
            d.done_ms = Some(now);
        } else if let Some(at) = a.retry_at_ms {
            d.next_attempt_ms = at;
        } else {
            d.status = FAILED;
            d.done_ms = Some(now);
        }
        rows.put_delivery(a.seq, url, &d)?;
    }
    ledger.finish()?;
    Ok(())
}

/// Stores the default threshold (`--low-balance-cents`).
pub(crate) fn set_default_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    cents: i64,
) -> Result<(), StoreError> {
    ledger.rows().put_low_balance_default(cents)?;
    ledger.finish()?;
    Ok(())
}
