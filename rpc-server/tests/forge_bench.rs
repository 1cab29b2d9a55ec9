//! Request counts and wall times of one steady-state pass of the forge
//! source's request plan against the seed's per-node commits algorithm (kept
//! here as the reference), on the same emulated repo.
//!
//! The small-scale test runs with the suite and checks the cost formulas of
//! `docs/forge.md` exactly. The full-scale one (1,000 nodes × 720 files, one new
//! file per node) is `#[ignore]`d; `scripts/bench_forge.sh` runs it in release
//! mode (`BENCH_NODES`, `BENCH_FILES` override the scale).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use billing_server::source::forge::{ForgeOptions, ForgeSource};
use billing_server::source::{FileBody, NodeTree};
use forge_emulator::{EmulatorConfig, EmulatorHandle, ForgeRepo};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const REPO: &str = "lhumina_code/hero_onboarding_billing";
const TOKEN: &str = "bench-token";
/// Nodes processed at once by both algorithms (the aggregator reads 4 nodes at a time).
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

/// Builds the repo with `git fast-import` (fast for 720,000 files): commit 1 has
/// `files` hours per node, commit 2 adds one more hour to every node.
fn build_repo(path: &Path, nodes: usize, files: usize) -> (String, String) {
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(path)
        .status()
        .expect("git runs");
    assert!(status.success());
    let mut child = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    {
        let mut out = std::io::BufWriter::new(child.stdin.take().unwrap());
        let mut commit = |mark: usize, from: Option<usize>, hours: std::ops::Range<usize>| {
            let message = format!("{} hours", hours.len());
            write!(
                out,
                "commit refs/heads/main\nmark :{mark}\ncommitter bench <bench@localhost> {} +0000\ndata {}\n{message}\n",
                1_790_000_000 + mark,
                message.len() + 1
            )
            .unwrap();
            if let Some(from) = from {
                writeln!(out, "from :{from}").unwrap();
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
        };
        commit(1, None, 0..files);
        commit(2, Some(1), files..files + 1);
        out.flush().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "git fast-import failed");
    let rev = |spec: &str| {
        let out = Command::new("git")
            .arg("-C")
            .arg(path)
            .args(["rev-parse", spec])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    (rev("main~1"), rev("main"))
}

/// What the aggregator remembers after a clean pass at commit 1.
struct Consumed {
    head: String,
    trees: HashMap<String, String>,
    blobs: HashSet<String>,
    /// The reference's per-node `last_commit_sha`.
    node_commits: HashMap<String, String>,
}

fn consumed_state(repo: &ForgeRepo, commit: &str) -> Consumed {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).unwrap();
    let nodes = repo.entry_at(id, "nodes").unwrap().unwrap();
    let mut trees = HashMap::new();
    let mut blobs = HashSet::new();
    let mut node_commits = HashMap::new();
    for node in repo.tree_entries(nodes.id, false).unwrap() {
        trees.insert(node.path.clone(), node.id.to_string());
        node_commits.insert(node.path.clone(), commit.to_string());
        for file in repo.tree_entries(node.id, false).unwrap() {
            blobs.insert(file.id.to_string());
        }
    }
    Consumed {
        head: commit.to_string(),
        trees,
        blobs,
        node_commits,
    }
}

/// One pass of our plan, the way the aggregator drives the source. Returns the
/// number of files downloaded.
async fn our_pass(source: Arc<ForgeSource>, state: Arc<Consumed>) -> usize {
    let head = source.head().await.unwrap().unwrap();
    if head == state.head {
        return 0;
    }
    let nodes = source.nodes(&head).await.unwrap();
    let permits = Arc::new(Semaphore::new(NODE_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for node in nodes {
        if state.trees.get(&node.node_name) == Some(&node.tree_id) {
            continue;
        }
        let (source, state, permits) = (source.clone(), state.clone(), permits.clone());
        let head = head.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            read_new_files(&source, &state, &head, &node).await
        });
    }
    let mut read = 0;
    while let Some(n) = tasks.join_next().await {
        read += n.unwrap();
    }
    read
}

async fn read_new_files(
    source: &ForgeSource,
    state: &Consumed,
    head: &str,
    node: &NodeTree,
) -> usize {
    let files = source.files(node).await.unwrap();
    let new: Vec<_> = files
        .into_iter()
        .filter(|f| !state.blobs.contains(&f.blob_id))
        .collect();
    let bodies = source.read(head, &new, 1 << 20).await.unwrap();
    assert!(
        bodies
            .iter()
            .all(|b| matches!(b, FileBody::Data(d) if !d.is_empty()))
    );
    bodies.len()
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
    nothing_new: u64,
    ours: u64,
    ours_time: Duration,
    reference: u64,
    reference_time: Duration,
    build_time: Duration,
}

async fn measure(nodes: usize, files: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.git");
    let built = Instant::now();
    let (first, _second) = build_repo(&path, nodes, files);
    let build_time = built.elapsed();
    let repo = ForgeRepo::open(&path).unwrap();
    let state = Arc::new(consumed_state(&repo, &first));
    let emu = EmulatorHandle::start(EmulatorConfig::new(REPO, Some(TOKEN)).unwrap(), repo)
        .await
        .unwrap();
    let options = ForgeOptions {
        blob_concurrency: FILE_CONCURRENCY,
        ..ForgeOptions::default()
    };
    let source = Arc::new(
        ForgeSource::open_with(&emu.base_url(), REPO, "main", Some(TOKEN.into()), options).unwrap(),
    );

    // Nothing new: the head equals the stored head of the last clean pass.
    let idle = Arc::new(Consumed {
        head: source.head().await.unwrap().unwrap(),
        trees: HashMap::new(),
        blobs: HashSet::new(),
        node_commits: HashMap::new(),
    });
    emu.reset_stats();
    assert_eq!(our_pass(source.clone(), idle).await, 0);
    let nothing_new = emu.stats().total;

    emu.reset_stats();
    let started = Instant::now();
    let read = our_pass(source.clone(), state.clone()).await;
    let ours_time = started.elapsed();
    let ours = emu.stats().total;
    assert_eq!(read, nodes, "ours reads exactly the one new file per node");

    emu.reset_stats();
    let started = Instant::now();
    let read = reference_pass(&emu.base_url(), state).await;
    let reference_time = started.elapsed();
    let reference = emu.stats().total;
    assert_eq!(
        read,
        nodes * (files + 1),
        "the reference re-reads every file"
    );
    Figures {
        nodes,
        files,
        nothing_new,
        ours,
        ours_time,
        reference,
        reference_time,
        build_time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_counts_follow_the_documented_cost_formulas() {
    let (nodes, files) = (12, 30);
    let f = measure(nodes, files).await;
    let n = nodes as u64;
    assert_eq!(f.nothing_new, 1);
    // docs/forge.md: 3 + 2·N when every listing fits in one page.
    assert_eq!(f.ours, 3 + 2 * n);
    // 1 + N·(1 commits + 1 listing + F+1 files).
    assert_eq!(f.reference, 1 + n * (2 + files as u64 + 1));
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
    let f = measure(env("BENCH_NODES", 1000), env("BENCH_FILES", 720)).await;
    let ratio = f.reference as f64 / f.ours as f64;
    let time_ratio = f.reference_time.as_secs_f64() / f.ours_time.as_secs_f64().max(1e-9);
    let report = format!(
        "| scenario ({} nodes × {} files, one new file per node) | requests | wall time |\n\
         |---|---:|---:|\n\
         | nothing new (ours) | {} | |\n\
         | steady state, ours (tree ids + new blobs) | {} | {:.2} s |\n\
         | steady state, reference (per-node commits + contents) | {} | {:.2} s |\n\
         | reference / ours | {:.0}× | {:.1}× |\n",
        f.nodes,
        f.files,
        f.nothing_new,
        f.ours,
        f.ours_time.as_secs_f64(),
        f.reference,
        f.reference_time.as_secs_f64(),
        ratio,
        time_ratio,
    );
    println!(
        "repo built with git fast-import in {:.1} s",
        f.build_time.as_secs_f64()
    );
    println!("{report}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &report).unwrap();
    }
    assert_eq!(f.nothing_new, 1);
    let (n, files) = (f.nodes as u64, f.files as u64);
    if n <= 1000 && files < 1000 {
        assert_eq!(f.ours, 3 + 2 * n, "docs/forge.md formula");
    }
    assert_eq!(f.reference, 1 + n * (files + 3), "reference formula");
    // The target is for 720 files per node: the ratio is about (F + 3) / 2.
    assert!(
        files < 600 || f.ours * 300 <= f.reference,
        "ours ({}) must be at most 1/300 of the reference ({})",
        f.ours,
        f.reference
    );
}
