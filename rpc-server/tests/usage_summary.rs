//! `usage_summary` end to end, on both backends: a real server over a real
//! ledger and git repo. Resources travel from the usage file through the
//! ledger (held records too) to `list_consumed` and the summary's groups.

mod common;

use billing_api::rpc::BillingApiClient;
use billing_api::{UsageGroup, UsageGroupBy, error_codes};
use common::*;
use jsonrpsee::core::ClientError;

fn group(key: Option<&str>, cost_cents: i64, records: u64) -> UsageGroup {
    UsageGroup {
        key: key.map(str::to_string),
        cost_cents,
        records,
    }
}

fn error_of(e: ClientError) -> (i32, String) {
    match e {
        ClientError::Call(obj) => (obj.code(), obj.message().to_string()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

async fn usage_summary_groups_by_day_node_and_resource(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let client = server.client();
    for sid in ["u-1", "u-2"] {
        client.register_user(sid.into(), None, None).await.unwrap();
    }
    let node_a = batch_of_resources(
        "node-a",
        &[
            ("a-1", "u-1", 100, Some("vm.cpu")),
            ("a-2", "u-1", 200, Some("vm.cpu")),
            ("a-3", "u-1", 1_000, Some("gpu")),
            ("a-4", "u-1", 5, None),
            ("a-5", "u-2", 7, Some("gpu")),
            // Held until u-3 registers: its resource must survive the wait.
            ("a-6", "u-3", 300, Some("gpu")),
        ],
    );
    let node_b = batch_of_resources("node-b", &[("b-1", "u-1", 50, Some("vm.cpu"))]);
    repo.commit(
        &[
            (&usage_path("node-a", 0), &node_a),
            (&usage_path("node-b", 0), &node_b),
        ],
        "hour 0",
    );
    client.aggregate_now().await.unwrap();
    client
        .register_user("u-3".into(), None, None)
        .await
        .unwrap();

    let summary = |sid: &str, by: Option<UsageGroupBy>, from: Option<&str>, to: Option<&str>| {
        let client = &client;
        let (sid, from, to) = (
            sid.to_string(),
            from.map(str::to_string),
            to.map(str::to_string),
        );
        async move { client.usage_summary(sid, from, to, by).await }
    };

    let by_resource = summary("u-1", Some(UsageGroupBy::Resource), None, None)
        .await
        .unwrap();
    assert_eq!(
        by_resource.groups,
        vec![
            group(Some("gpu"), 1_000, 1),
            group(Some("vm.cpu"), 350, 3),
            group(None, 5, 1),
        ]
    );
    assert_eq!(
        (by_resource.total_cents, by_resource.total_records),
        (1_355, 5)
    );
    assert_eq!(by_resource.user_sid, "u-1");
    assert_eq!(by_resource.group_by, UsageGroupBy::Resource);
    // The totals are the user's own: they match the balance.
    let balance = client.get_balance("u-1".into()).await.unwrap();
    assert_eq!(balance.total_consumed_cents, by_resource.total_cents);

    let by_node = summary("u-1", Some(UsageGroupBy::Node), None, None)
        .await
        .unwrap();
    assert_eq!(
        by_node.groups,
        vec![
            group(Some("node-a"), 1_305, 4),
            group(Some("node-b"), 50, 1)
        ]
    );

    // A held record keeps its resource until it is applied.
    let held = summary("u-3", Some(UsageGroupBy::Resource), None, None)
        .await
        .unwrap();
    assert_eq!(held.groups, vec![group(Some("gpu"), 300, 1)]);
    let listed = client
        .list_consumed(Some("u-3".into()), None, None, None, None)
        .await
        .unwrap();
    assert_eq!(listed.items[0].resource.as_deref(), Some("gpu"));

    // By day, the default: the day the records were applied, in UTC.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let between = billing_api::now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let later = batch_of_resources("node-a", &[("a-7", "u-1", 9, Some("disk"))]);
    repo.commit(&[(&usage_path("node-a", 1), &later)], "hour 1");
    client.aggregate_now().await.unwrap();
    let by_day = summary("u-1", None, None, None).await.unwrap();
    assert_eq!(by_day.group_by, UsageGroupBy::Day);
    let today = billing_api::now_rfc3339()[..10].to_string();
    assert_eq!(by_day.groups, vec![group(Some(&today), 1_364, 6)]);

    // The window: [from, to) by applied time, echoed back.
    let after = summary("u-1", Some(UsageGroupBy::Resource), Some(&between), None)
        .await
        .unwrap();
    assert_eq!(after.groups, vec![group(Some("disk"), 9, 1)]);
    assert_eq!(after.from.as_deref(), Some(between.as_str()));
    let before = summary("u-1", Some(UsageGroupBy::Resource), None, Some(&between))
        .await
        .unwrap();
    assert_eq!((before.total_cents, before.total_records), (1_355, 5));
    let empty = summary("u-1", None, Some("2100-01-01T00:00:00Z"), None)
        .await
        .unwrap();
    assert!(empty.groups.is_empty());
    assert_eq!((empty.total_cents, empty.total_records), (0, 0));

    // Errors say what was wrong.
    let (code, message) = error_of(summary("u-9", None, None, None).await.unwrap_err());
    assert_eq!(code, error_codes::NOT_FOUND, "{message}");
    assert!(message.contains("u-9"), "{message}");
    let (code, message) = error_of(
        summary("u-1", None, Some("yesterday"), None)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, error_codes::INVALID_PARAMS);
    assert!(message.contains("RFC 3339"), "{message}");
}

on_both_backends!(usage_summary_groups_by_day_node_and_resource);

/// An unknown `group_by` is refused with the accepted values named.
#[tokio::test]
async fn an_unknown_grouping_is_refused() {
    use jsonrpsee::core::client::ClientT;
    let repo = NodeRepo::new();
    let server = TestServer::start_on(Backend::Redb, repo.path()).await;
    let client = server.client();
    client
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();
    let mut params = jsonrpsee::core::params::ObjectParams::new();
    params.insert("user_sid", "u-1").unwrap();
    params.insert("group_by", "week").unwrap();
    let err = client
        .request::<serde_json::Value, _>("usage_summary", params)
        .await
        .unwrap_err();
    let ClientError::Call(obj) = err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    assert_eq!(obj.code(), error_codes::INVALID_PARAMS);
    // As for every malformed param: jsonrpsee's message, serde's reason in `data`.
    let data = obj.data().map(|d| d.get().to_string()).unwrap_or_default();
    assert!(
        data.contains("unknown variant `week`") && data.contains("`resource`"),
        "{data}"
    );
}
