//! The simulator against real git repositories, checked with the `git` CLI.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use billing_api::otoml::decode_batch;
use billing_server::simulate::{SimulateOptions, SimulateReport, node_name, simulate, user_sid};
use common::git;

fn opts(repo: &Path, hours: u32) -> SimulateOptions {
    SimulateOptions {
        repo: repo.to_path_buf(),
        nodes: 3,
        hours,
        records: 5,
        users: 4,
        seed: 42,
        branch: "main".into(),
    }
}

/// Reads every usage file of `commit` back and checks it against `report`-like totals.
fn totals_at(repo: &Path, commit: &str) -> (u64, u64, i64, BTreeMap<String, i64>, Vec<String>) {
    let listing = git(repo, &["ls-tree", "-r", "--name-only", commit]);
    let (mut files, mut records, mut cost) = (0, 0, 0);
    let mut per_user = BTreeMap::new();
    let mut keys = Vec::new();
    for path in listing.lines().filter(|p| p.starts_with("nodes/")) {
        let node = path.split('/').nth(1).unwrap();
        let body = git(repo, &["show", &format!("{commit}:{path}")]);
        let batch = decode_batch(body.as_bytes(), node).unwrap();
        files += 1;
        for record in batch.records {
            let record = record.expect("simulated records are valid");
            assert!(record.cost_cents > 0, "{record:?}");
            assert!(record.resource.is_some() && record.quantity.is_some());
            assert!(record.unit.is_some() && record.period_start.is_some());
            assert!(record.period_end.is_some());
            records += 1;
            cost += record.cost_cents;
            *per_user.entry(record.user_sid).or_default() += record.cost_cents;
            keys.push(record.idempotency_key);
        }
    }
    (files, records, cost, per_user, keys)
}

#[test]
fn a_new_repo_gets_one_commit_per_hour_with_valid_batches() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    let report = simulate(&opts(&repo, 4)).unwrap();

    assert_eq!(report.commits, 4);
    assert_eq!(report.files, 12);
    assert_eq!(report.records, 60);
    assert_eq!(report.first_hour, "2026-01-01-00");
    assert_eq!(report.last_hour, "2026-01-01-03");
    assert_eq!(git(&repo, &["rev-parse", "main"]).trim(), report.head);
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "4");
    assert_eq!(
        git(&repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
    git(&repo, &["fsck", "--strict", "--no-dangling"]);
    // Objects are written as a pack, not as thousands of loose files.
    let counts = git(&repo, &["count-objects", "-v"]);
    assert!(counts.lines().any(|l| l == "count: 0"), "{counts}");
    assert!(counts.lines().any(|l| l == "in-pack: 36"), "{counts}");

    let (files, records, cost, per_user, keys) = totals_at(&repo, &report.head);
    assert_eq!((files, records, cost), (12, 60, report.total_cost_cents));
    assert_eq!(per_user, report.per_user_cost_cents);
    let users: HashSet<String> = (0..4).map(user_sid).collect();
    assert!(per_user.keys().all(|u| users.contains(u)), "{per_user:?}");
    assert!(keys.contains(&"node-002:2026-01-01-03:4".to_string()));
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());

    let first = git(
        &repo,
        &["show", "main:nodes/node-000/usage_2026-01-01-00.otoml"],
    );
    assert!(
        first.contains("period_start = 2026-01-01T00:00:00Z"),
        "{first}"
    );
    assert!(
        first.contains("period_end = 2026-01-01T01:00:00Z"),
        "{first}"
    );
}

#[test]
fn same_seed_gives_the_same_commits_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let a = simulate(&opts(&dir.path().join("a"), 3)).unwrap();
    let b = simulate(&opts(&dir.path().join("b"), 3)).unwrap();
    assert_eq!(a, b);

    let mut other_seed = opts(&dir.path().join("c"), 3);
    other_seed.seed = 43;
    let c = simulate(&other_seed).unwrap();
    assert_ne!(c.head, a.head);
    assert_ne!(c.per_user_cost_cents, a.per_user_cost_cents);
}

