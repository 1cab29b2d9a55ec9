//! Aggregation passes over real git repos and a real ledger, on each backend
//! (redb, PostgreSQL): change detection, force-pushes, hostile input, and the
//! exactly-once rules.

mod common;

use billing_api::RejectReason;
use billing_server::store::Store;
use common::*;

fn balance(store: &Store, sid: &str) -> i64 {
    on_thread(|| store.get_balance(sid).unwrap().credit_balance_cents)
}

fn rejected(store: &Store) -> Vec<billing_api::RejectedItem> {
    on_thread(|| store.list_rejected(None, 1000).unwrap().items)
}

async fn rerun_is_a_noop_and_new_commits_apply_only_new_records(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    repo.commit(
        &[
            (
                &usage_path("node-a", 1),
                &batch("node-a", &[("a1", "u-1", 10), ("a2", "u-2", 20)]),
            ),
            (
                &usage_path("node-b", 1),
                &batch("node-b", &[("b1", "u-1", 5)]),
            ),
            ("README.md", b"not usage"),
            ("nodes/node-a/notes.txt", b"ignored"),
        ],
        "hour 1",
    );
    let data = tempfile::tempdir().unwrap();
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    register(agg.store(), &["u-1", "u-2"]);

    let first = agg.run_pass().await.unwrap();
    assert_eq!(
        (first.records_applied, first.files_read, first.nodes_total),
        (3, 2, 2)
    );
    assert_eq!(first.cents_debited, 35);
    assert!(first.errors.is_empty(), "{:?}", first.errors);

    // Nothing new: the head is unchanged, nothing is read.
    let second = agg.run_pass().await.unwrap();
    assert_eq!((second.records_applied, second.files_read), (0, 0));
    assert_eq!(second.nodes_skipped, 2);

    // One node gets a new file; the other is skipped by its unchanged tree.
    repo.commit(
        &[(
            &usage_path("node-a", 2),
            &batch("node-a", &[("a3", "u-1", 100)]),
        )],
        "hour 2",
    );
    let third = agg.run_pass().await.unwrap();
    assert_eq!(third.records_applied, 1);
    assert_eq!(third.files_read, 1, "only the new file is read");
    assert_eq!(third.nodes_skipped, 1);
    assert_eq!(balance(agg.store(), "u-1"), -115);
    assert_eq!(balance(agg.store(), "u-2"), -20);

    // A file changed after consumption: re-read, old keys are duplicates, the new one applies.
    repo.commit(
        &[(
            &usage_path("node-a", 2),
            &batch("node-a", &[("a3", "u-1", 100), ("a4", "u-2", 1)]),
        )],
        "amend hour 2",
    );
    let fourth = agg.run_pass().await.unwrap();
    assert_eq!((fourth.records_applied, fourth.records_duplicate), (1, 1));
    assert_eq!(balance(agg.store(), "u-2"), -21);

    // A deleted file changes nothing already applied.
    repo.git(&["rm", "-q", &usage_path("node-b", 1)]);
    repo.commit(&[], "drop node-b file");
    let fifth = agg.run_pass().await.unwrap();
    assert_eq!(fifth.records_applied, 0);
    assert_eq!(balance(agg.store(), "u-1"), -115);
}

async fn force_push_never_double_applies_or_loses_records(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    repo.commit(
        &[(
            &usage_path("n", 1),
            &batch("n", &[("k1", "u", 1), ("k2", "u", 2)]),
        )],
        "h1",
    );
    let base = repo.head();
    repo.commit(
        &[(&usage_path("n", 2), &batch("n", &[("k3", "u", 4)]))],
        "h2",
    );
    let data = tempfile::tempdir().unwrap();
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    register(agg.store(), &["u"]);
    assert_eq!(agg.run_pass().await.unwrap().records_applied, 3);

    // Rewrite history: drop h2, write a different hour 2 that repeats k3 and adds k4.
    repo.git(&["reset", "-q", "--hard", &base]);
    repo.commit(
        &[(
            &usage_path("n", 2),
            &batch("n", &[("k3", "u", 4), ("k4", "u", 8)]),
        )],
        "h2 rewritten",
    );
    let after = agg.run_pass().await.unwrap();
    assert_eq!((after.records_applied, after.records_duplicate), (1, 1));
    assert_eq!(balance(agg.store(), "u"), -15);
    assert_eq!(
        on_thread(|| agg.store().overview_counts().unwrap()).consumed_records,
        4
    );

    // Going back to an older head applies nothing and loses nothing.
    repo.git(&["reset", "-q", "--hard", &base]);
    repo.commit(&[], "empty");
    let back = agg.run_pass().await.unwrap();
    assert_eq!(back.records_applied, 0);
    assert_eq!(balance(agg.store(), "u"), -15);
}

