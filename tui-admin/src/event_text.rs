//! What an event (`list_events`) says, as text: who it is about, its figures,
//! where its webhook deliveries stand, and every field for the detail popup.
//! Shared by the Events view, its filter and the `events` subcommand.

use billing_api::{Delivery, DeliveryStatus, Event, EventType, rfc3339_to_millis};
use serde_json::Value;

use crate::format;

/// The user or node the event is about, or `pass` for a failed pass.
pub fn subject(event: &Event) -> String {
    let field = match event.kind {
        EventType::BalanceLow | EventType::BalanceOverdrawn | EventType::BalanceRecovered => {
            "user_sid"
        }
        EventType::NodeStale | EventType::NodeRecovered => "node_name",
        EventType::AggregationFailed => return "pass".to_string(),
    };
    text(&event.data, field).unwrap_or("?").to_string()
}

/// The event's figures in one line: the balance and what it was, the node's
/// newest usage hour, or why the pass failed. Data of another shape is shown
/// as its JSON.
pub fn details(event: &Event) -> String {
    let data = &event.data;
    let described = match event.kind {
        EventType::BalanceLow | EventType::BalanceOverdrawn | EventType::BalanceRecovered => {
            balance_details(data)
        }
        EventType::NodeStale => Some(format!(
            "newest hour {}, older than {}",
            text(data, "newest_hour").unwrap_or("none"),
            data.get("stale_after_secs")
                .and_then(Value::as_u64)
                .map(|secs| format::short_duration(secs.saturating_mul(1000)))
                .unwrap_or_else(|| "--stale-after".into())
        )),
        EventType::NodeRecovered => Some(format!(
            "newest hour {}",
            text(data, "newest_hour").unwrap_or("none")
        )),
        EventType::AggregationFailed => text(data, "message").map(str::to_string),
    };
    described.unwrap_or_else(|| data.to_string())
}

fn balance_details(data: &Value) -> Option<String> {
    let cents = |name: &str| data.get(name).and_then(Value::as_i64).map(format::cents);
    Some(format!(
        "balance {} (was {}, threshold {})",
        cents("balance_cents")?,
        cents("previous_balance_cents")?,
        cents("low_balance_cents")?
    ))
}

fn text<'a>(data: &'a Value, name: &str) -> Option<&'a str> {
    data.get(name).and_then(Value::as_str)
}

/// `pending`, `delivered` or `failed`.
pub fn status_word(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

/// The delivery that needs the most attention: failed, else pending, else
/// delivered; `None` when no webhook was configured for the event.
pub fn worst(deliveries: &[Delivery]) -> Option<&Delivery> {
    let rank = |d: &&Delivery| match d.status {
        DeliveryStatus::Delivered => 0,
        DeliveryStatus::Pending => 1,
        DeliveryStatus::Failed => 2,
    };
    deliveries.iter().rev().max_by_key(rank)
}

/// Where the event's webhook deliveries stand, in one line: the one that
/// needs the most attention, and how many of several URLs have it.
pub fn delivery(deliveries: &[Delivery], now_millis: u64) -> String {
    let Some(worst) = worst(deliveries) else {
        return "no webhook".to_string();
    };
    let total = deliveries.len();
    let delivered = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Delivered)
        .count();
    match total {
        1 => one_delivery(worst, now_millis),
        _ if delivered == total => format!("delivered to {total} URLs"),
        _ => format!(
            "{} · {delivered}/{total} delivered",
            one_delivery(worst, now_millis)
        ),
    }
}

