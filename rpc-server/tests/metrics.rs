//! `GET /metrics` end to end, on both backends: a real server and a real
//! metrics listener over a real ledger and git repo. One pass meets every
//! record outcome and two kinds of rejected file; the scrape counts each, the
//! RPC calls made (batches call by call, unknown methods as `other`), the
//! ledger's gauges and the freshness of each node. `promtool check metrics`
//! (Debian package `prometheus`) must accept the scrape.

mod common;

use std::process::{Command, Stdio};

use billing_api::rpc::BillingApiClient;
use common::*;

/// A running metrics endpoint for `server`.
async fn metrics_url(server: &TestServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(billing_server::metrics::http::serve(
        listener,
        server.aggregator.clone(),
        std::future::pending(),
    ));
    format!("http://{addr}/metrics")
}

/// The value of the sample `series` (name and labels as printed), or `None`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in the scrape:\n{text}"))
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.headers()
    );
    response.text().await.unwrap()
}

/// Runs `promtool check metrics` on `text`; fails the test with promtool's
/// findings, or with how to install it.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!(
            "cannot run promtool ({e}); install it with `apt-get install prometheus` \
             (scripts/test.sh does this)"
        )
    });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn a_scrape_counts_every_outcome(backend: Backend) {
    let repo = NodeRepo::new();
    let server = TestServer::start_on(backend, repo.path()).await;
    let url = metrics_url(&server).await;
    let client = server.client();
    client
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();

    let hour = this_hour();
    let now_file = format!("nodes/n1/usage_{hour}.otoml");
    // Two applied, one duplicate and one conflict (files apply in path order,
    // so the 2020 file's versions win); a held record (unknown user) and an
    // invalid one (negative cost).
    let first = batch(
        "n1",
        &[("k-1", "u-1", 100), ("k-2", "u-1", 50), ("k-3", "ghost", 7)],
    );
    let mut first = String::from_utf8(first).unwrap();
    first += "\n[[records]]\nidempotency_key = \"k-4\"\nuser_sid = \"u-1\"\nnode_name = \"n1\"\ncost_cents = -5\n";
    let again = batch("n1", &[("k-1", "u-1", 100), ("k-2", "u-1", 51)]);
    repo.commit(
        &[
            (&now_file, first.as_bytes()),
            ("nodes/n1/usage_2020-01-01-00.otoml", &again),
            (
                "nodes/n1/usage_2020-01-01-01.otoml",
                b"this is = = not toml",
            ),
            ("nodes/n1/usage_2020-13-01-00.otoml", &batch("n1", &[])),
            // A node whose newest hour is years old: stale.
            (
                "nodes/n2/usage_2020-01-01-00.otoml",
                &batch("n2", &[("k-9", "u-1", 1)]),
            ),
        ],
        "usage",
    );
    let summary = client.aggregate_now().await.unwrap();
    assert!(summary.errors.is_empty(), "{summary:?}");
    client.overview().await.unwrap();
    // A batch of two calls, and a method that does not exist.
    let (status, _) = post_rpc(
        &server.url,
        r#"[{"jsonrpc":"2.0","id":1,"method":"overview","params":{}},
            {"jsonrpc":"2.0","id":2,"method":"get_balance","params":{"user_sid":"nobody"}}]"#,
    )
    .await;
    assert_eq!(status, 200);
    post_rpc(
        &server.url,
        r#"{"jsonrpc":"2.0","id":3,"method":"drop_tables","params":{}}"#,
    )
    .await;

    let text = scrape(&url).await;
    for (outcome, n) in [
        ("applied", 3.0),
        ("duplicate", 1.0),
        ("conflict", 1.0),
        ("pending", 1.0),
        ("invalid", 1.0),
    ] {
        assert_eq!(
            value(
                &text,
                &format!("billing_records_total{{outcome=\"{outcome}\"}}")
            ),
            n,
            "{outcome}"
        );
    }
    for (reason, n) in [
        ("unparseable", 1.0),
        ("invalid_name", 1.0),
        ("too_large", 0.0),
    ] {
        assert_eq!(
            value(
                &text,
                &format!("billing_files_rejected_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}"
        );
    }
    assert_eq!(value(&text, "billing_passes_total{result=\"ok\"}"), 1.0);
    assert_eq!(value(&text, "billing_passes_total{result=\"failed\"}"), 0.0);
    assert_eq!(value(&text, "billing_pass_duration_seconds_count"), 1.0);
    assert!(value(&text, "billing_last_successful_pass_timestamp_seconds") > 1.7e9);

    let rpc = |method: &str, result: &str| {
        value(
            &text,
            &format!("billing_rpc_requests_total{{method=\"{method}\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(rpc("aggregate_now", "ok"), 1.0);
    assert_eq!(rpc("overview", "ok"), 2.0, "one alone, one in the batch");
    assert_eq!(rpc("get_balance", "error"), 1.0, "not found is an error");
    assert_eq!(rpc("other", "error"), 1.0, "unknown methods are not labels");
    assert!(!text.contains("drop_tables"));
    assert_eq!(
        value(
            &text,
            "billing_rpc_request_duration_seconds_count{method=\"overview\"}"
        ),
        2.0
    );

    assert_eq!(value(&text, "billing_users"), 1.0);
    // Files apply in path order: the 2020 file's k-2 (51) first, then k-9 (1).
    assert_eq!(
        value(&text, "billing_users_overdrawn"),
        1.0,
        "152 cents debited"
    );
    assert_eq!(value(&text, "billing_balance_cents"), -152.0);
    assert_eq!(value(&text, "billing_held_records"), 1.0);
    assert_eq!(value(&text, "billing_nodes"), 2.0);
    assert_eq!(value(&text, "billing_nodes_stale"), 1.0);
    assert_eq!(value(&text, "billing_node_stale{node=\"n1\"}"), 0.0);
    assert_eq!(value(&text, "billing_node_stale{node=\"n2\"}"), 1.0);
    assert_eq!(
        value(&text, "billing_node_newest_hour_age_seconds{node=\"n1\"}"),
        0.0,
        "the current hour is not over"
    );
    assert!(value(&text, "billing_node_newest_hour_age_seconds{node=\"n2\"}") > 86_400.0 * 365.0);
    assert!(
        value(
            &text,
            "billing_node_last_consumed_timestamp_seconds{node=\"n1\"}"
        ) > 1.7e9
    );
    assert_eq!(value(&text, "billing_ledger_up"), 1.0);
    assert!(value(&text, "billing_ledger_size_bytes") > 0.0);
    assert_eq!(
        value(
            &text,
            "billing_source_requests_total{source=\"git\",class=\"ok\"}"
        ),
        0.0,
        "a local repo is read in place"
    );
    assert!(!text.contains("u-1"), "user ids are never labels");
    promtool_check(&text);
    served_names_cover_the_docs(&text);

    // The same freshness through the API.
    let state = client.aggregator_state().await.unwrap();
    let stale: Vec<(&str, bool, Option<&str>)> = state
        .nodes
        .iter()
        .map(|n| (n.node_name.as_str(), n.stale, n.newest_hour.as_deref()))
        .collect();
    assert_eq!(
        stale,
        [
            ("n1", false, Some(hour.as_str())),
            ("n2", true, Some("2020-01-01-00"))
        ]
    );
    assert_eq!(client.overview().await.unwrap().stale_nodes, 1);
}

/// Every metric the shipped alert rules and Grafana dashboard use is served.
fn served_names_cover_the_docs(text: &str) {
    let served: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for doc in ["docs/alerts.yml", "docs/grafana-dashboard.json"] {
        let body = std::fs::read_to_string(root.join(doc)).unwrap();
        let mut rest = body.as_str();
        while let Some(at) = rest.find("billing_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            assert!(
                served.contains(name.as_str()),
                "{doc} uses {name}, which the server does not serve"
            );
        }
    }
}

on_both_backends!(a_scrape_counts_every_outcome);

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let repo = NodeRepo::new();
    let server = TestServer::start(repo.path()).await;
    let url = metrics_url(&server).await;
    let base = url.trim_end_matches("/metrics");
    let response = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("GET /metrics"));
    let response = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);
}
