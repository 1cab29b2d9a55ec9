//! `scripts/bench.sh` section 10: the time from a pass's commit of a balance
//! event to the webhook's arrival at a receiver on loopback. A real server
//! (`server::serve`, redb ledger, a local git repo) delivers to a minimal
//! receiver in this process; each round registers users at 600 cents,
//! commits one usage file that takes each below the 500-cent threshold, runs
//! `aggregate_now`, and waits for every `balance.low`. The latency of an
//! event is its arrival time minus its `created_at` (the start of the
//! transaction that wrote it, so slightly more than from its commit).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billing_api::rfc3339_to_millis;
use billing_server::config::{
    LedgerLocation, LedgerSettings, ServeSettings, SourceSpec, WebhookSettings,
};
use billing_server::rpc::AdminSecret;
use billing_server::webhooks::WebhookSecret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const ADMIN: &str = "bench-admin-secret-0123456789";
const HOOK: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";

type Arrivals = Arc<Mutex<HashMap<String, (u64, u64)>>>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// Records `webhook-id` -> (arrival ms, created ms) of each `balance.low` and answers 204.
async fn receiver(arrivals: Arrivals) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let arrivals = arrivals.clone();
                        async move {
                            let at = now_ms();
                            let id = req.headers()["webhook-id"].to_str().unwrap().to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            let created =
                                rfc3339_to_millis(event["timestamp"].as_str().unwrap()).unwrap();
                            if event["type"] == "balance.low" {
                                arrivals.lock().unwrap().entry(id).or_insert((at, created));
                            }
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(204)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/hook")
}

async fn rpc(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let answer: serde_json::Value = client
        .post(url)
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let users: usize = std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "start"]);
    let arrivals: Arrivals = Arc::default();
    let hook_url = receiver(arrivals.clone()).await;
    let data_dir = work.path().join("data");
    let settings = ServeSettings {
        ledger: LedgerSettings {
            ledger: LedgerLocation::Redb(data_dir.join("ledger.redb")),
            data_dir,
            source: SourceSpec::Git {
                repo: repo.to_str().unwrap().to_string(),
                branch: "main".into(),
            },
            max_file_bytes: billing_api::otoml::DEFAULT_MAX_FILE_BYTES,
            decode_limits: Default::default(),
            store: Default::default(),
        },
        replica_name: "bench".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: None,
        secret: AdminSecret::new(ADMIN, "bench").unwrap(),
        metrics_listen: None,
        stale_after: Duration::from_secs(3 * 3600),
        low_balance_cents: 500,
        webhooks: Some(WebhookSettings {
            urls: vec![hook_url],
            secret: WebhookSecret::parse(HOOK).unwrap(),
        }),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = billing_server::server::bind(settings.listen).unwrap();
    let server = tokio::spawn(billing_server::server::serve(
        settings,
        listener,
        move |at| {
            let _ = tx.send(at.api);
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{}", rx.await.unwrap());
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    let mut from_pass_end = Vec::new();
    for round in 0..rounds {
        let mut file = String::from("version = 1\n");
        for u in 0..users {
            let sid = format!("u-{round}-{u}");
            rpc(
                &client,
                &url,
                "register_user",
                serde_json::json!({"user_sid": sid}),
            )
            .await;
            rpc(&client, &url, "record_payment", serde_json::json!({"payment_id": format!("p-{sid}"), "user_sid": sid, "amount_cents": 600})).await;
            file += &format!(
                "\n[[records]]\nidempotency_key = \"k-{sid}\"\nuser_sid = \"{sid}\"\nnode_name = \"n1\"\ncost_cents = 200\n"
            );
        }
        let path = repo.join(format!("nodes/n1/usage_2026-12-01-{round:02}.otoml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "usage"]);
        let before = arrivals.lock().unwrap().len();
        rpc(&client, &url, "aggregate_now", serde_json::json!({})).await;
        let pass_end = now_ms();
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrivals.lock().unwrap().len() < before + users {
            assert!(
                Instant::now() < deadline,
                "webhooks did not all arrive within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let seen = arrivals.lock().unwrap();
        let mut round_arrivals: Vec<(u64, u64)> = seen.values().copied().collect();
        round_arrivals.sort_unstable();
        for (at, created) in round_arrivals.iter().skip(before) {
            latencies.push(at.saturating_sub(*created));
            from_pass_end.push(at.saturating_sub(pass_end));
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    let pct = |v: &mut Vec<u64>, p: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
    };
    let n = latencies.len();
    println!(
        "FIGURE webhook_latency events={n} p50_ms={} p99_ms={} max_ms={} after_pass_end_p99_ms={} (target: <= 1000 ms)",
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99),
        pct(&mut latencies, 1.0),
        pct(&mut from_pass_end, 0.99),
    );
}