async fn hostile_input_is_rejected_clearly_and_changes_nothing_else(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    let huge = format!(
        "[[records]]\nidempotency_key = \"big\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = 1\nresource = \"{}\"\n",
        "x".repeat(2 * 1024 * 1024)
    );
    repo.commit(
        &[
            (&usage_path("n", 1), b"records = [ this is not toml"),
            (&usage_path("n", 2), b"\xff\xfe\x00 not utf-8"),
            (
                &usage_path("n", 3),
                b"[[records]]\nidempotency_key = \"neg\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = -5\n\n\
                  [[records]]\nidempotency_key = \"typ\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = \"5\"\n\n\
                  [[records]]\nidempotency_key = \"spoof\"\nuser_sid = \"u\"\nnode_name = \"other\"\ncost_cents = 5\n\n\
                  [[records]]\nidempotency_key = \"good\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = 7\n",
            ),
            (&usage_path("n", 4), huge.as_bytes()),
            (
                &usage_path("n", 5),
                b"[[records]]\nidempotency_key = \"huge\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = 99999999999999999999\n",
            ),
            ("nodes/bad name/usage_2026-11-27-01.otoml", &batch("bad name", &[("x", "u", 1)])),
            ("nodes/n/../../usage_2026-11-27-01.otoml", &batch("n", &[("y", "u", 1)])),
        ],
        "hostile",
    );
    let data = tempfile::tempdir().unwrap();
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    register(agg.store(), &["u"]);
    let summary = agg.run_pass().await.unwrap();
    assert_eq!(
        summary.records_applied, 1,
        "only the good record applies: {summary:?}"
    );
    // An out-of-range integer makes its record unreadable, not the file.
    assert_eq!(summary.records_invalid, 4);
    assert_eq!(summary.files_rejected, 3, "bad TOML, non-UTF-8, too large");
    assert_eq!(balance(agg.store(), "u"), -7);

    let items = rejected(agg.store());
    let count = |reason| items.iter().filter(|i| i.reason == reason).count();
    assert_eq!(count(RejectReason::Unparseable), 2);
    assert_eq!(count(RejectReason::TooLarge), 1);
    assert_eq!(count(RejectReason::Invalid), 4);
    for item in &items {
        assert!(!item.detail.is_empty() && !item.blob_id.is_empty() && !item.file_path.is_empty());
    }
    let neg = items
        .iter()
        .find(|i| i.idempotency_key.as_deref() == Some("neg"))
        .unwrap();
    assert!(neg.detail.contains("cost_cents"), "{}", neg.detail);

    // Nothing new: rejected items are not duplicated by another pass.
    agg.run_pass().await.unwrap();
    assert_eq!(rejected(agg.store()).len(), items.len());

    // The node fixes a broken file: it is read again and applies.
    repo.commit(
        &[(&usage_path("n", 1), &batch("n", &[("fixed", "u", 3)]))],
        "fix",
    );
    let fixed = agg.run_pass().await.unwrap();
    assert_eq!(fixed.records_applied, 1);
    assert_eq!(balance(agg.store(), "u"), -10);
}

async fn conflicting_key_keeps_both_versions_and_applies_neither_twice(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    repo.commit(
        &[(&usage_path("n", 1), &batch("n", &[("k", "u", 10)]))],
        "h1",
    );
    repo.commit(
        &[(&usage_path("n", 2), &batch("n", &[("k", "u", 99)]))],
        "h2",
    );
    let data = tempfile::tempdir().unwrap();
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    register(agg.store(), &["u"]);
    let summary = agg.run_pass().await.unwrap();
    assert_eq!((summary.records_applied, summary.records_conflict), (1, 1));
    assert_eq!(balance(agg.store(), "u"), -10);
    let items = rejected(agg.store());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].reason, RejectReason::Conflict);
    assert_eq!(items[0].cost_cents, Some(99));
    assert_eq!(items[0].existing.as_ref().unwrap().cost_cents, 10);
}

async fn an_unreachable_repo_fails_the_pass_visibly_and_recovers(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    repo.commit(
        &[(&usage_path("n", 1), &batch("n", &[("k", "u", 10)]))],
        "h1",
    );
    let data = tempfile::tempdir().unwrap();
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    register(agg.store(), &["u"]);
    let git_dir = repo.path().join(".git");
    let moved = repo.path().join("moved.git");
    std::fs::rename(&git_dir, &moved).unwrap();
    let failed = agg.run_pass().await.unwrap_err();
    assert!(!failed.summary.errors.is_empty());
    assert!(failed.to_string().contains("failed"), "{failed}");
    assert_eq!(
        billing_server::aggregate::health_of(
            on_thread(|| agg.store().last_run().unwrap()).as_ref()
        ),
        billing_api::Health::Failing
    );
    std::fs::rename(&moved, &git_dir).unwrap();
    let ok = agg.run_pass().await.unwrap();
    assert_eq!(ok.records_applied, 1);
    assert_eq!(balance(agg.store(), "u"), -10);
}

