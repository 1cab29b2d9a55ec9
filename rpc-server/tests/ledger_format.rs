//! Ledgers written by earlier formats open, migrate and keep every value.
//!
//! `tests/fixtures/ledger-v1.redb` is a small ledger written by format 1 (the
//! rows of that format stored API types by position). It holds two users and
//! their payments, three applied records from two nodes, a held record of an
//! unregistered user, an invalid record, a conflict with its applied version,
//! the two nodes' state and one run. See `tests/fixtures/README.md`.

use billing_api::{NodeStatus, RejectReason};
use billing_server::store::{Depth, Store};

const COMMIT: &str = "5cb2705c58d871a4846b61d7b0706bcbacf8f7f8";
const FILE_N1: &str = "nodes/n1/usage_2026-11-27-00.otoml";
const FILE_N2: &str = "nodes/n2/usage_2026-11-27-01.otoml";

/// A copy of the fixture to open (opening migrates it in place).
fn v1_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ledger-v1.redb");
    std::fs::copy(fixture, &path).unwrap();
    (dir, path)
}

fn check_everything(store: &Store) {
    let alice = store.get_user("alice").unwrap();
    assert_eq!(alice.display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.created_at, "2025-11-24T16:00:00.000Z");
    assert_eq!(
        (
            alice.credit_balance_cents,
            alice.total_paid_cents,
            alice.total_consumed_cents
        ),
        (4850, 5000, 150)
    );
    let bob = store.get_user("bob").unwrap();
    assert_eq!(
        (
            bob.credit_balance_cents,
            bob.total_paid_cents,
            bob.total_consumed_cents
        ),
        (220, 300, 80)
    );

    let payments = store.list_payments(None, None, 100).unwrap().items;
    let got: Vec<_> = payments
        .iter()
        .map(|p| {
            (
                p.payment_id.as_str(),
                p.user_sid.as_str(),
                p.amount_cents,
                p.kind.as_str(),
                p.reference.as_deref(),
                p.created_at.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "pay-2",
                "bob",
                300,
                "refund",
                None,
                "2025-11-24T16:00:03.000Z"
            ),
            (
                "pay-1",
                "alice",
                5000,
                "topup",
                Some("invoice 17"),
                "2025-11-24T16:00:02.000Z"
            ),
        ]
    );

    let consumed = store.list_consumed(None, None, 100).unwrap().items;
    let got: Vec<_> = consumed
        .iter()
        .map(|c| {
            assert_eq!(c.commit_sha, COMMIT);
            (
                c.idempotency_key.as_str(),
                c.user_sid.as_str(),
                c.node_name.as_str(),
                c.cost_cents,
                c.file_path.as_str(),
                c.applied_at.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("k5", "alice", "n2", 30, FILE_N2, "2026-12-02T01:17:40.781Z"),
            ("k2", "bob", "n1", 80, FILE_N1, "2026-12-02T01:17:40.779Z"),
            (
                "k1",
                "alice",
                "n1",
                120,
                FILE_N1,
                "2026-12-02T01:17:40.779Z"
            ),
        ]
    );
    let alices = store.list_consumed(Some("alice"), None, 100).unwrap().items;
    let keys: Vec<_> = alices.iter().map(|c| c.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["k5", "k1"]);

    let rejected = store.list_rejected(None, 100).unwrap().items;
    let got: Vec<_> = rejected
        .iter()
        .map(|r| {
            assert_eq!(r.commit_sha, COMMIT);
            (
                r.id.as_str(),
                r.reason,
                r.node_name.as_str(),
                r.file_path.as_str(),
                r.record_index,
                r.idempotency_key.as_deref(),
                r.user_sid.as_deref(),
                r.cost_cents,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "3",
                RejectReason::Conflict,
                "n2",
                FILE_N2,
                Some(1),
                Some("k1"),
                Some("bob"),
                Some(999)
            ),
            (
                "2",
                RejectReason::Invalid,
                "n1",
                FILE_N1,
                Some(3),
                Some("k4"),
                Some("alice"),
                None
            ),
            (
                "1",
                RejectReason::UnknownUser,
                "n1",
                FILE_N1,
                Some(2),
                Some("k3"),
                Some("carol"),
                Some(40)
            ),
        ]
    );
    let existing = rejected[0]
        .existing
        .as_ref()
        .expect("a conflict shows the applied version");
    assert_eq!(
        (
            existing.idempotency_key.as_str(),
            existing.user_sid.as_str(),
            existing.node_name.as_str(),
            existing.cost_cents,
            existing.commit_sha.as_str(),
            existing.file_path.as_str(),
            existing.applied_at.as_str(),
        ),
        (
            "k1",
            "alice",
            "n1",
            120,
            COMMIT,
            FILE_N1,
            "2026-12-02T01:17:40.779Z"
        )
    );
    assert!(
        rejected[1]
            .detail
            .contains("cost_cents must be >= 0, got -5")
    );
    assert!(
        rejected
            .iter()
            .all(|r| r.first_seen_at.starts_with("2026-12-02T01:17:40.7"))
    );

    let nodes = store.nodes().unwrap();
    let got: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.node_name.as_str(),
                n.tree_id.as_deref(),
                n.last_commit_sha.as_deref(),
                n.last_run_at_ms,
                n.records_consumed_total,
                n.status,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "n1",
                Some("cde57eb464a4286861f75ce7df00704afc7998fa"),
                Some(COMMIT),
                Some(1_796_174_260_779),
                2,
                NodeStatus::Ok
            ),
            (
                "n2",
                Some("a1e4279823ec8147e966225464808298e895ca59"),
                Some(COMMIT),
                Some(1_796_174_260_781),
                1,
                NodeStatus::Ok
            ),
        ]
    );
    let files = store.consumed_files("n1").unwrap();
    assert_eq!(
        files.get(FILE_N1).map(String::as_str),
        Some("2ccece61e707aedc879a68a49a08e40d2494b559")
    );

    let runs = store.list_runs(None, 100).unwrap().items;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (
            run.run_id,
            run.started_at.as_str(),
            run.finished_at.as_str(),
            run.head_commit.as_deref(),
            run.nodes_total,
            run.files_read,
            run.records_applied,
            run.records_conflict,
            run.records_pending,
            run.records_invalid,
            run.cents_debited,
            run.errors.len(),
        ),
        (
            1,
            "2026-12-02T01:17:40.773Z",
            "2026-12-02T01:17:40.788Z",
            Some(COMMIT),
            2,
            2,
            3,
            1,
            1,
            1,
            230,
            0
        )
    );

    let counts = store.overview_counts().unwrap();
    assert_eq!(
        (
            counts.total_users,
            counts.total_balance_cents,
            counts.consumed_records,
            counts.pending_records,
            counts.rejected_items
        ),
        (2, 5070, 3, 1, 3)
    );
    let report = store.verify(Depth::Full).unwrap();
    assert!(report.consistent, "{}", report.summary());
}

#[test]
fn a_format_1_ledger_opens_with_every_value() {
    let (_dir, path) = v1_copy();
    let store = Store::open(&path).unwrap();
    check_everything(&store);
    drop(store);
    // Opened again (migrated by now, if it needed to be), still the same.
    let store = Store::open(&path).unwrap();
    check_everything(&store);
    // And it still works: registering the held record's user applies it.
    store
        .register_user(
            &billing_api::RegisterUser {
                user_sid: "carol".into(),
                display_name: None,
                email: None,
            },
            1_800_000_000_000,
        )
        .unwrap();
    assert_eq!(store.get_user("carol").unwrap().credit_balance_cents, -40);
    assert_eq!(store.overview_counts().unwrap().pending_records, 0);
}
