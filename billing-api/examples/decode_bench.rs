//! Decoding throughput of the OTOML codec on simulator-like files:
//! `cargo run --release -p billing-api --example decode_bench`.

use std::time::Instant;

use billing_api::otoml::{UsageBatch, UsageRecord, decode_batch, encode_batch};

fn main() {
    let records: Vec<UsageRecord> = (0..100)
        .map(|i| UsageRecord {
            idempotency_key: format!("node-042:2026-01-05-13:{i}"),
            user_sid: format!("u-{:04}", i * 7 % 1000),
            node_name: "node-042".into(),
            cost_cents: 17 + i,
            resource: Some("vm.cpu".into()),
            quantity: Some(3600.0 + i as f64),
            unit: Some("core-seconds".into()),
            period_start: Some("2026-01-05T13:00:00Z".parse().unwrap()),
            period_end: Some("2026-01-05T14:00:00Z".parse().unwrap()),
        })
        .collect();
    let text = encode_batch(&UsageBatch {
        version: Some(1),
        records,
    });
    let files = 2000;
    let started = Instant::now();
    let mut decoded = 0usize;
    for _ in 0..files {
        let batch = decode_batch(text.as_bytes(), "node-042").unwrap();
        decoded += batch.records.iter().filter(|r| r.is_ok()).count();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "FIGURE otoml_decode records={decoded} bytes_per_file={} records_per_s={:.0} mb_per_s={:.1} (one thread)",
        text.len(),
        decoded as f64 / secs,
        (text.len() * files) as f64 / secs / 1e6
    );
}
