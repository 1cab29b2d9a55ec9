//! The ledger's outbox: balance alerts (levels per user, events when a
//! change crosses a threshold), node and pass events, and the state of each
//! event's webhook deliveries. Balance events are written by the ledger rules
//! in the transaction of the change that caused them (`LedgerTxn::finish`).

pub mod outbox;
mod redb;
pub mod rules;

use billing_api::{Event, EventType};
use serde::{Deserialize, Serialize};

use super::StoreError;

pub use rules::Level;

/// `--low-balance-cents` when not given.
pub const DEFAULT_LOW_BALANCE_CENTS: i64 = 500;

/// The alert state of one subject (a user or a node), keyed by [`user_subject`]
/// or [`node_subject`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlertRow {
    pub level: Level,
    /// A user's own threshold (`set_user_threshold`); `None`: the ledger default.
    pub low_balance_cents: Option<i64>,
}

pub(crate) fn user_subject(sid: &str) -> String {
    format!("user/{sid}")
}

pub(crate) fn node_subject(node: &str) -> String {
    format!("node/{node}")
}

/// One event in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventRow {
    /// `EventType::as_str`.
    pub kind: String,
    pub created_ms: u64,
    /// `user/<sid>`, `node/<name>` or `pass`: deliveries of one subject keep their order.
    pub subject: String,
    /// The event's `data`, as JSON text.
    pub data: String,
}

impl EventRow {
    pub fn new(kind: EventType, created_ms: u64, subject: String, data: serde_json::Value) -> Self {
        EventRow {
            kind: kind.as_str().to_string(),
            created_ms,
            subject,
            data: data.to_string(),
        }
    }

    /// The listed and delivered form (without deliveries).
    pub fn to_api(&self, seq: u64) -> Event {
        Event {
            id: event_id(seq),
            kind: EventType::parse(&self.kind).unwrap_or(EventType::AggregationFailed),
            created_at: billing_api::millis_to_rfc3339(self.created_ms),
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
            deliveries: Vec::new(),
        }
    }
}

/// `evt_<seq>`, zero-padded so that ids sort like their events.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq:012}")
}

/// The sequence number of an event id, or `None` if it is not one.
pub fn parse_event_id(id: &str) -> Option<u64> {
    id.strip_prefix("evt_")?.parse().ok()
}

/// The event a `list_events` page starts below: the seq of `cursor`, an
/// event id; `None` without a cursor.
pub(crate) fn event_cursor(cursor: Option<&str>) -> Result<Option<u64>, StoreError> {
    cursor
        .map(|c| parse_event_id(c).ok_or_else(|| bad_cursor(c)))
        .transpose()
}

fn bad_cursor(cursor: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "cursor {cursor:?} is not an event id (evt_…); pass the next_cursor of the previous page"
    ))
}

/// The data of a balance event.
pub(crate) fn balance_data(
    sid: &str,
    before: i64,
    after: i64,
    threshold: i64,
) -> serde_json::Value {
    serde_json::json!({
        "user_sid": sid,
        "balance_cents": after,
        "previous_balance_cents": before,
        "low_balance_cents": threshold,
    })
}

/// Events a `list_events` page looks at before it answers (a filter by type
/// may match few): the page then ends early, with a `next_cursor`.
pub(crate) const LIST_SCAN: usize = 10_000;

/// The listed state of an event's delivery to `url`: its row, or pending
/// when the URL's cursor had reached the event; `None` for events written
/// before the URL was configured.
pub(crate) fn delivery_state(
    url: &str,
    row: Option<outbox::DeliveryRow>,
    cursor: Option<u64>,
    seq: u64,
) -> Option<billing_api::Delivery> {
    use billing_api::{Delivery, DeliveryStatus, millis_to_rfc3339};
    let shown = redact_url(url);
    match row {
        Some(d) => Some(Delivery {
            url: shown,
            status: match d.status {
                outbox::DELIVERED => DeliveryStatus::Delivered,
                outbox::FAILED => DeliveryStatus::Failed,
                _ => DeliveryStatus::Pending,
            },
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            next_attempt_at: (d.status == outbox::PENDING)
                .then(|| millis_to_rfc3339(d.next_attempt_ms)),
            delivered_at: (d.status == outbox::DELIVERED)
                .then_some(d.done_ms)
                .flatten()
                .map(millis_to_rfc3339),
        }),
        None if cursor.is_some_and(|c| c <= seq) => Some(Delivery {
            url: shown,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: None,
            delivered_at: None,
        }),
        None => None,
    }
}

/// A webhook URL as shown: scheme, host, port and path; no credentials, no query.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            )
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn shown_urls_lose_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:pa55word@hooks.example/in?token=x"),
            "https://hooks.example/in"
        );
        assert_eq!(
            redact_url("https://token@hooks.example:8443/in"),
            "https://hooks.example:8443/in"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook"
        );
        assert_eq!(redact_url("not a url pa55word"), "(not a URL)");
    }
}
