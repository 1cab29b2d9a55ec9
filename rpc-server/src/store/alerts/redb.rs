//! The outbox on redb: the operations of `outbox.rs` in one write
//! transaction each, and the event listing.

use billing_api::{Event, EventType, Page, UserThreshold};

use super::super::{RedbStore, StoreError, codec, redb_rows, tables};
use super::outbox::{self, Attempted, DeliveryRow, Due, NodeChange};
use super::{AlertRow, EventRow, Level, event_cursor, event_id, node_subject};

impl RedbStore {
    pub fn set_user_threshold(
        &self,
        sid: &str,
        cents: Option<i64>,
        now_ms: u64,
    ) -> Result<UserThreshold, StoreError> {
        self.write(&format!("set the threshold of user `{sid}`"), |txn| {
            outbox::set_threshold_into(redb_rows::ledger(txn, now_ms)?, sid, cents)
        })
    }

    pub fn set_low_balance_default(&self, cents: i64, now_ms: u64) -> Result<(), StoreError> {
        self.write("store the default low-balance threshold", |txn| {
            outbox::set_default_into(redb_rows::ledger(txn, now_ms)?, cents)
        })
    }

    pub fn record_events(
        &self,
        nodes: &[NodeChange],
        failed: Option<serde_json::Value>,
        now_ms: u64,
    ) -> Result<Vec<u64>, StoreError> {
        // Most passes change nothing: they cost a read instead of a durable commit.
        if failed.is_none()
            && !self.read("check node events", |txn| any_node_changed(txn, nodes))?
        {
            return Ok(Vec::new());
        }
        self.write("record node and pass events", |txn| {
            outbox::record_events_into(redb_rows::ledger(txn, now_ms)?, nodes, failed.clone())
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
            outbox::claim_due_into(redb_rows::ledger(txn, now_ms)?, url, lease_ms, max)
        })
    }

    pub fn record_deliveries(
        &self,
        url: &str,
        attempts: &[Attempted],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.write("record webhook deliveries", |txn| {
            outbox::record_attempts_into(redb_rows::ledger(txn, now_ms)?, url, attempts)
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
        let before = event_cursor(cursor)?;
        self.read("list events", |txn| {
            let events = txn.open_table(tables::EVENTS)?;
            let deliveries = txn.open_table(tables::DELIVERIES)?;
            let cursors = txn.open_table(tables::WEBHOOK_CURSORS)?;
            let mut starts = Vec::new();
            for url in urls {
                starts.push(cursors.get(url.as_str())?.map(|v| v.value()));
            }
            let range = match before {
                Some(seq) => events.range(..seq)?,
                None => events.range::<u64>(..)?,
            };
            let mut items = Vec::new();
            let mut scanned = 0;
            let mut last_seen = None;
            for entry in range.rev() {
                let (seq, bytes) = entry?;
                let seq = seq.value();
                last_seen = Some(seq);
                scanned += 1;
                let row: EventRow = codec::decode_owned(bytes.value(), "event")?;
                if kind.is_none_or(|k| k.as_str() == row.kind) {
                    let mut event = row.to_api(seq);
                    for (url, start) in urls.iter().zip(&starts) {
                        let d: Option<DeliveryRow> = match deliveries.get((seq, url.as_str()))? {
                            Some(b) => Some(codec::decode_owned(b.value(), "delivery")?),
                            None => None,
                        };
                        if let Some(state) = super::delivery_state(url, d, *start, seq) {
                            event.deliveries.push(state);
                        }
                    }
                    items.push(event);
                }
                if items.len() >= limit as usize || scanned >= super::LIST_SCAN {
                    break;
                }
            }
            let next_cursor = match last_seen {
                Some(seq)
                    if seq > 1
                        && (items.len() >= limit as usize || scanned >= super::LIST_SCAN) =>
                {
                    Some(event_id(seq))
                }
                _ => None,
            };
            Ok(Page { items, next_cursor })
        })
    }
}

/// Whether the staleness of any of `nodes` differs from what the outbox
/// last wrote for it (what `record_events_into` would write an event for).
fn any_node_changed(txn: &redb::ReadTransaction, nodes: &[NodeChange]) -> Result<bool, StoreError> {
    let alerts = txn.open_table(tables::ALERTS)?;
    for change in nodes {
        let was_stale = match alerts.get(node_subject(&change.node_name).as_str())? {
            Some(bytes) => {
                codec::decode_owned::<AlertRow>(bytes.value(), "alert")?.level != Level::Ok
            }
            None => false,
        };
        if was_stale != change.stale {
            return Ok(true);
        }
    }
    Ok(false)
}
