//! A storage failure under the real `rpc-server serve`: the server's file size
//! limit (RLIMIT_FSIZE, lowered from outside with prlimit) makes the ledger's
//! writes fail with EFBIG, as a full disk does with ENOSPC. redb then refuses
//! every later operation until the database is re-opened. The failure must
//! show at once (/health 503 with the reason, overview health `failing`, the
//! log), and once the limit is lifted the server must re-open the ledger
//! itself, record the pass summary it could not record, and work again.
#![cfg(target_os = "linux")]

mod ledger_process;

use std::time::Duration;

use ledger_process::{ServerProcess, Workspace, run, simulate};
use rustix::process::{Pid, Resource, Rlimit, prlimit};
use serde_json::json;

fn limit_file_size(server: &ServerProcess, bytes: Option<u64>) {
    let pid = Pid::from_raw(server.pid() as i32).unwrap();
    let old = prlimit(
        Some(pid),
        Resource::Fsize,
        Rlimit {
            current: None,
            maximum: None,
        },
    )
    .unwrap();
    prlimit(
        Some(pid),
        Resource::Fsize,
        Rlimit {
            current: bytes,
            maximum: old.maximum,
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_shows_in_health_and_the_ledger_recovers_without_a_restart() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 2, 1, 20, 1);
    let server = ServerProcess::start(&ws.data(), &ws.repo());
    let first = server.ok("aggregate_now", json!({})).await;
    assert!(first["errors"].as_array().unwrap().is_empty(), "{first}");
    server
        .ok("register_user", json!({"user_sid": "u-0001"}))
        .await;
    server
        .ok(
            "record_payment",
            json!({"payment_id": "p1", "user_sid": "u-0001", "amount_cents": 500}),
        )
        .await;
    assert_eq!(server.health().await.0, 200);
    let runs_before = server.ok("list_runs", json!({})).await["items"]
        .as_array()
        .unwrap()
        .len();

    // Writes past the first 4 KiB of any file now fail, as on a full disk.
    limit_file_size(&server, Some(4096));
    simulate(&ws.repo(), 2, 4, 2_000, 2);
    let failed = server.rpc("aggregate_now", json!({})).await;
    let error = &failed["error"];
    assert_eq!(error["code"], -32003, "{failed}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("ledger storage failed"), "{message}");
    assert!(message.contains("kept in memory"), "{message}");
    let unrecorded = &error["data"];
    assert_eq!(unrecorded["run_id"], 0, "not recorded: {unrecorded}");
    let applied_while_failing = unrecorded["records_applied"].as_u64().unwrap();

    // The failure is visible at once and stays so while the disk is full.
    let (status, body) = server.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failing", "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("ledger.redb"), "{reason}");
    // Re-opening is first tried after 200 ms, then with backoff; however
    // slowly the machine runs, each attempt must keep the failure visible.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = server.health().await;
        assert_eq!(status, 503, "still failing while the limit holds: {body}");
        if body["reason"].as_str().unwrap().contains("scratch file") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "says why re-opening does not work yet, within 30 s: {body}"
        );
    }
    let overview = server.ok("overview", json!({})).await;
    assert_eq!(overview["health"], "failing", "{overview}");
    let state = server.ok("aggregator_state", json!({})).await;
    assert_eq!(state["health"], "failing", "{state}");
    // Reads still answer; writes fail with a clear error.
    let balance = server
        .ok("get_balance", json!({"user_sid": "u-0001"}))
        .await;
    assert_eq!(balance["total_paid_cents"], 500, "{balance}");
    let refused = server
        .rpc(
            "record_payment",
            json!({"payment_id": "p2", "user_sid": "u-0001", "amount_cents": 700}),
        )
        .await;
    let refused = refused["error"]["message"].as_str().unwrap().to_string();
    assert!(
        refused.contains("record payment") && refused.contains("free space"),
        "{refused}"
    );
    assert!(
        server.log().contains("ledger storage failed"),
        "the log says why: {}",
        server.log()
    );

    // Space is back: the ledger re-opens itself and records the kept summary.
    limit_file_size(&server, None);
    server.wait_health(200, Duration::from_secs(30)).await;
    let runs = server.ok("list_runs", json!({"limit": 10})).await;
    let runs = runs["items"].as_array().unwrap();
    assert_eq!(runs.len(), runs_before + 1, "the kept summary: {runs:?}");
    assert_eq!(runs[0]["run_id"], runs_before + 1);
    assert_eq!(runs[0]["started_at"], unrecorded["started_at"]);
    assert_eq!(runs[0]["records_applied"], applied_while_failing);
    server
        .ok(
            "record_payment",
            json!({"payment_id": "p2", "user_sid": "u-0001", "amount_cents": 700}),
        )
        .await;
    let next = server.ok("aggregate_now", json!({})).await;
    assert!(next["errors"].as_array().unwrap().is_empty(), "{next}");
    assert!(
        next["records_applied"].as_u64().unwrap() + next["records_pending"].as_u64().unwrap() > 0
    );
    let overview = server.ok("overview", json!({})).await;
    assert_eq!(overview["health"], "ok", "{overview}");
    let log = server.stop();
    assert!(log.contains("re-opened"), "{log}");

    // Nothing was lost or applied twice: the ledger's counters match its rows.
    let out = run(&["verify"], &ws.data());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
