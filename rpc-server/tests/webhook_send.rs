//! The webhook sender against a real receiver that verifies signatures on its
//! own: refusals, a timeout, a receiver that is down, then delivery.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use billing_server::webhooks::{SendOutcome, Sender, WebhookSecret};
use common::webhook_receiver::{WebhookReceiver, verify_signature};
use reqwest::Url;
use serde_json::json;

const SECRET: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
const KEY_TEXT: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM";
const TIMEOUT: Duration = Duration::from_millis(500);

fn new_sender(secret: &str) -> Sender {
    Sender::new(WebhookSecret::parse(secret).unwrap(), TIMEOUT).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id,
        "type": "balance.low",
        "data": {"user_sid": "u-1", "balance_cents": 120, "threshold_cents": 500},
    }))
    .unwrap()
}

fn assert_secret_free(reason: &str) {
    assert!(!reason.contains(SECRET), "{reason}");
    assert!(!reason.contains(KEY_TEXT), "{reason}");
}

/// The receiver's verifier must itself be right, or its verdicts prove nothing.
#[test]
fn the_receivers_own_verifier_accepts_the_specification_example() {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    let (id, ts, body) = (
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        br#"{"test": 2432232314}"#,
    );
    let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert!(verify_signature(&key, id, ts, body, good));
    assert!(verify_signature(
        &key,
        id,
        ts,
        body,
        &format!("v1,bm9wZQ== {good}")
    ));
    assert!(!verify_signature(&key, id, "1614265331", body, good));
    assert!(!verify_signature(
        &key,
        id,
        ts,
        br#"{"test": 2432232315}"#,
        good
    ));
    assert!(!verify_signature(
        &key,
        id,
        ts,
        body,
        &good.replacen("v1", "v2", 1)
    ));
}

#[tokio::test]
async fn failures_then_a_timeout_then_delivery() {
    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.fail_next(2);
    receiver.stall_next(TIMEOUT * 6);
    let sender = new_sender(SECRET);
    let url = Url::parse(&receiver.url()).unwrap();
    let body = event("evt_1");

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(sender.send(&url, "evt_1", now(), &body).await);
    }
    assert_eq!(outcomes[0], SendOutcome::Refused { status: 500 });
    assert_eq!(outcomes[1], SendOutcome::Refused { status: 500 });
    let SendOutcome::Unreachable { reason } = &outcomes[2] else {
        panic!("expected a timeout, got {:?}", outcomes[2]);
    };
    assert!(reason.starts_with("timed out after 500ms"), "{reason}");
    assert_secret_free(reason);
    assert_eq!(outcomes[3], SendOutcome::Delivered { status: 200 });

    let all = receiver.all();
    assert_eq!(all.len(), 4, "{all:#?}");
    for received in &all {
        assert!(
            received.signature_valid && received.timestamp_fresh,
            "{received:?}"
        );
        assert_eq!(received.id, "evt_1");
        assert_eq!(received.content_type.as_deref(), Some("application/json"));
        let agent = received.user_agent.as_deref().unwrap_or_default();
        assert!(agent.starts_with("billing-aggregator/"), "{agent}");
    }
    assert_eq!(receiver.counts_by_id().get("evt_1"), Some(&4));
    let accepted = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].body,
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_is_unreachable_until_it_is_back() {
    let mut receiver = WebhookReceiver::start(SECRET).await;
    let sender = new_sender(SECRET);
    let url = Url::parse(&receiver.url()).unwrap();
    assert!(
        sender
            .send(&url, "evt_a", now(), &event("evt_a"))
            .await
            .is_delivered()
    );

    receiver.stop().await;
    // The first sender may still hold a pooled connection that the stop
    // closed; a fresh one must find the port closed.
    let outcome = sender.send(&url, "evt_b", now(), &event("evt_b")).await;
    assert!(
        matches!(outcome, SendOutcome::Unreachable { .. }),
        "{outcome:?}"
    );
    let outcome = new_sender(SECRET)
        .send(&url, "evt_b", now(), &event("evt_b"))
        .await;
    let SendOutcome::Unreachable { reason } = &outcome else {
        panic!("expected unreachable, got {outcome:?}");
    };
    assert!(reason.starts_with("cannot connect"), "{reason}");
    assert_secret_free(reason);

    receiver.restart().await;
    let outcome = sender.send(&url, "evt_b", now(), &event("evt_b")).await;
    assert_eq!(outcome, SendOutcome::Delivered { status: 200 });
    let accepted = receiver.wait_for(2, Duration::from_secs(5)).await;
    let ids: Vec<_> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["evt_a", "evt_b"]);
    assert!(accepted.iter().all(|r| r.signature_valid));
}

#[tokio::test]
async fn the_receiver_refuses_a_wrong_secret_and_a_stale_timestamp() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let url = Url::parse(&receiver.url()).unwrap();
    let stranger = new_sender("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let outcome = stranger.send(&url, "evt_x", now(), &event("evt_x")).await;
    assert_eq!(outcome, SendOutcome::Refused { status: 401 });

    let stale = now() - 10 * 60;
    let outcome = new_sender(SECRET)
        .send(&url, "evt_y", stale, &event("evt_y"))
        .await;
    assert_eq!(outcome, SendOutcome::Refused { status: 401 });

    let all = receiver.all();
    assert!(
        !all[0].signature_valid && all[0].timestamp_fresh,
        "{:?}",
        all[0]
    );
    assert!(
        all[1].signature_valid && !all[1].timestamp_fresh,
        "{:?}",
        all[1]
    );
    assert!(receiver.accepted().is_empty());
}

#[tokio::test]
async fn counts_each_event_by_id_across_retries() {
    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.fail_next(1);
    let sender = new_sender(SECRET);
    let url = Url::parse(&receiver.url()).unwrap();
    for id in ["evt_1", "evt_2", "evt_3"] {
        let mut attempts = 0;
        while !sender
            .send(&url, id, now(), &event(id))
            .await
            .is_delivered()
        {
            attempts += 1;
            assert!(attempts < 3, "{id} not delivered");
        }
    }
    let accepted = receiver.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(accepted.len(), 3);
    let counts = receiver.counts_by_id();
    assert_eq!(counts.values().sum::<usize>(), 4);
    assert_eq!(counts["evt_1"], 2);
    assert_eq!(counts["evt_2"], 1);
}
