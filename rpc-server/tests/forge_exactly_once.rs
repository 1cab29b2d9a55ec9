//! The aggregator over the forge source, against the emulator: every record is
//! applied exactly once whatever the forge does between passes.

mod common;

use billing_server::test_support::register;
use std::collections::BTreeMap;
use std::time::Duration;

use billing_server::aggregate::Aggregator;
use billing_server::source::Source;
use billing_server::source::forge::{ForgeOptions, ForgeSource};
use billing_server::store::Store;
use forge_emulator::{EmulatorConfig, EmulatorHandle, Fault, FaultKind, ForgeRepo, blob_id};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const REPO: &str = "lhumina_code/hero_onboarding_billing";
const TOKEN: &str = "exactly-once-token";

struct World {
    _dir: tempfile::TempDir,
    emu: EmulatorHandle,
    agg: Aggregator,
}

async fn world(users: &[String]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
    // Small pages so listings take several requests and faults can hit any of them.
    config.tree_page_max = 3;
    let emu = EmulatorHandle::start(config, repo).await.unwrap();
    let options = ForgeOptions {
        request_timeout: Duration::from_millis(1000),
        connect_timeout: Duration::from_millis(500),
        max_attempts: 3,
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(10),
        retry_after_max: Duration::from_secs(2),
        blob_concurrency: 4,
        tree_page_size: 100,
    };
    let source =
        ForgeSource::open_with(&emu.base_url(), REPO, "main", Some(TOKEN.into()), options).unwrap();
    let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
    for sid in users {
        register(&store, sid, 1);
    }
    let agg = Aggregator::new(store, Source::Forge(source), 1024 * 1024);
    World {
        _dir: dir,
        emu,
        agg,
    }
}

/// `(idempotency_key, user_sid, cost_cents)`.
type Record = (String, String, i64);

fn batch(node: &str, records: &[Record]) -> Vec<u8> {
    let records: Vec<_> = records
        .iter()
        .map(|(key, user, cost)| (key.as_str(), user.as_str(), *cost, None))
        .collect();
    common::batch_of_resources(node, &records)
}

fn path(node: &str, hour: u32) -> String {
    format!(
        "nodes/{node}/usage_2026-11-{:02}-{:02}.otoml",
        1 + hour / 24,
        hour % 24
    )
}

fn balance(agg: &Aggregator, sid: &str) -> i64 {
    agg.store().get_balance(sid).unwrap().credit_balance_cents
}

#[tokio::test]
async fn a_failing_node_halts_alone_and_catches_up_on_the_next_pass() {
    let users = vec!["u-1".to_string(), "u-2".to_string()];
    let w = world(&users).await;
    let rec = |k: &str, u: &str, c: i64| (k.to_string(), u.to_string(), c);
    w.emu
        .commit(
            &[
                (
                    path("node-a", 0),
                    Some(batch("node-a", &[rec("a1", "u-1", 10)])),
                ),
                (
                    path("node-b", 0),
                    Some(batch("node-b", &[rec("b1", "u-2", 7)])),
                ),
            ],
            "hour 0",
        )
        .unwrap();
    let first = w.agg.run_pass().await.unwrap();
    assert_eq!(first.records_applied, 2);

    let hour1 = w
        .emu
        .commit(
            &[
                (
                    path("node-a", 1),
                    Some(batch("node-a", &[rec("a2", "u-1", 100)])),
                ),
                (
                    path("node-b", 1),
                    Some(batch("node-b", &[rec("b2", "u-2", 1000)])),
                ),
            ],
            "hour 1",
        )
        .unwrap();
    // The listing of node-b's new tree keeps failing: node-b halts, node-a goes on.
    let b_tree = w
        .emu
        .repo()
        .entry_at(hour1, "nodes/node-b")
        .unwrap()
        .unwrap()
        .id
        .to_string();
    w.emu.add_fault(
        Fault {
            times: None,
            ..Fault::new("trees", FaultKind::Status { status: 500 }, 0)
        }
        .on_path(&b_tree),
    );
    let partial = w.agg.run_pass().await.unwrap();
    assert_eq!(partial.records_applied, 1, "node-a's new record only");
    assert_eq!(partial.errors.len(), 1, "{:?}", partial.errors);
    assert_eq!(partial.errors[0].node_name.as_deref(), Some("node-b"));
    let node_b = w.agg.store().node("node-b").unwrap().unwrap();
    let last_error = node_b.last_error.unwrap_or_default();
    assert!(
        last_error.contains("500") && last_error.contains("nodes/node-b"),
        "{last_error}"
    );
    assert!(
        w.agg
            .store()
            .node("node-a")
            .unwrap()
            .unwrap()
            .last_error
            .is_none()
    );
    assert_eq!(balance(&w.agg, "u-1"), -110);
    assert_eq!(balance(&w.agg, "u-2"), -7);

    // Every blob download fails: nothing is applied, nothing is lost.
    w.emu.clear_faults();
    w.emu.add_fault(Fault {
        endpoint: Some("blobs".into()),
        kind: FaultKind::Status { status: 500 },
        times: None,
        probability: None,
        path_contains: None,
    });
    let failed = w.agg.run_pass().await.unwrap();
    assert_eq!(failed.records_applied, 0);
    assert_eq!(failed.errors.len(), 1, "{:?}", failed.errors);
    assert_eq!(balance(&w.agg, "u-2"), -7);

    // The forge recovers: the next pass applies exactly the missing record.
    w.emu.clear_faults();
    let recovered = w.agg.run_pass().await.unwrap();
    assert!(recovered.errors.is_empty(), "{:?}", recovered.errors);
    assert_eq!(recovered.records_applied, 1);
    assert_eq!(balance(&w.agg, "u-1"), -110);
    assert_eq!(balance(&w.agg, "u-2"), -1007);

    // Nothing new: a single request, and nothing applied.
    w.emu.reset_stats();
    let idle = w.agg.run_pass().await.unwrap();
    assert_eq!(idle.records_applied, 0);
    assert_eq!(w.emu.stats().total, 1, "{:?}", w.emu.stats());
}

