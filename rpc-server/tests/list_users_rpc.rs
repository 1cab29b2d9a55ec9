//! `list_users` with `sort` and `filter` over HTTP: a real server on
//! 127.0.0.1:0 over a real ledger, with usage applied from a real git repo.

mod common;

use billing_api::rpc::BillingApiClient;
use billing_api::{UserFilter, UserSort, error_codes};
use common::*;
use jsonrpsee::core::ClientError;
use serde_json::{Value, json};

fn call_error(e: ClientError) -> (i32, String) {
    match e {
        ClientError::Call(obj) => (obj.code(), obj.message().to_string()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// A server whose users are: u-01 (Ada, paid 500), u-02 (Bob, charged 120),
/// u-03 (Cy, paid 300, charged 300), u-04 (Dee, nothing), u-05 (Eve, paid
/// 100, charged 600) — charges applied by a pass over the node's repo.
async fn server_with_users(backend: Backend) -> (NodeRepo, TestServer) {
    let repo = NodeRepo::new();
    repo.commit(
        &[(
            &usage_path("node-a", 1),
            &batch(
                "node-a",
                &[
                    ("k1", "u-02", 120),
                    ("k2", "u-03", 300),
                    ("k3", "u-05", 600),
                ],
            ),
        )],
        "hour 1",
    );
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();
    for (sid, name) in [
        ("u-01", "Ada"),
        ("u-02", "Bob"),
        ("u-03", "Cy"),
        ("u-04", "Dee"),
        ("u-05", "Eve"),
    ] {
        let email = format!("{}@Example.org", name.to_lowercase());
        client
            .register_user(sid.into(), Some(name.into()), Some(email))
            .await
            .unwrap();
    }
    for (id, sid, amount) in [
        ("p1", "u-01", 500),
        ("p3", "u-03", 300),
        ("p5", "u-05", 100),
    ] {
        client
            .record_payment(id.into(), sid.into(), amount, None, None)
            .await
            .unwrap();
    }
    assert_eq!(client.aggregate_now().await.unwrap().records_applied, 3);
    (repo, server)
}

/// Every page of a walk, as (sid, balance), and how many pages it took.
async fn walk(
    server: &TestServer,
    sort: Option<UserSort>,
    filter: Option<UserFilter>,
    limit: u32,
) -> (Vec<(String, i64)>, usize) {
    let client = server.client();
    let (mut users, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let page = client
            .list_users(cursor, Some(limit), sort, filter.clone())
            .await
            .unwrap();
        pages += 1;
        users.extend(
            page.items
                .into_iter()
                .map(|u| (u.user_sid, u.credit_balance_cents)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (users, pages),
        }
    }
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(s, b)| (s.to_string(), *b)).collect()
}

async fn sorted_and_filtered_walks_over_http(backend: Backend) {
    let (_repo, server) = server_with_users(backend).await;
    let (lowest, pages) = walk(&server, Some(UserSort::BalanceAsc), None, 2).await;
    assert_eq!(
        lowest,
        pairs(&[
            ("u-05", -500),
            ("u-02", -120),
            ("u-03", 0),
            ("u-04", 0),
            ("u-01", 500)
        ])
    );
    assert_eq!(pages, 3);
    let (highest, _) = walk(&server, Some(UserSort::BalanceDesc), None, 2).await;
    let mut reversed = lowest.clone();
    reversed.reverse();
    assert_eq!(highest, reversed);
    let (consumed, _) = walk(&server, Some(UserSort::ConsumedDesc), None, 4).await;
    let order: Vec<&str> = consumed.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(order, ["u-05", "u-03", "u-02", "u-04", "u-01"]);

    let overdrawn = UserFilter {
        overdrawn: Some(true),
        ..Default::default()
    };
    let (found, _) = walk(&server, Some(UserSort::BalanceAsc), Some(overdrawn), 1).await;
    assert_eq!(found, pairs(&[("u-05", -500), ("u-02", -120)]));
    // Case-insensitive text in name or email; in sid order by default.
    let text = UserFilter {
        text: Some("EXAMPLE.org".into()),
        below_cents: Some(1),
        ..Default::default()
    };
    let (found, _) = walk(&server, None, Some(text), 10).await;
    assert_eq!(
        found,
        pairs(&[("u-02", -120), ("u-03", 0), ("u-04", 0), ("u-05", -500)])
    );
    let prefix = UserFilter {
        sid_prefix: Some("u-0".into()),
        text: Some("ada".into()),
        ..Default::default()
    };
    let (found, _) = walk(&server, Some(UserSort::ConsumedDesc), Some(prefix), 10).await;
    assert_eq!(found, pairs(&[("u-01", 500)]));
}

async fn old_calls_work_and_bad_params_are_explained(backend: Backend) {
    let (_repo, server) = server_with_users(backend).await;
    let rpc = |params: Value| {
        let url = server.url.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "list_users", "params": params});
            let (status, text) = post_rpc(&url, body.to_string()).await;
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let sids = |answer: &Value| -> Vec<String> {
        answer["result"]["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|u| u["user_sid"].as_str().unwrap().to_string())
            .collect()
    };
    // Callers of before: no sort, no filter; a sid as the cursor.
    let answer = rpc(json!({"limit": 2})).await;
    assert_eq!(sids(&answer), ["u-01", "u-02"]);
    assert_eq!(answer["result"]["next_cursor"], "u-02");
    assert_eq!(
        sids(&rpc(json!({"cursor": "u-03"})).await),
        ["u-04", "u-05"]
    );
    // Nulls stand for absent params and filter fields.
    let answer = rpc(json!({"sort": null, "filter": {"text": null, "overdrawn": false}})).await;
    assert_eq!(sids(&answer), ["u-01", "u-03", "u-04"]);

    let answer = rpc(json!({"sort": "lowest"})).await;
    assert_eq!(
        answer["error"]["code"],
        error_codes::INVALID_PARAMS,
        "{answer}"
    );
    let answer = rpc(json!({"filter": {"below_cents": "ten"}})).await;
    assert_eq!(
        answer["error"]["code"],
        error_codes::INVALID_PARAMS,
        "{answer}"
    );
    // A misspelt condition is refused, not ignored (which would list every user).
    let answer = rpc(json!({"filter": {"belowcents": 10}})).await;
    assert_eq!(
        answer["error"]["code"],
        error_codes::INVALID_PARAMS,
        "{answer}"
    );
    assert!(
        answer["error"].to_string().contains("belowcents"),
        "the error names the unknown field: {answer}"
    );

    // A cursor of one order given to another.
    let client = server.client();
    let page = client
        .list_users(None, Some(2), Some(UserSort::BalanceAsc), None)
        .await
        .unwrap();
    let cursor = page.next_cursor.unwrap();
    let (code, message) = call_error(
        client
            .list_users(Some(cursor.clone()), Some(2), None, None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, error_codes::INVALID_PARAMS);
    assert!(
        message.contains("sort `balance_asc`") && message.contains("sort `sid`"),
        "{message}"
    );
    let (code, message) = call_error(
        client
            .list_users(Some("u-02".into()), None, Some(UserSort::BalanceDesc), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, error_codes::INVALID_PARAMS);
    assert!(message.contains("cursor `u-02`"), "{message}");
    let (code, message) = call_error(
        client
            .list_users(
                None,
                None,
                None,
                Some(UserFilter {
                    text: Some("x".repeat(600)),
                    ..Default::default()
                }),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, error_codes::INVALID_PARAMS);
    assert!(message.contains("filter.text is 600 bytes"), "{message}");
}

on_both_backends!(
    sorted_and_filtered_walks_over_http,
    old_calls_work_and_bad_params_are_explained,
);
