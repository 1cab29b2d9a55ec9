//! The whole server, scheduler included (`server::serve` on a bound
//! listener): what nodes commit after the server started is applied by a
//! scheduled pass, with no call to `aggregate_now`.

mod common;

use std::time::{Duration, Instant};

use billing_api::rpc::BillingApiClient;
use billing_server::test_support::RunningServer;
use common::{NodeRepo, SECRET, batch, client_with, usage_path};

#[tokio::test]
async fn scheduled_passes_apply_what_nodes_commit_after_start() {
    let repo = NodeRepo::new();
    repo.commit(
        &[(&usage_path("n1", 1), &batch("n1", &[("k1", "u-1", 10)]))],
        "hour 1",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut server = RunningServer::start_with(
        repo.path().display().to_string(),
        dir.path().join("data"),
        SECRET,
        Some(Duration::from_secs(1)),
    )
    .await;
    let client = client_with(&server.url, Some(SECRET));
    // The server's first pass runs beside the API, so wait for it: a file
    // committed before it ends could be read by it instead of a scheduled pass.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let runs = client.list_runs(None, Some(100)).await.unwrap();
        if let Some(run) = runs.items.iter().min_by_key(|r| r.run_id) {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the server's first pass was not recorded within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        first.files_read, 1,
        "the first pass saw only hour 1: {first:?}"
    );
    client
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();
    repo.commit(
        &[(&usage_path("n1", 2), &batch("n1", &[("k2", "u-1", 5)]))],
        "hour 2",
    );

    // A pass records its run after it applied the records: wait for both.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (consumed, runs) = loop {
        let balance = client.get_balance("u-1".into()).await.unwrap();
        let runs = client.list_runs(None, Some(100)).await.unwrap();
        let done = balance.total_consumed_cents == 15 && runs.items.len() >= 2;
        if done || Instant::now() > deadline {
            break (balance.total_consumed_cents, runs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        consumed, 15,
        "a scheduled pass applies the file committed after start"
    );
    assert!(
        runs.items.len() >= 2,
        "the first pass and at least one scheduled pass ran: {:?}",
        runs.items
    );
    assert!(runs.items.iter().all(|r| r.errors.is_empty()), "{runs:?}");
    server.stop().await;
}
