//! Request counts and wall times of one steady-state pass of the real
//! aggregator over a forge (batch blob reads, single reads, and a page cap of
//! 100), against the seed's per-node commits algorithm (kept here as the
//! reference), on the same emulated repo.
//!
//! The small-scale test runs with the suite and checks the cost formulas of
//! `docs/forge.md` exactly. The full-scale one (1,000 nodes × 720 files, one new
//! file per node) is `#[ignore]`d; `scripts/bench_forge.sh` runs it in release
//! mode (`BENCH_NODES`, `BENCH_FILES` override the scale, `BENCH_REFERENCE=0`
//! leaves the reference out).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use billing_server::aggregate::Aggregator;
use billing_server::source::Source;
use billing_server::source::forge::{ForgeOptions, ForgeSource};
use billing_server::store::Store;
use forge_emulator::{EmulatorConfig, EmulatorHandle, ForgeRepo};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const REPO: &str = "lhumina_code/hero_onboarding_billing";
const TOKEN: &str = "bench-token";
/// Nodes processed at once by the reference (the aggregator applies 4 nodes at a time).
const NODE_CONCURRENCY: usize = 4;
/// File downloads in flight per node for both algorithms.
const FILE_CONCURRENCY: usize = 8;

fn node_name(n: usize) -> String {
    format!("node-{n:04}")
}

/// `nodes/<node>/usage_2026-10-DD-HH.otoml` for hour `h` (0..=743).
fn usage_path(node: &str, h: usize) -> String {
    format!(
        "nodes/{node}/usage_2026-10-{:02}-{:02}.otoml",
        1 + h / 24,
        h % 24
    )
}

fn usage_body(node: &str, h: usize) -> String {
    format!(
        "version = 1\n\n[[records]]\nidempotency_key = \"{node}-{h}\"\nuser_sid = \"u-{}\"\nnode_name = \"{node}\"\ncost_cents = {}\n",
        h % 50,
        1 + h % 97
    )
}

/// Appends one commit to `main` of the bare repo at `path` with `git
/// fast-import` (fast for 720,000 files): hours `hours` for every node.
fn commit_hours(path: &Path, nodes: usize, hours: std::ops::Range<usize>, mark: usize) {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    {
        let mut out = std::io::BufWriter::new(child.stdin.take().unwrap());
        let message = format!("{} hours", hours.len());
        write!(
            out,
            "commit refs/heads/main\ncommitter bench <bench@localhost> {} +0000\ndata {}\n{message}\n",
            1_790_000_000 + mark,
            message.len() + 1
        )
        .unwrap();
        if mark > 1 {
            writeln!(out, "from refs/heads/main^0").unwrap();
        }
        for n in 0..nodes {
            let node = node_name(n);
            for h in hours.clone() {
                let body = usage_body(&node, h);
                write!(
                    out,
                    "M 100644 inline {}\ndata {}\n{body}\n",
                    usage_path(&node, h),
                    body.len()
                )
                .unwrap();
            }
        }
        writeln!(out).unwrap();
        out.flush().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "git fast-import failed");
}

fn git_rev(path: &Path, spec: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["rev-parse", spec])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What the reference remembers after a clean pass at commit 1: its
/// per-node `last_commit_sha`.
struct Consumed {
    node_commits: HashMap<String, String>,
}

fn consumed_state(repo: &ForgeRepo, commit: &str) -> Consumed {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).unwrap();
    let nodes = repo.entry_at(id, "nodes").unwrap().unwrap();
    let node_commits = repo
        .tree_entries(nodes.id, false)
        .unwrap()
        .into_iter()
        .map(|node| (node.path, commit.to_string()))
        .collect();
    Consumed { node_commits }
}

/// One forge the aggregator reads from in a scenario.
struct Scenario {
    name: &'static str,
    version: &'static str,
    tree_page_max: usize,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "batch reads (Forgejo 12+)",
        version: "12.0.0",
        tree_page_max: 1000,
    },
    Scenario {
        name: "single reads (before Forgejo 12)",
        version: forge_emulator::DEFAULT_VERSION,
        tree_page_max: 1000,
    },
    Scenario {
        name: "batch reads, page cap 100",
        version: "12.0.0",
        tree_page_max: 100,
    },
];

/// Requests and wall time of the real aggregator's pass over a forge, from a
/// ledger that consumed commit 1, to commit 2 (one new file per node); and of
/// the pass after it (nothing new).
struct Measured {
    requests: u64,
    time: Duration,
    nothing_new: u64,
}