#[tokio::test]
async fn force_pushes_never_apply_a_record_twice() {
    let users = vec!["u-1".to_string()];
    let w = world(&users).await;
    let rec = |k: &str, c: i64| (k.to_string(), "u-1".to_string(), c);
    let first = w
        .emu
        .commit(
            &[(
                path("node-a", 0),
                Some(batch("node-a", &[rec("k1", 10), rec("k2", 20)])),
            )],
            "hour 0",
        )
        .unwrap();
    assert_eq!(w.agg.run_pass().await.unwrap().records_applied, 2);
    let abandoned = w
        .emu
        .commit(
            &[(path("node-a", 1), Some(batch("node-a", &[rec("k3", 300)])))],
            "hour 1",
        )
        .unwrap();

    // History rewritten before any pass saw `abandoned`: hour 0 gains a record,
    // hour 1 carries k3 again plus k4.
    w.emu.repo().force_branch("main", first).unwrap();
    w.emu
        .commit(
            &[
                (
                    path("node-a", 0),
                    Some(batch(
                        "node-a",
                        &[rec("k1", 10), rec("k2", 20), rec("k5", 5000)],
                    )),
                ),
                (
                    path("node-a", 1),
                    Some(batch("node-a", &[rec("k3", 300), rec("k4", 4000)])),
                ),
            ],
            "rewritten",
        )
        .unwrap();
    let rewritten = w.agg.run_pass().await.unwrap();
    assert!(rewritten.errors.is_empty(), "{:?}", rewritten.errors);
    assert_eq!(rewritten.records_applied, 3, "k3, k4 and k5");
    assert_eq!(balance(&w.agg, "u-1"), -(10 + 20 + 300 + 4000 + 5000));

    // Forced back to the abandoned branch: everything there was applied already.
    w.emu.repo().force_branch("main", abandoned).unwrap();
    let back = w.agg.run_pass().await.unwrap();
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.records_applied, 0);
    assert_eq!(balance(&w.agg, "u-1"), -(10 + 20 + 300 + 4000 + 5000));
    assert_eq!(w.agg.store().overview_counts().unwrap().consumed_records, 5);
}

