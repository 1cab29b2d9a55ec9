//! Events of passes, on both backends: a node that stops reporting fires
//! `node.stale` once and `node.recovered` when it reports again; a failing
//! pass fires `aggregation.failed` once per run of failures.

mod common;

use billing_api::EventType;
use common::*;

fn kinds(store: &billing_server::store::Store) -> Vec<(EventType, String)> {
    let mut events = on_thread(|| store.list_events(None, 100, None, &[]).unwrap()).items;
    events.reverse();
    events
        .into_iter()
        .map(|e| {
            let subject = e.data["node_name"]
                .as_str()
                .or(e.data["message"].as_str().map(|_| "pass"))
                .unwrap_or("?")
                .to_string();
            (e.kind, subject)
        })
        .collect()
}

async fn stale_nodes_and_failed_passes_fire_once(backend: Backend) {
    let repo = NodeRepo::new();
    let data_dir = tempfile::tempdir().unwrap();
    let ledger = TestLedger::new(backend);
    let aggregator = aggregator_on(&ledger, repo.path(), data_dir.path(), 1 << 20);
    let store = aggregator.store().clone();
    repo.commit(
        &[
            ("nodes/old/usage_2020-01-01-00.otoml", &batch("old", &[])),
            (
                &format!("nodes/live/usage_{}.otoml", this_hour()),
                &batch("live", &[]),
            ),
        ],
        "usage",
    );
    aggregator.run_pass().await.unwrap();
    aggregator.run_pass().await.unwrap();
    assert_eq!(kinds(&store), [(EventType::NodeStale, "old".to_string())]);

    // The old node reports again: recovered, once.
    repo.commit(
        &[(
            &format!("nodes/old/usage_{}.otoml", this_hour()),
            &batch("old", &[]),
        )],
        "old is back",
    );
    aggregator.run_pass().await.unwrap();
    aggregator.run_pass().await.unwrap();
    assert_eq!(
        kinds(&store),
        [
            (EventType::NodeStale, "old".to_string()),
            (EventType::NodeRecovered, "old".to_string())
        ]
    );

    // The repo disappears: two failed passes, one event; a good pass re-arms it.
    let moved = repo.path().with_extension("moved");
    std::fs::rename(repo.path(), &moved).unwrap();
    assert!(aggregator.run_pass().await.is_err());
    assert!(aggregator.run_pass().await.is_err());
    let failed = kinds(&store)
        .iter()
        .filter(|(k, _)| *k == EventType::AggregationFailed)
        .count();
    assert_eq!(failed, 1);
    std::fs::rename(&moved, repo.path()).unwrap();
    aggregator.run_pass().await.unwrap();
    std::fs::rename(repo.path(), &moved).unwrap();
    assert!(aggregator.run_pass().await.is_err());
    std::fs::rename(&moved, repo.path()).unwrap();
    let failed = kinds(&store)
        .iter()
        .filter(|(k, _)| *k == EventType::AggregationFailed)
        .count();
    assert_eq!(failed, 2);
}

on_both_backends!(stale_nodes_and_failed_passes_fire_once);