fn one_delivery(d: &Delivery, now_millis: u64) -> String {
    match d.status {
        DeliveryStatus::Delivered if d.attempts > 1 => {
            format!("delivered after {}", attempts(d.attempts))
        }
        DeliveryStatus::Delivered => "delivered".to_string(),
        DeliveryStatus::Pending => {
            let mut parts = vec!["pending".to_string()];
            if d.attempts > 0 {
                parts.push(attempts(d.attempts));
            }
            if let Some(at) = &d.next_attempt_at {
                parts.push(match rfc3339_to_millis(at) {
                    Some(at) if at > now_millis => {
                        format!("next in {}", format::short_duration(at - now_millis))
                    }
                    Some(_) => "next due".to_string(),
                    None => format!("next {at}"),
                });
            }
            match (d.last_status, &d.last_error) {
                (Some(status), _) => parts.push(format!("last {status}")),
                (None, Some(error)) => parts.push(format!("last: {error}")),
                (None, None) => {}
            }
            parts.join(" · ")
        }
        DeliveryStatus::Failed => {
            let why = match (&d.last_error, d.last_status) {
                (Some(error), _) => error.clone(),
                (None, Some(status)) => format!("answered {status}"),
                (None, None) => "no answer".to_string(),
            };
            format!("failed after {}: {why}", attempts(d.attempts))
        }
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

/// Whether the event matches a lowercase filter: its id, type, subject,
/// details or the state of its deliveries.
pub fn matches(event: &Event, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let states = event
        .deliveries
        .iter()
        .map(|d| status_word(d.status))
        .chain(event.deliveries.is_empty().then_some("no webhook"));
    [
        event.id.clone(),
        event.kind.as_str().to_string(),
        subject(event),
        details(event),
    ]
    .into_iter()
    .chain(states.map(str::to_string))
    .any(|f| f.to_lowercase().contains(needle))
}

/// A timestamp and how far it is from now: `2026-… (40s ago)`, `(in 40s)`.
fn when(at: &str, now_millis: u64) -> String {
    match rfc3339_to_millis(at) {
        Some(t) if t > now_millis => {
            format!("{at} (in {})", format::short_duration(t - now_millis))
        }
        Some(_) => format!("{at} ({})", format::age(now_millis, at)),
        None => at.to_string(),
    }
}

/// Every field of the event, for the detail popup: the summary, the data
/// as pretty JSON, then each delivery's state.
pub fn detail_lines(event: &Event, now_millis: u64) -> Vec<String> {
    let mut lines = vec![
        format!("id        {}", event.id),
        format!("type      {}", event.kind.as_str()),
        format!("created   {}", when(&event.created_at, now_millis)),
        format!("subject   {}", subject(event)),
        format!("details   {}", details(event)),
        String::new(),
        "data".to_string(),
    ];
    let data = serde_json::to_string_pretty(&event.data).unwrap_or_else(|_| event.data.to_string());
    lines.extend(data.lines().map(|l| format!("  {l}")));
    lines.push(String::new());
    if event.deliveries.is_empty() {
        lines.push("deliveries: none (no webhook URL was configured when it was written)".into());
    } else {
        lines.push(format!("deliveries ({})", event.deliveries.len()));
    }
    let none = || "-".to_string();
    for d in &event.deliveries {
        lines.extend([
            format!("  {}", d.url),
            format!("    status        {}", status_word(d.status)),
            format!("    attempts      {}", d.attempts),
            format!(
                "    last status   {}",
                d.last_status.map(|s| s.to_string()).unwrap_or_else(none)
            ),
            format!(
                "    last error    {}",
                d.last_error.clone().unwrap_or_else(none)
            ),
            format!(
                "    next attempt  {}",
                d.next_attempt_at
                    .as_deref()
                    .map(|at| when(at, now_millis))
                    .unwrap_or_else(none)
            ),
            format!(
                "    delivered at  {}",
                d.delivered_at
                    .as_deref()
                    .map(|at| when(at, now_millis))
                    .unwrap_or_else(none)
            ),
        ]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(status: DeliveryStatus, attempts: u32) -> Delivery {
        Delivery {
            url: "https://hooks.example.org/billing".into(),
            status,
            attempts,
            last_status: None,
            last_error: None,
            next_attempt_at: None,
            delivered_at: None,
        }
    }

    fn event(kind: EventType, data: Value) -> Event {
        Event {
            id: "evt_000000000001".into(),
            kind,
            created_at: "2026-11-27T09:58:00.000Z".into(),
            data,
            deliveries: vec![],
        }
    }

    const NOW: &str = "2026-11-27T10:00:00Z";

    fn now() -> u64 {
        rfc3339_to_millis(NOW).unwrap()
    }

    #[test]
    fn balance_events_show_the_balance_what_it_was_and_the_threshold() {
        let e = event(
            EventType::BalanceOverdrawn,
            serde_json::json!({"user_sid": "u-0001", "balance_cents": -100,
                "previous_balance_cents": 1000, "low_balance_cents": 500}),
        );
        assert_eq!(subject(&e), "u-0001");
        assert_eq!(details(&e), "balance -1.00 (was 10.00, threshold 5.00)");
    }

    #[test]
    fn data_of_another_shape_is_shown_as_json() {
        let e = event(
            EventType::BalanceLow,
            serde_json::json!({"user_sid": "u-1"}),
        );
        assert_eq!(details(&e), r#"{"user_sid":"u-1"}"#);
        let e = event(EventType::AggregationFailed, Value::Null);
        assert_eq!((subject(&e), details(&e)), ("pass".into(), "null".into()));
    }

    #[test]
    fn delivery_states_read_as_one_line() {
        assert_eq!(delivery(&[], now()), "no webhook");
        assert_eq!(
            delivery(&[at(DeliveryStatus::Delivered, 1)], now()),
            "delivered"
        );
        let mut pending = at(DeliveryStatus::Pending, 3);
        pending.last_status = Some(503);
        pending.last_error = Some("answered 503".into());
        pending.next_attempt_at = Some("2026-11-27T10:00:40.000Z".into());
        assert_eq!(
            delivery(std::slice::from_ref(&pending), now()),
            "pending · 3 attempts · next in 40s · last 503"
        );
        let mut failed = at(DeliveryStatus::Failed, 17);
        failed.last_error = Some("connection refused".into());
        assert_eq!(
            delivery(&[failed.clone()], now()),
            "failed after 17 attempts: connection refused"
        );
        let ok = at(DeliveryStatus::Delivered, 1);
        assert_eq!(
            delivery(&[ok.clone(), failed, pending], now()),
            "failed after 17 attempts: connection refused · 1/3 delivered"
        );
        assert_eq!(delivery(&[ok.clone(), ok], now()), "delivered to 2 URLs");
        assert_eq!(
            delivery(&[at(DeliveryStatus::Pending, 0)], now()),
            "pending"
        );
    }

    #[test]
    fn the_filter_looks_at_type_subject_details_and_delivery_state() {
        let mut e = event(
            EventType::AggregationFailed,
            serde_json::json!({"run_id": 7, "message": "Repo Unreachable", "replica": "a"}),
        );
        for needle in [
            "aggregation",
            "pass",
            "repo unreachable",
            "no webhook",
            "evt_",
        ] {
            assert!(matches(&e, needle), "{needle}");
        }
        e.deliveries.push(at(DeliveryStatus::Pending, 0));
        assert!(matches(&e, "pending") && !matches(&e, "no webhook"));
        assert!(!matches(&e, "u-0001"));
    }
}