async fn random_run(seed: u64) {
    // Seeded: the test is reproducible from its seed.
    let mut rng = StdRng::seed_from_u64(seed);
    let users: Vec<String> = (0..5).map(|i| format!("u-{i}")).collect();
    let nodes: Vec<String> = (0..4).map(|i| format!("node-{i}")).collect();
    let w = world(&users).await;
    w.emu.emulator.control.seed(seed | 1);

    // What the forge holds: path -> records of that file.
    let mut files: BTreeMap<String, (String, Vec<Record>)> = BTreeMap::new();
    // Every key ever published, with its user and cost (keys are never reused).
    let mut published: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut next_key = 0u64;
    let mut hour = 0u32;

    for pass in 0..14 {
        // Random new commits: new files, records added to existing files, deletions.
        for _ in 0..rng.random_range(0..3) {
            let mut changes = Vec::new();
            for _ in 0..1 + rng.random_range(0..3) {
                let node = nodes[rng.random_range(0..nodes.len() as u64) as usize].clone();
                let action = rng.random_range(0..10);
                let existing: Vec<String> = files
                    .iter()
                    .filter(|(_, (n, _))| *n == node)
                    .map(|(p, _)| p.clone())
                    .collect();
                if action < 2 && !existing.is_empty() {
                    // Delete a file once it is fully consumed (as node housekeeping
                    // would): its records stay applied. A file deleted before any pass
                    // saw it was never published, so it is not a case to test.
                    let victim =
                        existing[rng.random_range(0..existing.len() as u64) as usize].clone();
                    let (_, records) = &files[&victim];
                    let blob = blob_id(&batch(&node, records)).to_string();
                    let consumed = w.agg.store().consumed_files(&node).unwrap();
                    let pending = changes.iter().any(|(p, _)| *p == victim);
                    if consumed.get(&victim) == Some(&blob) && !pending {
                        files.remove(&victim);
                        changes.push((victim, None));
                    }
                    continue;
                }
                let target = if action < 4 && !existing.is_empty() {
                    // Append records to a file that may have been consumed already.
                    existing[rng.random_range(0..existing.len() as u64) as usize].clone()
                } else {
                    hour += 1;
                    path(&node, hour)
                };
                let entry = files
                    .entry(target.clone())
                    .or_insert_with(|| (node.clone(), Vec::new()));
                for _ in 0..1 + rng.random_range(0..3) {
                    next_key += 1;
                    let key = format!("k-{seed}-{next_key}");
                    let user = users[rng.random_range(0..users.len() as u64) as usize].clone();
                    let cost = 1 + rng.random_range(0..500) as i64;
                    published.insert(key.clone(), (user.clone(), cost));
                    entry.1.push((key, user, cost));
                }
                let body = batch(&entry.0, &entry.1);
                changes.push((target, Some(body)));
            }
            w.emu.commit(&changes, &format!("pass {pass}")).unwrap();
        }
        // Random faults on any endpoint for this pass.
        w.emu.clear_faults();
        let endpoints = ["branch", "trees", "blobs", "repo"];
        let kinds = [
            FaultKind::Status { status: 500 },
            FaultKind::Status { status: 503 },
            FaultKind::RateLimit {
                retry_after_secs: 0,
            },
            FaultKind::Truncate,
            FaultKind::Abort,
            FaultKind::NotJson,
            FaultKind::Delay { ms: 1100 },
        ];
        for _ in 0..rng.random_range(0..3) {
            let endpoint = endpoints[rng.random_range(0..endpoints.len() as u64) as usize];
            let kind = kinds[rng.random_range(0..kinds.len() as u64) as usize].clone();
            w.emu.add_fault(Fault {
                endpoint: Some(endpoint.to_string()),
                kind,
                times: Some(1 + rng.random_range(0..4) as u32),
                probability: Some(0.5),
                path_contains: None,
            });
        }
        // A pass may fail as a whole (head unreadable) or per node: both are fine here.
        let _ = w.agg.run_pass().await;
    }

    assert!(
        w.emu.stats().faults_injected > 0,
        "seed {seed}: no fault was injected, the run proves nothing"
    );
    // The forge recovers; the next pass catches up completely.
    w.emu.clear_faults();
    let last = w.agg.run_pass().await.unwrap();
    assert!(last.errors.is_empty(), "seed {seed}: {:?}", last.errors);

    let mut expected: BTreeMap<&str, i64> = users.iter().map(|u| (u.as_str(), 0)).collect();
    for (user, cost) in published.values() {
        *expected.get_mut(user.as_str()).unwrap() -= cost;
    }
    for user in &users {
        assert_eq!(
            balance(&w.agg, user),
            expected[user.as_str()],
            "seed {seed}: balance of {user}"
        );
    }
    let counts = w.agg.store().overview_counts().unwrap();
    assert_eq!(
        counts.consumed_records,
        published.len() as u64,
        "seed {seed}: every key applied exactly once"
    );
    assert_eq!(counts.rejected_items, 0, "seed {seed}");
    // And one more pass changes nothing.
    let again = w.agg.run_pass().await.unwrap();
    assert_eq!(again.records_applied, 0);
}

#[tokio::test]
async fn random_faults_and_commits_never_lose_or_double_apply_a_record() {
    for seed in 1..=6 {
        random_run(seed).await;
    }
}
