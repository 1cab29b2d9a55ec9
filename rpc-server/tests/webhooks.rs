//! Events delivered to a real receiver on 127.0.0.1:0 that verifies every
//! signature with its own implementation of Standard Webhooks, on both
//! backends: refusals and a timeout are retried, every event arrives, each
//! user's in order, and `list_events` shows each delivery's state. A restart
//! in the middle of delivery loses nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use billing_api::DeliveryStatus;
use billing_api::rpc::BillingApiClient;
use billing_server::config::WebhookSettings;
use billing_server::webhooks::WebhookSecret;
use billing_server::webhooks::worker::{Pace, run_paced};
use common::webhook_receiver::WebhookReceiver;
use common::*;

const HOOK_SECRET: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";

fn fast() -> Pace {
    Pace {
        attempt_timeout: Duration::from_millis(300),
        lease: Duration::from_secs(1),
        backoff_scale: 0.01,
    }
}

fn settings(url: String) -> WebhookSettings {
    WebhookSettings {
        urls: vec![url],
        secret: WebhookSecret::parse(HOOK_SECRET).unwrap(),
    }
}

/// Usage that takes u-1 from 1000 below zero in one pass (low, then
/// overdrawn), from a node reporting now and from a node that is stale.
fn seed(repo: &NodeRepo) {
    repo.commit(
        &[
            (
                &format!("nodes/n1/usage_{}.otoml", this_hour()),
                &batch("n1", &[("k-1", "u-1", 600), ("k-2", "u-1", 500)]),
            ),
            (
                "nodes/n2/usage_2020-01-01-00.otoml",
                &batch("n2", &[("k-3", "u-2", 1)]),
            ),
        ],
        "usage",
    );
}

async fn events_are_delivered_signed_in_order_despite_failures(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let receiver = WebhookReceiver::start(HOOK_SECRET).await;
    server.aggregator.set_webhook_urls(vec![receiver.url()]);
    let client = server.client();
    // The worker starts first: the URL's deliveries begin with the next event.
    let worker = tokio::spawn(run_paced(
        server.aggregator.clone(),
        settings(receiver.url()),
        fast(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sid in ["u-1", "u-2"] {
        client.register_user(sid.into(), None, None).await.unwrap();
    }
    client
        .record_payment("p-1".into(), "u-1".into(), 1_000, None, None)
        .await
        .unwrap();
    client
        .record_payment("p-2".into(), "u-2".into(), 1_000, None, None)
        .await
        .unwrap();
    receiver.fail_next(2);
    receiver.stall_next(Duration::from_secs(1));
    seed(&repo);
    client.aggregate_now().await.unwrap();
    // A top-up recovers u-1: after its overdrawn event, never before.
    client
        .record_payment("p-3".into(), "u-1".into(), 5_000, None, None)
        .await
        .unwrap();

    let events = client
        .list_events(None, Some(100), None)
        .await
        .unwrap()
        .items;
    let kinds: Vec<&str> = events.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "balance.low",
            "balance.overdrawn",
            "node.stale",
            "balance.recovered"
        ]
    );
    let accepted = receiver
        .wait_for(events.len(), Duration::from_secs(30))
        .await;
    assert!(
        accepted
            .iter()
            .all(|r| r.signature_valid && r.timestamp_fresh)
    );
    let ids: BTreeSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    let expected: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, expected, "every event arrived");
    // u-1's events arrived in the order they happened.
    let u1: Vec<&str> = accepted
        .iter()
        .filter(|r| r.body["data"]["user_sid"] == "u-1")
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        u1,
        ["balance.low", "balance.overdrawn", "balance.recovered"]
    );
    let low = accepted
        .iter()
        .find(|r| r.body["type"] == "balance.low")
        .unwrap();
    // One transaction took the balance through both lines: both events carry its result.
    assert_eq!(low.body["data"]["previous_balance_cents"], 1_000);
    assert_eq!(low.body["data"]["balance_cents"], -100);
    assert_eq!(low.body["data"]["low_balance_cents"], 500);
    // Two refusals and a timeout were retried: 3 more requests than events.
    let all = receiver.all();
    assert_eq!(all.len(), events.len() + 3, "{all:#?}");

    // list_events shows each delivery as delivered, attempts included, once
    // the worker has recorded what the receiver saw.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = client
            .list_events(None, Some(100), None)
            .await
            .unwrap()
            .items;
        let recorded = listed.iter().all(|e| {
            e.deliveries
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered)
        });
        if recorded || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut attempts = 0;
    for event in &listed {
        let [delivery] = event.deliveries.as_slice() else {
            panic!("one URL, one delivery: {event:?}");
        };
        assert_eq!(delivery.status, DeliveryStatus::Delivered, "{event:?}");
        assert!(delivery.delivered_at.is_some());
        assert!(!delivery.url.contains("whsec"));
        attempts += delivery.attempts;
    }
    assert_eq!(attempts as usize, all.len());
    let only = client
        .list_events(None, Some(100), Some(billing_api::EventType::NodeStale))
        .await
        .unwrap()
        .items;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].data["node_name"], "n2");
    worker.abort();
}

on_both_backends!(events_are_delivered_signed_in_order_despite_failures);

async fn a_restart_in_the_middle_of_delivery_loses_nothing(backend: Backend) {
    let repo = NodeRepo::new();
    let data_dir = tempfile::tempdir().unwrap();
    let ledger = TestLedger::new(backend);
    let mut receiver = WebhookReceiver::start(HOOK_SECRET).await;
    let expected = {
        let aggregator = aggregator_on(&ledger, repo.path(), data_dir.path(), 1 << 20);
        let worker = tokio::spawn(run_paced(
            aggregator.clone(),
            settings(receiver.url()),
            fast(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let store = aggregator.store().clone();
        on_thread(|| register(&store, &["u-1", "u-2"]));
        on_thread(|| pay(&store, "p-1", "u-1", 1_000));
        on_thread(|| pay(&store, "p-2", "u-2", 1_000));
        // The receiver goes down: every attempt fails until the restart.
        receiver.stop().await;
        seed(&repo);
        aggregator.run_pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        worker.abort();
        let _ = worker.await;
        let events = on_thread(|| store.list_events(None, 100, None, &[]).unwrap()).items;
        assert_eq!(events.len(), 3, "{events:?}");
        events.into_iter().map(|e| e.id).collect::<BTreeSet<_>>()
    };
    // The server comes back (the ledger re-opened), and so does the receiver.
    receiver.restart().await;
    let aggregator = aggregator_on(&ledger, repo.path(), data_dir.path(), 1 << 20);
    let worker = tokio::spawn(run_paced(
        aggregator.clone(),
        settings(receiver.url()),
        fast(),
    ));
    let accepted = receiver
        .wait_for(expected.len(), Duration::from_secs(30))
        .await;
    let ids: BTreeSet<String> = accepted.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, expected, "every event arrived after the restart");
    worker.abort();
}

on_both_backends!(a_restart_in_the_middle_of_delivery_loses_nothing);
