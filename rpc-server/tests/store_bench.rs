//! Throughput of `Store::apply_node` alone on a durable redb file, shaped like
//! the end-to-end benchmark: 100 nodes x 100 files x 100 records.
//!
//! `cargo test --release -p rpc-server --test store_bench -- --ignored --nocapture`

use billing_server::test_support::{payment, register};
use std::time::{Duration, Instant};

use billing_server::store::{FileBatch, FileOutcome, NodeUpdate, Store, UsageRecord};

const NODES: usize = 100;
const FILES: usize = 100;
const RECORDS: usize = 100;
const USERS: usize = 1_000;

fn node_update(node: usize) -> NodeUpdate {
    let name = format!("node-{node:03}");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ node as u64;
    let files = (0..FILES)
        .map(|hour| {
            let stamp = format!("2026-11-{:02}-{:02}", 1 + hour / 24, hour % 24);
            let records = (0..RECORDS)
                .map(|n| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    Ok(UsageRecord {
                        idempotency_key: format!("{name}:{stamp}:{n}"),
                        user_sid: format!("u-{:04}", (rng >> 33) as usize % USERS),
                        node_name: name.clone(),
                        cost_cents: 1 + (rng >> 50) as i64 % 500,
                        resource: Some("vm.cpu".into()),
                        quantity: Some(3600.0),
                        unit: Some("core-seconds".into()),
                        period_start: None,
                        period_end: None,
                    })
                })
                .collect();
            FileBatch {
                path: format!("nodes/{name}/usage_{stamp}.otoml"),
                blob_id: format!("{:040x}", node * FILES + hour),
                outcome: FileOutcome::Decoded(records),
            }
        })
        .collect();
    NodeUpdate {
        node_name: name,
        head_commit: "0123456789abcdef0123456789abcdef01234567".into(),
        tree_id: format!("{node:040x}"),
        files,
    }
}

/// CPU time of this process (user + system), to compare runs on a busy machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[test]
#[ignore = "benchmark; run in release mode with --ignored --nocapture"]
fn apply_node_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
    for u in 0..USERS {
        let sid = format!("u-{u:04}");
        register(&store, &sid, 1);
        store
            .record_payment(&payment(format!("p-{u}"), sid, 1_000_000), 2)
            .unwrap();
    }
    let mut in_store = Duration::ZERO;
    let mut cpu = 0.0;
    let mut applied = 0;
    for node in 0..NODES {
        let update = node_update(node);
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        let out = store.apply_node(update, 3).unwrap();
        in_store += started.elapsed();
        cpu += cpu_seconds() - cpu_before;
        applied += out.applied;
    }
    assert_eq!(applied as usize, NODES * FILES * RECORDS);
    let per_sec = applied as f64 / in_store.as_secs_f64();
    println!(
        "apply_node: {applied} records in {:.2} s = {per_sec:.0} records/s (durable commits, \
         one per node; {cpu:.2} s CPU); peak RSS {:.0} MB",
        in_store.as_secs_f64(),
        peak_rss_mb().unwrap_or(f64::NAN)
    );

    // A second pass over the same data is all duplicates.
    let started = Instant::now();
    let out = store.apply_node(node_update(0), 4).unwrap();
    println!(
        "re-apply of one node: {} duplicates in {:.1} ms",
        out.duplicate,
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(out.applied, 0);
    assert_eq!(store.overview_counts().unwrap(), store.recount().unwrap());
}
