//! `rpc-server export`: CSV read back by an independent reader (Python's csv
//! module) and JSON Lines add up to the ledger's own totals; filters; and a
//! value with a comma and quotes stays one field (the ledger refuses control
//! characters, line breaks included, in what it stores).

mod common;

use std::path::Path;
use std::process::Command;

use billing_server::store::Store;
use common::{NodeRepo, aggregator, batch, on_thread, register, usage_path};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");

/// `rpc-server export --data-dir DATA ARGS…`, its stdout.
fn export(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("export")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parses CSV with Python's csv module: rows, and the sum of each `*_cents`
/// column; checks every decimal column against its cents.
fn python_csv(csv: &str) -> Value {
    let script = r#"
import csv, io, json, sys
from decimal import Decimal
rows = list(csv.DictReader(io.StringIO(sys.stdin.read(), newline='')))
sums = {}
for row in rows:
    for name, value in row.items():
        if name.endswith('_cents') and value != '':
            sums[name] = sums.get(name, 0) + int(value)
            decimal = row[name[:-len('_cents')]]
            assert Decimal(decimal) * 100 == int(value), (name, value, decimal)
print(json.dumps({'rows': len(rows), 'sums': sums, 'records': rows}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test reads the CSV back with python3 ({e}); install the Debian package python3")
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(csv.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn exports_add_up_to_the_ledger_in_csv_and_jsonl() {
    let repo = NodeRepo::new();
    repo.commit(
        &[
            (
                &usage_path("node-a", 0),
                &batch(
                    "node-a",
                    &[("a-0", "u-1", 120), ("a-1", "u-2", 35), ("a-2", "u-9", 5)],
                ),
            ),
            (
                &usage_path("node-b", 0),
                &batch("node-b", &[("b-0", "u-1", 7)]),
            ),
        ],
        "hour 0",
    );
    let data = tempfile::tempdir().unwrap();
    let aggregator = aggregator(repo.path(), data.path());
    register(aggregator.store(), &["u-1", "u-2"]);
    aggregator.run_pass().await.unwrap();
    let tricky = "invoice 7, \"rush\"; ok";
    on_thread(|| {
        for (id, sid, cents, reference) in [
            ("p-1", "u-1", 10_000, Some(tricky)),
            ("p-2", "u-2", 1_999, None),
            ("p-3", "u-1", 1, Some("plain")),
        ] {
            aggregator
                .store()
                .record_payment(
                    &billing_api::RecordPayment {
                        payment_id: id.into(),
                        user_sid: sid.into(),
                        amount_cents: cents,
                        kind: None,
                        reference: reference.map(str::to_string),
                    },
                    2,
                )
                .unwrap();
        }
    });
    let counts = aggregator.store().overview_counts().unwrap();
    drop(aggregator);
    let store = Store::open(&data.path().join("ledger.redb")).unwrap();
    let users = store.list_users(None, 100).unwrap().items;
    drop(store);
    let paid: i64 = users.iter().map(|u| u.total_paid_cents).sum();
    let data = data.path();

    let users_csv = python_csv(&export(data, &["--what", "users"]));
    assert_eq!(users_csv["rows"], counts.total_users);
    assert_eq!(
        users_csv["sums"]["balance_cents"],
        counts.total_balance_cents as i64
    );
    assert_eq!(users_csv["sums"]["paid_cents"], paid);

    let payments = python_csv(&export(data, &["--what", "payments"]));
    assert_eq!(payments["rows"], 3);
    assert_eq!(payments["sums"]["amount_cents"], paid);
    let p1 = payments["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["payment_id"] == "p-1")
        .unwrap();
    assert_eq!(p1["reference"], tricky, "one field, exactly as recorded");

    let consumed = python_csv(&export(data, &["--what", "consumed"]));
    assert_eq!(consumed["rows"], counts.consumed_records);
    assert_eq!(consumed["sums"]["cost_cents"], 162);

    // The held record of the unknown user u-9 is listed among the rejections.
    let rejected = python_csv(&export(data, &["--what", "rejected"]));
    assert!(rejected["rows"].as_u64().unwrap() >= 1);
    assert!(
        rejected["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["user_sid"] == "u-9")
    );

    // JSON Lines: one object per line, the same totals.
    let lines = export(data, &["--what", "consumed", "--format", "jsonl"]);
    let objects: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len() as u64, counts.consumed_records);
    assert_eq!(
        objects
            .iter()
            .map(|o| o["cost_cents"].as_i64().unwrap())
            .sum::<i64>(),
        162
    );
    assert!(
        objects
            .iter()
            .all(|o| o["cost"].is_string() && o["node_name"].is_string())
    );
    // The fixture's records all name the resource `vm.cpu`.
    assert!(
        objects.iter().all(|o| o["resource"] == "vm.cpu"),
        "{objects:?}"
    );

    // Filters: one user; a time window that holds everything, and one that holds nothing.
    let only = python_csv(&export(data, &["--what", "consumed", "--user", "u-1"]));
    assert_eq!(only["rows"], 2);
    assert_eq!(only["sums"]["cost_cents"], 127);
    // (The payments above were recorded at 2 ms after the epoch.)
    let window = |from: &str, to: &str| {
        python_csv(&export(
            data,
            &["--what", "payments", "--from", from, "--to", to],
        ))["rows"]
            .clone()
    };
    assert_eq!(window("1970-01-01T00:00:00Z", "1970-01-01T00:00:01Z"), 3);
    assert_eq!(
        window("1970-01-01T00:00:00.003Z", "2100-01-01T00:00:00Z"),
        0
    );
    assert_eq!(
        window("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.002Z"),
        0
    );

    // A bad time is refused with the flag and an example.
    let out = Command::new(BIN)
        .args([
            "export",
            "--what",
            "users",
            "--from",
            "yesterday",
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--from") && err.contains("RFC 3339"), "{err}");
}