async fn an_oversize_file_applies_once_the_limit_is_raised(backend: Backend) {
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    let padded = format!(
        "[[records]]\nidempotency_key = \"big\"\nuser_sid = \"u\"\nnode_name = \"n\"\ncost_cents = 9\n# {}\n",
        "x".repeat(64 * 1024)
    );
    repo.commit(
        &[
            (&usage_path("n", 1), padded.as_bytes()),
            (&usage_path("n", 2), &batch("n", &[("small", "u", 1)])),
        ],
        "h1",
    );
    let data = tempfile::tempdir().unwrap();
    {
        let agg = aggregator_on(&ledger, repo.path(), data.path(), 32 * 1024);
        register(agg.store(), &["u"]);
        let first = agg.run_pass().await.unwrap();
        assert_eq!((first.records_applied, first.files_rejected), (1, 1));
        // The oversize file is checked again at every pass, and still rejected once.
        let again = agg.run_pass().await.unwrap();
        assert_eq!((again.records_applied, again.files_rejected), (0, 1));
        let items = rejected(agg.store());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].reason, RejectReason::TooLarge);
        assert!(
            items[0].detail.contains("--max-file-bytes"),
            "{}",
            items[0].detail
        );
    }
    // The operator raises the limit; nothing else changes in the repo.
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024);
    let raised = agg.run_pass().await.unwrap();
    assert_eq!((raised.records_applied, raised.files_rejected), (1, 0));
    assert_eq!(balance(agg.store(), "u"), -10);
    // The file was read after all: its too_large item is gone, and the counters agree.
    assert!(rejected(agg.store()).is_empty());
    let counts = on_thread(|| agg.store().overview_counts().unwrap());
    assert_eq!(counts.rejected_items, 0);
    assert_eq!(counts, on_thread(|| agg.store().recount().unwrap()));
    // And from then on the head-unchanged shortcut applies again.
    let idle = agg.run_pass().await.unwrap();
    assert_eq!((idle.files_read, idle.nodes_skipped), (0, 1));
}

/// A pass stamps what it writes with the aggregator's clock, so a simulation
/// that sets the clock writes the same ledger every time it replays a seed.
async fn a_pass_stamps_its_writes_with_the_aggregators_clock(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let ledger = TestLedger::new(backend);
    let repo = NodeRepo::new();
    repo.commit(
        &[(&usage_path("n", 1), &batch("n", &[("k1", "u", 3)]))],
        "h1",
    );
    let data = tempfile::tempdir().unwrap();
    // 2026-12-01T00:00:00Z, then one hour later.
    let at = Arc::new(AtomicU64::new(1_796_083_200_000));
    let agg = aggregator_on(&ledger, repo.path(), data.path(), 1024 * 1024)
        .with_clock(billing_server::clock::Clock::manual(at.clone()));
    register(agg.store(), &["u"]);
    let first = agg.run_pass().await.unwrap();
    assert_eq!(first.records_applied, 1);
    assert_eq!(
        (first.started_at.as_str(), first.finished_at.as_str()),
        ("2026-12-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z")
    );
    at.store(1_796_086_800_000, Ordering::SeqCst);
    repo.commit(
        &[(&usage_path("n", 2), &batch("n", &[("k2", "u", 4)]))],
        "h2",
    );
    let second = agg.run_pass().await.unwrap();
    assert_eq!(second.started_at, "2026-12-01T01:00:00.000Z");
    let applied: Vec<(String, String)> = on_thread(|| {
        agg.store()
            .list_consumed(None, None, 10)
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.idempotency_key, c.applied_at))
            .collect()
    });
    assert_eq!(
        applied,
        [
            ("k2".to_string(), "2026-12-01T01:00:00.000Z".to_string()),
            ("k1".to_string(), "2026-12-01T00:00:00.000Z".to_string()),
        ]
    );
    let runs = on_thread(|| agg.store().list_runs(None, 10).unwrap().items);
    let stamps: Vec<&str> = runs.iter().map(|r| r.started_at.as_str()).collect();
    assert_eq!(
        stamps,
        ["2026-12-01T01:00:00.000Z", "2026-12-01T00:00:00.000Z"]
    );
}

on_both_backends!(
    rerun_is_a_noop_and_new_commits_apply_only_new_records,
    force_push_never_double_applies_or_loses_records,
    hostile_input_is_rejected_clearly_and_changes_nothing_else,
    conflicting_key_keeps_both_versions_and_applies_neither_twice,
    an_unreachable_repo_fails_the_pass_visibly_and_recovers,
    an_oversize_file_applies_once_the_limit_is_raised,
    a_pass_stamps_its_writes_with_the_aggregators_clock,
);