async fn our_pass(
    scenario: &Scenario,
    repo_path: &Path,
    base_ledger: &Path,
    work: &Path,
    nodes: usize,
) -> Measured {
    let ledger = work.join(format!("ledger-{}.redb", scenario.tree_page_max));
    std::fs::copy(base_ledger, &ledger).unwrap();
    let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
    config.version = scenario.version.to_string();
    config.tree_page_max = scenario.tree_page_max;
    let emu = EmulatorHandle::start(config, ForgeRepo::open(repo_path).unwrap())
        .await
        .unwrap();
    let options = ForgeOptions {
        blob_concurrency: FILE_CONCURRENCY,
        ..ForgeOptions::default()
    };
    let source =
        ForgeSource::open_with(&emu.base_url(), REPO, "main", Some(TOKEN.into()), options).unwrap();
    let aggregator = Aggregator::new(
        Store::open(&ledger).unwrap(),
        Source::Forge(source),
        1 << 20,
    );
    emu.reset_stats();
    let started = Instant::now();
    let summary = aggregator.run_pass().await.unwrap();
    let time = started.elapsed();
    let requests = emu.stats().total;
    assert!(
        summary.errors.is_empty(),
        "{}: {:?}",
        scenario.name,
        summary.errors
    );
    assert_eq!(
        summary.files_read, nodes as u64,
        "{}: one new file per node",
        scenario.name
    );
    assert_eq!(summary.records_applied, nodes as u64, "{}", scenario.name);

    emu.reset_stats();
    let again = aggregator.run_pass().await.unwrap();
    assert_eq!(again.files_read, 0);
    let nothing_new = emu.stats().total;
    Measured {
        requests,
        time,
        nothing_new,
    }
}

/// The seed's algorithm: list `nodes/`; per node the last commit touching it;
/// for a changed node list its contents and GET every usage file.
async fn reference_pass(base: &str, state: Arc<Consumed>) -> usize {
    let client = reqwest::Client::new();
    let api = Arc::new(format!("{base}/api/v1/repos/{REPO}"));
    let get = |client: reqwest::Client, url: String| async move {
        let response = client
            .get(&url)
            .header("Authorization", format!("token {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.json::<Value>().await.unwrap()
    };
    let listing = get(client.clone(), format!("{api}/contents/nodes?ref=main")).await;
    let nodes: Vec<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "dir")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let permits = Arc::new(Semaphore::new(NODE_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for node in nodes {
        let (client, api, state, permits) =
            (client.clone(), api.clone(), state.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let commits = get(
                client.clone(),
                format!("{api}/commits?path=nodes/{node}&sha=main&limit=1"),
            )
            .await;
            let last = commits[0]["sha"].as_str().unwrap().to_string();
            if state.node_commits.get(&node) == Some(&last) {
                return 0;
            }
            let listing = get(
                client.clone(),
                format!("{api}/contents/nodes/{node}?ref=main"),
            )
            .await;
            let paths: Vec<String> = listing
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].as_str().unwrap().to_string())
                .filter(|p| p.ends_with(".otoml"))
                .collect();
            let files = Arc::new(Semaphore::new(FILE_CONCURRENCY));
            let mut downloads = JoinSet::new();
            for path in paths {
                let (client, api, files) = (client.clone(), api.clone(), files.clone());
                downloads.spawn(async move {
                    let _permit = files.acquire_owned().await.unwrap();
                    let file = get(client, format!("{api}/contents/{path}?ref=main")).await;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(file["content"].as_str().unwrap())
                        .unwrap();
                    assert!(!bytes.is_empty());
                });
            }
            let mut n = 0;
            while let Some(done) = downloads.join_next().await {
                done.unwrap();
                n += 1;
            }
            n
        });
    }
    let mut read = 0;
    while let Some(n) = tasks.join_next().await {
        read += n.unwrap();
    }
    read
}

struct Figures {
    nodes: usize,
    files: usize,
    ours: Vec<Measured>,
    reference: u64,
    reference_time: Duration,
    build_time: Duration,
    first_pass_time: Duration,
}

