//! Hostile usage files against the real `rpc-server aggregate --once`: a file
//! of many invalid records stores a bounded sample, a file over the record
//! limit is rejected whole, a huge charge of one user blocks no one else, and
//! a file named after an hour that does not exist is rejected by name.

mod common;

use std::path::Path;
use std::process::Command;

use billing_api::{RejectReason, RejectedItem};
use billing_server::store::{REJECTION_SAMPLE, Store};
use common::{NodeRepo, batch, pay, usage_path};

const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");

fn aggregate(repo: &Path, data: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["aggregate", "--once", "--json", "--repo"])
        .arg(repo)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aggregate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn with_store<T>(data: &Path, f: impl FnOnce(&Store) -> T) -> T {
    std::fs::create_dir_all(data).unwrap();
    let store = Store::open(&data.join("ledger.redb")).unwrap();
    f(&store)
}

fn register(data: &Path, sids: &[&str]) {
    with_store(data, |s| common::register(s, sids));
}

fn rejected(data: &Path) -> Vec<RejectedItem> {
    with_store(data, |s| {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = s.list_rejected(cursor.as_deref(), 1000).unwrap();
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    })
}

/// `records = [{cost_cents=1}, …]`: every record lacks its key, user and node.
fn invalid_records(n: usize) -> Vec<u8> {
    let mut text = String::from("records = [");
    for _ in 0..n {
        text.push_str("{cost_cents=1},");
    }
    text.push(']');
    text.into_bytes()
}

#[test]
fn many_invalid_records_store_a_bounded_sample_and_a_summary() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    register(data.path(), &["u"]);
    const N: usize = 30_000;
    repo.commit(
        &[
            (&usage_path("bomb", 1), &invalid_records(N)),
            (&usage_path("good", 1), &batch("good", &[("g1", "u", 7)])),
        ],
        "bomb",
    );
    let before = std::fs::metadata(data.path().join("ledger.redb"))
        .unwrap()
        .len();
    let summary = aggregate(repo.path(), data.path(), &[]);
    assert_eq!(summary["records_invalid"], N as u64, "{summary}");
    assert_eq!(summary["records_applied"], 1, "{summary}");

    let items = rejected(data.path());
    let bomb: Vec<_> = items.iter().filter(|i| i.node_name == "bomb").collect();
    assert_eq!(
        bomb.len() as u64,
        REJECTION_SAMPLE + 1,
        "sample plus one summary"
    );
    let summary_item = bomb.iter().find(|i| i.record_index.is_none()).unwrap();
    assert_eq!(summary_item.reason, RejectReason::Invalid);
    assert_eq!(
        summary_item.record_count,
        Some(N as u64 - REJECTION_SAMPLE),
        "{}",
        summary_item.detail
    );
    let counted = format!("missing field: {}", N as u64 - REJECTION_SAMPLE);
    assert!(
        summary_item.detail.contains(&counted),
        "{}",
        summary_item.detail
    );
    // The counters add up: one listed item per sampled record, the summary for the rest.
    let listed: u64 = bomb.iter().map(|i| i.record_count.unwrap_or(1)).sum();
    assert_eq!(listed, N as u64);
    let growth = std::fs::metadata(data.path().join("ledger.redb"))
        .unwrap()
        .len()
        .saturating_sub(before);
    assert!(growth < 4 << 20, "ledger grew by {growth} bytes");

    // The same file again (a new blob with the same records): nothing new is listed twice.
    let mut again = invalid_records(N);
    again.extend_from_slice(b"\n# touched\n");
    repo.commit(&[(&usage_path("bomb", 1), &again)], "touch");
    aggregate(repo.path(), data.path(), &[]);
    let items = rejected(data.path());
    let bomb_now = items.iter().filter(|i| i.node_name == "bomb").count() as u64;
    assert_eq!(
        bomb_now,
        REJECTION_SAMPLE + 2,
        "one more summary, the sample dedups"
    );
    with_store(data.path(), |s| {
        assert_eq!(s.recount().unwrap(), s.overview_counts().unwrap());
    });
}