#[test]
fn extending_continues_after_the_latest_hour_with_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    let first = simulate(&opts(&repo, 3)).unwrap();
    let (_, _, _, _, old_keys) = totals_at(&repo, &first.head);
    let second = simulate(&opts(&repo, 2)).unwrap();

    assert_eq!(second.first_hour, "2026-01-01-03");
    assert_eq!(second.last_hour, "2026-01-01-04");
    assert_eq!(second.commits, 2);
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "5");
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{}~2", second.head)]).trim(),
        first.head
    );
    git(&repo, &["fsck", "--strict", "--no-dangling"]);

    let (files, records, cost, _, all_keys) = totals_at(&repo, &second.head);
    assert_eq!(files, 15);
    assert_eq!(records, 75);
    assert_eq!(cost, first.total_cost_cents + second.total_cost_cents);
    let old: HashSet<_> = old_keys.into_iter().collect();
    let new: Vec<_> = all_keys.iter().filter(|k| !old.contains(*k)).collect();
    assert_eq!(new.len(), 30, "the second run adds 30 fresh keys");
    assert_eq!(all_keys.iter().collect::<HashSet<_>>().len(), 75);

    // Content depends only on seed, node and hour: 3 + 2 hours == 5 hours at once.
    let once = simulate(&opts(&dir.path().join("once.git"), 5)).unwrap();
    assert_eq!(once.head, second.head);
}

#[test]
fn zero_hours_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    let first = simulate(&opts(&repo, 1)).unwrap();
    let none = simulate(&opts(&repo, 0)).unwrap();
    assert_eq!(none.commits, 0);
    assert_eq!(none.records, 0);
    assert_eq!(none.head, first.head);
    assert_eq!(none.first_hour, "");
}

#[test]
fn extends_a_working_repo_by_moving_only_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "billing repo\n").unwrap();
    std::fs::create_dir_all(work.join("nodes/node-001")).unwrap();
    // A real node already wrote a later hour: the simulator continues after it.
    std::fs::write(
        work.join("nodes/node-001/usage_2026-03-05-07.otoml"),
        "records = []\n",
    )
    .unwrap();
    std::fs::write(work.join("nodes/node-001/notes.txt"), "kept\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial"]);

    let report = simulate(&opts(&work, 2)).unwrap();
    assert_eq!(report.first_hour, "2026-03-05-08");
    assert_eq!(git(&work, &["rev-parse", "main"]).trim(), report.head);
    assert_eq!(git(&work, &["rev-list", "--count", "main"]).trim(), "3");
    let files = git(&work, &["ls-tree", "-r", "--name-only", "main"]);
    for kept in [
        "README.md",
        "nodes/node-001/notes.txt",
        "nodes/node-001/usage_2026-03-05-07.otoml",
        "nodes/node-000/usage_2026-03-05-08.otoml",
        "nodes/node-002/usage_2026-03-05-09.otoml",
    ] {
        assert!(files.lines().any(|l| l == kept), "{kept} missing: {files}");
    }
    git(&work, &["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn refuses_a_path_that_is_not_a_repo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let err = simulate(&opts(dir.path(), 1)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("not a git repository"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

    // An empty directory (e.g. made by `mktemp -d`) becomes a new bare repo.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let report = simulate(&opts(&empty, 1)).unwrap();
    assert_eq!(git(&empty, &["rev-parse", "main"]).trim(), report.head);
}

#[test]
fn node_and_user_names_are_what_the_simulator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    let report: SimulateReport = simulate(&opts(&repo, 1)).unwrap();
    let listing = git(&repo, &["ls-tree", "--name-only", "main:nodes"]);
    let nodes: Vec<_> = listing.lines().collect();
    assert_eq!(nodes, [node_name(0), node_name(1), node_name(2)]);
    assert!(
        report
            .per_user_cost_cents
            .keys()
            .all(|u| u.starts_with("u-"))
    );
}