async fn measure(nodes: usize, files: usize, with_reference: bool) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.git");
    let built = Instant::now();
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&path)
        .status()
        .expect("git runs");
    assert!(status.success());
    commit_hours(&path, nodes, 0..files, 1);
    let build_time = built.elapsed();
    let first = git_rev(&path, "main");

    // The ledger after a clean pass at commit 1, read from the repo directly.
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    let started = Instant::now();
    {
        let aggregator = common::aggregator_with_limit(&path, &base, 1 << 20);
        let users: Vec<String> = (0..50).map(|u| format!("u-{u}")).collect();
        common::register(
            aggregator.store(),
            &users.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let summary = aggregator.run_pass().await.unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!(summary.records_applied, (nodes * files) as u64);
    }
    let first_pass_time = started.elapsed();
    commit_hours(&path, nodes, files..files + 1, 2);

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut ours = Vec::new();
    for scenario in &SCENARIOS {
        ours.push(our_pass(scenario, &path, &base.join("ledger.redb"), &work, nodes).await);
    }

    let (mut reference, mut reference_time) = (0, Duration::ZERO);
    if with_reference {
        let repo = ForgeRepo::open(&path).unwrap();
        let state = Arc::new(consumed_state(&repo, &first));
        let emu = EmulatorHandle::start(EmulatorConfig::new(REPO, Some(TOKEN)).unwrap(), repo)
            .await
            .unwrap();
        emu.reset_stats();
        let started = Instant::now();
        let read = reference_pass(&emu.base_url(), state).await;
        reference_time = started.elapsed();
        reference = emu.stats().total;
        assert_eq!(
            read,
            nodes * (files + 1),
            "the reference re-reads every file"
        );
    }
    Figures {
        nodes,
        files,
        ours,
        reference,
        reference_time,
        build_time,
        first_pass_time,
    }
}

/// `⌈a/b⌉`
fn pages(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// docs/forge.md's cost of the steady-state pass of `n` nodes of `f` files,
/// one new file each, root of one entry, page size `p`, read by a source that
/// has not asked the forge's version yet: `1 + ⌈R/P⌉ + ⌈N/P⌉ + 1 (version)
/// + Σ ⌈F_i/P⌉` plus, for the blobs, `⌈N/50⌉` batch calls or `N` single reads.
fn formula(n: u64, f: u64, p: u64, batches: bool) -> u64 {
    let blobs = if batches { pages(n, 50) } else { n };
    1 + pages(1, p) + pages(n, p) + 1 + n * pages(f + 1, p) + blobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_counts_follow_the_documented_cost_formulas() {
    let (nodes, files) = (60, 30);
    let f = measure(nodes, files, true).await;
    assert_documented_costs(&f, true);
    // Batch reads: 60 nodes of one new file each are read in 2 calls, not 60.
    assert_eq!(f.ours[0].requests, 1 + 1 + 1 + 1 + 60 + 2);
}

/// Every scenario costs what docs/forge.md says: one request when nothing is
/// new, [`formula`] for the steady-state pass, and for the reference (when
/// measured) `1 + N·(1 commits + 1 listing + F+1 files)`.
fn assert_documented_costs(f: &Figures, with_reference: bool) {
    let (n, files) = (f.nodes as u64, f.files as u64);
    for (scenario, measured) in SCENARIOS.iter().zip(&f.ours) {
        assert_eq!(measured.nothing_new, 1, "{}", scenario.name);
        let batches = scenario.version != forge_emulator::DEFAULT_VERSION;
        assert_eq!(
            measured.requests,
            formula(n, files, scenario.tree_page_max as u64, batches),
            "{}: docs/forge.md formula",
            scenario.name
        );
    }
    if with_reference {
        assert_eq!(f.reference, 1 + n * (2 + files + 1), "reference formula");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full-scale benchmark; run scripts/bench_forge.sh"]
async fn bench_steady_state_pass_full_scale() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let with_reference = std::env::var("BENCH_REFERENCE").map_or(true, |v| v != "0");
    let f = measure(
        env("BENCH_NODES", 1000),
        env("BENCH_FILES", 720),
        with_reference,
    )
    .await;
    let count = |n: u64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let mut report = format!(
        "| scenario ({} nodes × {} files, one new file per node) | requests | wall time |\n\
         |---|---:|---:|\n\
         | nothing new (ours) | {} | |\n",
        f.nodes, f.files, f.ours[0].nothing_new,
    );
    for (scenario, m) in SCENARIOS.iter().zip(&f.ours) {
        report += &format!(
            "| steady state, ours, {} | {} | {:.2} s |\n",
            scenario.name,
            count(m.requests),
            m.time.as_secs_f64()
        );
    }
    if with_reference {
        let best = &f.ours[0];
        report += &format!(
            "| steady state, reference (per-node commits + contents) | {} | {:.2} s |\n\
             | reference / ours (batch reads) | {:.0}× | {:.1}× |\n",
            count(f.reference),
            f.reference_time.as_secs_f64(),
            f.reference as f64 / best.requests as f64,
            f.reference_time.as_secs_f64() / best.time.as_secs_f64().max(1e-9),
        );
    }
    println!(
        "repo built with git fast-import in {:.1} s; first pass (git source, {} records) {:.1} s",
        f.build_time.as_secs_f64(),
        f.nodes * f.files,
        f.first_pass_time.as_secs_f64()
    );
    println!("{report}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &report).unwrap();
    }
    assert_documented_costs(&f, with_reference);
}
