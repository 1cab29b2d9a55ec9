//! The JSON-RPC API end to end: a real server on 127.0.0.1:0 over a real
//! ledger and a real git repo, called over HTTP and WebSocket.

mod common;

use std::collections::BTreeSet;

use billing_api::rpc::BillingApiClient;
use billing_api::{Health, NodeStatus, RejectReason, error_codes};
use common::*;
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;

fn error_code(e: ClientError) -> i32 {
    match e {
        ClientError::Call(obj) => obj.code(),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

fn openrpc_methods() -> BTreeSet<String> {
    let doc: serde_json::Value = serde_json::from_str(include_str!("../../openrpc.json")).unwrap();
    doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn openrpc_documents_exactly_the_registered_methods() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    let module = billing_server::rpc::module(aggregator(repo.path(), data.path()));
    let registered: BTreeSet<String> = module.method_names().map(str::to_string).collect();
    assert_eq!(registered, openrpc_methods());

    // rpc.discover serves the same document.
    let server = TestServer::start(repo.path()).await;
    let served = server.client().discover().await.unwrap();
    let file: serde_json::Value = serde_json::from_str(include_str!("../../openrpc.json")).unwrap();
    assert_eq!(served, file);
}

async fn every_method_needs_the_secret_and_health_does_not(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let http = reqwest::Client::new();
    for method in openrpc_methods() {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
        for auth in [None, Some("Bearer wrong-secret-0123456789"), Some(SECRET)] {
            let mut req = http.post(&server.url).json(&body);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_eq!(
                status, 401,
                "{method} with {auth:?} answered {status}: {text}"
            );
            assert!(text.contains("Authorization: Bearer"), "{text}");
        }
        let resp = http
            .post(&server.url)
            .bearer_auth(SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{method} with the right secret"
        );
    }
    // Nothing ran: no pass was recorded by the unauthorized aggregate_now calls.
    let health = http
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // The WebSocket upgrade is refused without the secret.
    let refused = WsClientBuilder::default().build(server.ws_url()).await;
    assert!(refused.is_err(), "WebSocket without secret must be refused");
}

async fn unauthorized_calls_change_nothing(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let anonymous = client_with(&server.url, None);
    assert!(
        anonymous
            .register_user("u-1".into(), None, None)
            .await
            .is_err()
    );
    let page = server
        .client()
        .list_users(None, None, None, None)
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

async fn users_payments_and_balances_over_http(backend: Backend) {
    let repo = NodeRepo::new();
    repo.commit(
        &[(
            &usage_path("node-a", 10),
            &batch(
                "node-a",
                &[("k1", "u-1", 120), ("k2", "u-1", 30), ("k3", "u-2", 7)],
            ),
        )],
        "hour 10",
    );
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();

    let user = client
        .register_user(
            "u-1".into(),
            Some("Ada".into()),
            Some("ada@example.org".into()),
        )
        .await
        .unwrap();
    assert_eq!(user.credit_balance_cents, 0);
    let pay = client
        .record_payment(
            "p-1".into(),
            "u-1".into(),
            1000,
            None,
            Some("invoice 7".into()),
        )
        .await
        .unwrap();
    assert_eq!(pay.kind, "topup");
    // Same id, same content: a no-op returning the stored payment.
    let again = client
        .record_payment(
            "p-1".into(),
            "u-1".into(),
            1000,
            None,
            Some("invoice 7".into()),
        )
        .await
        .unwrap();
    assert_eq!(again, pay);
    // Same id, other content: a conflict, nothing changes.
    let err = client
        .record_payment("p-1".into(), "u-1".into(), 999, None, None)
        .await
        .unwrap_err();
    assert_eq!(error_code(err), error_codes::CONFLICT);
    let err = client
        .record_payment("p-2".into(), "nobody".into(), 5, None, None)
        .await
        .unwrap_err();
    assert_eq!(error_code(err), error_codes::NOT_FOUND);
    let err = client.get_balance("nobody".into()).await.unwrap_err();
    assert_eq!(error_code(err), error_codes::NOT_FOUND);
    let err = client
        .list_users(None, Some(5000), None, None)
        .await
        .unwrap_err();
    assert_eq!(error_code(err), error_codes::INVALID_PARAMS);

    let summary = client.aggregate_now().await.unwrap();
    assert_eq!(summary.records_applied, 2);
    assert_eq!(summary.records_pending, 1, "u-2 is not registered yet");
    assert_eq!(summary.cents_debited, 150);

    let balance = client.get_balance("u-1".into()).await.unwrap();
    assert_eq!(balance.credit_balance_cents, 1000 - 150);
    assert_eq!(balance.total_paid_cents, 1000);
    assert_eq!(balance.total_consumed_cents, 150);
    assert!(!balance.overdrawn);

    let rejected = client.list_rejected(None, None).await.unwrap();
    assert_eq!(rejected.items.len(), 1);
    assert_eq!(rejected.items[0].reason, RejectReason::UnknownUser);
    assert_eq!(rejected.items[0].user_sid.as_deref(), Some("u-2"));

    // Registering u-2 applies its held record at once; it goes overdrawn.
    client
        .register_user("u-2".into(), None, None)
        .await
        .unwrap();
    let b2 = client.get_balance("u-2".into()).await.unwrap();
    assert_eq!(b2.credit_balance_cents, -7);
    assert!(b2.overdrawn);
    assert!(
        client
            .list_rejected(None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let overview = client.overview().await.unwrap();
    assert_eq!(overview.total_users, 2);
    assert_eq!(overview.total_balance_cents, 850 - 7);
    assert_eq!(overview.overdrawn_users, 1);
    assert_eq!(overview.consumed_records, 3);
    assert_eq!(overview.health, Health::Ok);

    let consumed = client
        .list_consumed(Some("u-1".into()), None, None, None, None)
        .await
        .unwrap();
    assert_eq!(consumed.items.len(), 2);
    assert!(
        consumed
            .items
            .iter()
            .all(|c| c.file_path == usage_path("node-a", 10))
    );
    assert!(consumed.items.iter().all(|c| c.commit_sha == repo.head()));

    let payments = client
        .list_payments(Some("u-1".into()), None, None)
        .await
        .unwrap();
    assert_eq!(payments.items, vec![pay]);

    let state = client.aggregator_state().await.unwrap();
    assert_eq!(state.nodes.len(), 1);
    assert_eq!(state.nodes[0].node_name, "node-a");
    assert_eq!(state.nodes[0].status, NodeStatus::Ok);
    assert_eq!(
        state.nodes[0].last_commit_sha.as_deref(),
        Some(repo.head().as_str())
    );
    // The held record of u-2, applied at registration, counts for its node too.
    assert_eq!(state.nodes[0].records_consumed_total, 3);

    // Params are taken by name over raw JSON-RPC, and a missing one is a clear error.
    let http = reqwest::Client::new();
    let call = |params: serde_json::Value| {
        http.post(&server.url)
            .bearer_auth(SECRET)
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "get_balance", "params": params}))
            .send()
    };
    let ok: serde_json::Value = call(serde_json::json!({"user_sid": "u-1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["result"]["credit_balance_cents"], 850, "{ok}");
    let missing: serde_json::Value = call(serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        missing["error"]["code"],
        error_codes::INVALID_PARAMS,
        "{missing}"
    );
}

/// Many balance reads at once (PostgreSQL answers them in shared batches):
/// each caller gets its own user's balance, and an unknown user is not found.
async fn concurrent_balance_reads_each_get_their_own_user(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();
    const USERS: i64 = 120;
    for i in 0..USERS {
        let sid = format!("u-{i:03}");
        client.register_user(sid.clone(), None, None).await.unwrap();
        client
            .record_payment(format!("p-{i}"), sid, 1 + i * 3, None, None)
            .await
            .unwrap();
    }
    let mut reads = tokio::task::JoinSet::new();
    for round in 0..4 {
        for i in 0..USERS + 10 {
            let client = client.clone();
            reads.spawn(async move {
                let sid = format!("u-{i:03}");
                (round, i, client.get_balance(sid).await)
            });
        }
    }
    let mut answered = 0;
    while let Some(read) = reads.join_next().await {
        let (round, i, answer) = read.unwrap();
        answered += 1;
        if i < USERS {
            let balance = answer.unwrap_or_else(|e| panic!("round {round}, u-{i:03}: {e}"));
            assert_eq!(balance.user_sid, format!("u-{i:03}"));
            assert_eq!(balance.credit_balance_cents, 1 + i * 3, "u-{i:03}");
        } else {
            let err = answer.expect_err("there is no such user");
            assert_eq!(error_code(err), error_codes::NOT_FOUND, "u-{i:03}");
        }
    }
    assert_eq!(answered, 4 * (USERS + 10));
}

async fn pagination_walks_every_user_once(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();
    for i in 0..25 {
        client
            .register_user(format!("u-{i:03}"), None, None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list_users(cursor, Some(7), None, None)
            .await
            .unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.into_iter().map(|u| u.user_sid));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("u-{i:03}")).collect();
    assert_eq!(seen, expected);
    let err = client
        .list_users(Some("%%%not-a-cursor".into()), None, None, None)
        .await;
    // An unknown cursor is either rejected or starts after it; it never repeats the first page.
    if let Ok(page) = err {
        assert!(
            page.items
                .iter()
                .all(|u| u.user_sid.as_str() > "%%%not-a-cursor")
        );
    }
}

async fn concurrent_aggregate_now_calls_apply_each_record_once(backend: Backend) {
    let repo = NodeRepo::new();
    let mut files = Vec::new();
    for n in 0..4 {
        let node = format!("node-{n}");
        let records: Vec<(String, &str, i64)> =
            (0..50).map(|i| (format!("{node}:{i}"), "u-1", 3)).collect();
        let refs: Vec<(&str, &str, i64)> = records
            .iter()
            .map(|(k, u, c)| (k.as_str(), *u, *c))
            .collect();
        files.push((usage_path(&node, 1), batch(&node, &refs)));
    }
    let file_refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    repo.commit(&file_refs, "hour 1");
    let server = TestServer::start_on(backend, repo.path()).await;
    server
        .client()
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = server.client();
            tokio::spawn(async move { client.aggregate_now().await.unwrap() })
        })
        .collect();
    let mut by_run = std::collections::BTreeMap::new();
    for call in calls {
        let summary = call.await.unwrap();
        by_run.insert(summary.run_id, summary.records_applied);
    }
    let applied: u64 = by_run.values().sum();
    assert_eq!(applied, 200, "passes: {by_run:?}");
    let balance = server.client().get_balance("u-1".into()).await.unwrap();
    assert_eq!(balance.credit_balance_cents, -600);
}

async fn websocket_subscribers_see_every_pass(backend: Backend) {
    let repo = NodeRepo::new();
    repo.commit(
        &[(
            &usage_path("node-a", 1),
            &batch("node-a", &[("k", "u-1", 5)]),
        )],
        "h1",
    );
    let server = TestServer::start_on(backend, repo.path()).await;
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    let ws = WsClientBuilder::default()
        .set_headers(headers)
        .build(server.ws_url())
        .await
        .unwrap();
    let mut runs = ws.subscribe_runs().await.unwrap();
    let summary = ws.aggregate_now().await.unwrap();
    let notified = tokio::time::timeout(std::time::Duration::from_secs(10), runs.next())
        .await
        .expect("a notification arrives")
        .unwrap()
        .unwrap();
    assert_eq!(notified, summary);
    assert_eq!(notified.records_pending, 1);
    let _ = ws
        .request::<serde_json::Value, _>("overview", rpc_params![])
        .await
        .unwrap();
}

on_both_backends!(
    every_method_needs_the_secret_and_health_does_not,
    unauthorized_calls_change_nothing,
    users_payments_and_balances_over_http,
    concurrent_balance_reads_each_get_their_own_user,
    pagination_walks_every_user_once,
    concurrent_aggregate_now_calls_apply_each_record_once,
    websocket_subscribers_see_every_pass,
);

/// `list_consumed` with `from` / `to`: only records applied in the window,
/// paged to the end, on both backends; a time that is not RFC 3339 is refused.
async fn list_consumed_filters_by_applied_time(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();
    client
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();
    let hour = |h: u32, n: u32| {
        let records: Vec<(String, &str, i64)> =
            (0..n).map(|i| (format!("k-{h}-{i}"), "u-1", 1)).collect();
        let records: Vec<(&str, &str, i64)> = records
            .iter()
            .map(|(k, u, c)| (k.as_str(), *u, *c))
            .collect();
        batch("node-a", &records)
    };
    repo.commit(&[(&usage_path("node-a", 0), &hour(0, 3))], "hour 0");
    client.aggregate_now().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let between = billing_api::now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    repo.commit(&[(&usage_path("node-a", 1), &hour(1, 5))], "hour 1");
    client.aggregate_now().await.unwrap();

    let keys = |from: Option<&str>, to: Option<&str>| {
        let client = &client;
        let (from, to) = (from.map(str::to_string), to.map(str::to_string));
        async move {
            let (mut keys, mut cursor) = (Vec::new(), None);
            loop {
                let page = client
                    .list_consumed(None, cursor, Some(2), from.clone(), to.clone())
                    .await
                    .unwrap();
                assert!(page.items.len() <= 2);
                keys.extend(page.items.into_iter().map(|c| c.idempotency_key));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => return keys,
                }
            }
        }
    };
    let later = keys(Some(&between), None).await;
    assert_eq!(later.len(), 5, "{later:?}");
    assert!(later.iter().all(|k| k.starts_with("k-1-")), "{later:?}");
    let earlier = keys(None, Some(&between)).await;
    assert_eq!(earlier.len(), 3, "{earlier:?}");
    assert!(earlier.iter().all(|k| k.starts_with("k-0-")), "{earlier:?}");
    assert_eq!(keys(Some("2000-01-01T00:00:00Z"), None).await.len(), 8);
    assert!(keys(Some("2100-01-01T00:00:00Z"), None).await.is_empty());

    let err = client
        .list_consumed(None, None, None, Some("last tuesday".into()), None)
        .await
        .unwrap_err();
    match err {
        ClientError::Call(e) => {
            assert_eq!(e.code(), error_codes::INVALID_PARAMS);
            assert!(e.message().contains("RFC 3339"), "{}", e.message());
        }
        other => panic!("{other:?}"),
    }
}

on_both_backends!(list_consumed_filters_by_applied_time);
