//! Events: balance thresholds crossed, passes failing, nodes going stale.
//! Each is written once to the ledger's outbox (balance events in the same
//! transaction as the change that caused them), listed by `list_events`, and
//! delivered to every configured webhook, at least once.

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// The balance fell below the user's low-balance threshold (and not below zero).
    #[serde(rename = "balance.low")]
    BalanceLow,
    /// The balance fell below zero.
    #[serde(rename = "balance.overdrawn")]
    BalanceOverdrawn,
    /// A balance that was low or overdrawn is at or above the threshold again.
    #[serde(rename = "balance.recovered")]
    BalanceRecovered,
    /// A pass failed as a whole, after one that did not.
    #[serde(rename = "aggregation.failed")]
    AggregationFailed,
    /// A node's newest usage hour became older than `--stale-after`.
    #[serde(rename = "node.stale")]
    NodeStale,
    /// A stale node reported again.
    #[serde(rename = "node.recovered")]
    NodeRecovered,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::BalanceLow,
        EventType::BalanceOverdrawn,
        EventType::BalanceRecovered,
        EventType::AggregationFailed,
        EventType::NodeStale,
        EventType::NodeRecovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BalanceLow => "balance.low",
            EventType::BalanceOverdrawn => "balance.overdrawn",
            EventType::BalanceRecovered => "balance.recovered",
            EventType::AggregationFailed => "aggregation.failed",
            EventType::NodeStale => "node.stale",
            EventType::NodeRecovered => "node.recovered",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Where a webhook delivery of an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; retried at `next_attempt_at`.
    Pending,
    /// A 2xx answer came back.
    Delivered,
    /// Given up after 24 hours of retries.
    Failed,
}

/// One event's delivery to one webhook URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The webhook URL, credentials removed.
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// HTTP status of the last answer, if one came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

/// One event, as listed and as delivered (`deliveries` is not sent to webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_<sequence>`: the `webhook-id` of its deliveries; stable, unique.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub created_at: String,
    /// The user or node it is about, and the figures (see README, "Events").
    pub data: serde_json::Value,
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

/// `set_user_threshold` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserThreshold {
    pub user_sid: String,
    /// The user's own threshold; null: the server's `--low-balance-cents`.
    pub low_balance_cents: Option<i64>,
    /// The threshold in force for this user.
    pub effective_cents: i64,
}