#[test]
fn a_file_over_the_record_limit_is_rejected_whole_until_the_limit_allows_it() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    register(data.path(), &["u"]);
    let records: Vec<(String, &str, i64)> = (0..50).map(|i| (format!("k{i}"), "u", 1)).collect();
    let refs: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|(k, u, c)| (k.as_str(), *u, *c))
        .collect();
    repo.commit(&[(&usage_path("n", 1), &batch("n", &refs))], "big");

    let summary = aggregate(repo.path(), data.path(), &["--max-records-per-file", "40"]);
    assert_eq!(summary["records_applied"], 0, "{summary}");
    assert_eq!(summary["files_rejected"], 1, "{summary}");
    let items = rejected(data.path());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].reason, RejectReason::TooManyRecords);
    assert!(
        items[0].detail.contains("--max-records-per-file"),
        "{}",
        items[0].detail
    );

    // Checked again at every pass: a raised limit applies it without a new commit.
    let summary = aggregate(repo.path(), data.path(), &["--max-records-per-file", "50"]);
    assert_eq!(summary["records_applied"], 50, "{summary}");
    assert!(
        rejected(data.path()).is_empty(),
        "the rejection is resolved"
    );
    with_store(data.path(), |s| {
        assert_eq!(s.get_balance("u").unwrap().credit_balance_cents, -50);
    });
}

#[test]
fn one_users_huge_charge_blocks_no_one_elses() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    register(data.path(), &["mallory", "victim"]);
    with_store(data.path(), |s| pay(s, "p1", "victim", 1000));
    repo.commit(
        &[(
            &usage_path("evil", 1),
            &batch("evil", &[("e1", "mallory", 9_223_372_036_854_775_000)]),
        )],
        "evil",
    );
    // Without a ceiling the huge charge applies to mallory alone.
    aggregate(
        repo.path(),
        data.path(),
        &["--max-record-cents", &i64::MAX.to_string()],
    );
    repo.commit(
        &[(
            &usage_path("good", 1),
            &batch("good", &[("v1", "victim", 5000)]),
        )],
        "good",
    );
    let summary = aggregate(repo.path(), data.path(), &[]);
    assert_eq!(summary["records_applied"], 1, "{summary}");
    with_store(data.path(), |s| {
        assert_eq!(s.get_balance("victim").unwrap().credit_balance_cents, -4000);
        assert_eq!(
            s.overview_counts().unwrap().total_balance_cents,
            1000 - 5000 - 9_223_372_036_854_775_000i128
        );
    });

    // With the default ceiling (1,000,000.00) such a charge is an invalid record.
    repo.commit(
        &[(
            &usage_path("evil", 2),
            &batch("evil", &[("e2", "mallory", 100_000_001)]),
        )],
        "evil again",
    );
    let summary = aggregate(repo.path(), data.path(), &[]);
    assert_eq!(summary["records_invalid"], 1, "{summary}");
    let item = rejected(data.path())
        .into_iter()
        .find(|i| i.idempotency_key.as_deref() == Some("e2"))
        .unwrap();
    assert!(
        item.detail.contains("--max-record-cents"),
        "{}",
        item.detail
    );
}

#[test]
fn a_file_named_after_an_impossible_hour_is_rejected_by_name() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    register(data.path(), &["u"]);
    repo.commit(
        &[
            (
                "nodes/n/usage_9999-99-99-99.otoml",
                &batch("n", &[("k1", "u", 5)]),
            ),
            (&usage_path("n", 1), &batch("n", &[("k2", "u", 3)])),
        ],
        "names",
    );
    let summary = aggregate(repo.path(), data.path(), &[]);
    assert_eq!(summary["records_applied"], 1, "{summary}");
    let items = rejected(data.path());
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].reason, RejectReason::InvalidName);
    assert!(items[0].detail.contains("month 99"), "{}", items[0].detail);
    // Not read again while it does not change.
    aggregate(repo.path(), data.path(), &[]);
    assert_eq!(rejected(data.path()).len(), 1);
}

#[test]
fn every_record_of_an_unknown_user_is_held() {
    let repo = NodeRepo::new();
    let data = tempfile::tempdir().unwrap();
    register(data.path(), &["someone"]);
    const N: usize = 20_000;
    let records: Vec<(String, &str, i64)> =
        (0..N).map(|i| (format!("k{i}"), "newcomer", 2)).collect();
    let refs: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|(k, u, c)| (k.as_str(), *u, *c))
        .collect();
    repo.commit(&[(&usage_path("n", 1), &batch("n", &refs))], "held");
    let summary = aggregate(repo.path(), data.path(), &[]);
    assert_eq!(summary["records_pending"], N as u64, "{summary}");
    with_store(data.path(), |s| {
        assert_eq!(s.overview_counts().unwrap().pending_records, N as u64);
        let user = billing_server::test_support::register(s, "newcomer", 2);
        assert_eq!(user.credit_balance_cents, -2 * N as i64);
        assert_eq!(s.overview_counts().unwrap().pending_records, 0);
    });
}
