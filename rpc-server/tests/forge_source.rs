//! The forge source against the emulator: a real HTTP server on loopback over
//! a real git repository in a temp dir.

use std::time::{Duration, Instant};

use billing_server::aggregate::Aggregator;
use billing_server::source::forge::{ForgeOptions, ForgeSource};
use billing_server::source::{FileBody, NodeTree, Source};
use billing_server::store::Store;
use forge_emulator::{EmulatorConfig, EmulatorHandle, Fault, FaultKind, ForgeRepo};
use serde_json::json;

const REPO: &str = "lhumina_code/hero_onboarding_billing";
const TOKEN: &str = "s3cret-forge-token-value";

struct Forge {
    _dir: tempfile::TempDir,
    emu: EmulatorHandle,
}

async fn forge_with(tree_page_max: usize) -> Forge {
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
    config.tree_page_max = tree_page_max;
    let emu = EmulatorHandle::start(config, repo).await.unwrap();
    Forge { _dir: dir, emu }
}

async fn forge() -> Forge {
    forge_with(1000).await
}

fn fast() -> ForgeOptions {
    ForgeOptions {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        max_attempts: 4,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        retry_after_max: Duration::from_secs(5),
        blob_concurrency: 4,
        tree_page_size: 1000,
    }
}

fn source(f: &Forge) -> ForgeSource {
    source_with(f, Some(TOKEN), fast())
}

fn source_with(f: &Forge, token: Option<&str>, options: ForgeOptions) -> ForgeSource {
    ForgeSource::open_with(
        &f.emu.base_url(),
        REPO,
        "main",
        token.map(str::to_string),
        options,
    )
    .unwrap()
}

fn file(node: &str, hour: u32, body: &str) -> (String, Option<Vec<u8>>) {
    (
        format!("nodes/{node}/usage_2026-11-27-{hour:02}.otoml"),
        Some(body.as_bytes().to_vec()),
    )
}

fn seed(f: &Forge) -> String {
    f.emu
        .commit(
            &[
                file("node-a", 10, "a10"),
                file("node-a", 11, "a11"),
                file("node-b", 10, "b10"),
                ("nodes/node-b/notes.txt".into(), Some(b"not usage".to_vec())),
                (
                    "nodes/bad name/usage_2026-11-27-10.otoml".into(),
                    Some(b"x".to_vec()),
                ),
                ("README.md".into(), Some(b"readme".to_vec())),
            ],
            "seed",
        )
        .unwrap()
        .to_string()
}

fn data(body: &FileBody) -> &[u8] {
    match body {
        FileBody::Data(d) => d,
        FileBody::TooLarge { size } => panic!("unexpected TooLarge({size})"),
    }
}

#[tokio::test]
async fn head_nodes_files_and_read_answer_from_the_forge() {
    let f = forge().await;
    let commit = seed(&f);
    let s = source(&f);
    assert_eq!(s.head().await.unwrap().as_deref(), Some(commit.as_str()));
    let nodes = s.nodes(&commit).await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.node_name.as_str()).collect();
    assert_eq!(
        names,
        ["node-a", "node-b"],
        "invalid `bad name` is left out"
    );
    let files = s.files(&nodes[0]).await.unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "nodes/node-a/usage_2026-11-27-10.otoml",
            "nodes/node-a/usage_2026-11-27-11.otoml"
        ]
    );
    assert_eq!(files[0].size, Some(3));
    let b_files = s.files(&nodes[1]).await.unwrap();
    assert_eq!(b_files.len(), 1, "notes.txt is not a usage file");
    let bodies = s.read(&commit, &files, 1024).await.unwrap();
    assert_eq!(data(&bodies[0]), b"a10");
    assert_eq!(data(&bodies[1]), b"a11");
    // Over the limit: not downloaded at all.
    f.emu.reset_stats();
    let bodies = s.read(&commit, &files, 2).await.unwrap();
    assert_eq!(bodies, vec![FileBody::TooLarge { size: 3 }; 2]);
    assert_eq!(f.emu.stats().total, 0);
    assert!(!s.describe().contains(TOKEN));
    assert!(s.describe().contains(REPO));
}

#[tokio::test]
async fn nothing_new_costs_exactly_one_request() {
    let f = forge().await;
    seed(&f);
    let s = source(&f);
    f.emu.reset_stats();
    s.head().await.unwrap();
    let stats = f.emu.stats();
    assert_eq!(stats.total, 1, "{stats:?}");
    assert_eq!(stats.requests.get("branch"), Some(&1));
}

#[tokio::test]
async fn unchanged_nodes_keep_their_tree_id_and_only_new_blobs_differ() {
    let f = forge().await;
    let first = seed(&f);
    let s = source(&f);
    let before = s.nodes(&first).await.unwrap();
    let second = f
        .emu
        .commit(&[file("node-a", 12, "a12")], "hour 12")
        .unwrap()
        .to_string();
    let after = s.nodes(&second).await.unwrap();
    assert_ne!(before[0].tree_id, after[0].tree_id, "node-a changed");
    assert_eq!(before[1].tree_id, after[1].tree_id, "node-b did not");
    let old: Vec<String> = s
        .files(&before[0])
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.blob_id)
        .collect();
    let new = s.files(&after[0]).await.unwrap();
    let fresh: Vec<_> = new.iter().filter(|f| !old.contains(&f.blob_id)).collect();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].path, "nodes/node-a/usage_2026-11-27-12.otoml");
}

#[tokio::test]
async fn tree_listings_follow_every_page() {
    let f = forge_with(2).await;
    let mut changes = Vec::new();
    for n in 0..5 {
        for h in 0..5 {
            changes.push(file(&format!("node-{n}"), h, &format!("{n}-{h}")));
        }
    }
    let head = f.emu.commit(&changes, "many").unwrap().to_string();
    let s = source(&f);
    f.emu.reset_stats();
    let nodes = s.nodes(&head).await.unwrap();
    assert_eq!(nodes.len(), 5);
    // Root: 1 entry (1 page); nodes/: 5 entries in pages of 2 (3 pages).
    assert_eq!(f.emu.stats().requests.get("trees"), Some(&4));
    let files = s.files(&nodes[4]).await.unwrap();
    assert_eq!(files.len(), 5);
    assert_eq!(files[4].path, "nodes/node-4/usage_2026-11-27-04.otoml");
    let bodies = s.read(&head, &files, 100).await.unwrap();
    assert_eq!(data(&bodies[3]), b"4-3");
}

#[tokio::test]
async fn a_truncated_or_non_json_body_is_an_error_never_an_empty_listing() {
    let f = forge().await;
    let head = seed(&f);
    let s = source(&f);
    for kind in [FaultKind::Truncate, FaultKind::NotJson] {
        f.emu.add_fault(Fault::new("trees", kind.clone(), 1));
        let err = s.nodes(&head).await.unwrap_err().to_string();
        assert!(err.contains("not the expected JSON"), "{kind:?}: {err}");
        assert!(err.contains(REPO), "{err}");
        // The fault is gone: the next call (the next pass) succeeds.
        assert_eq!(s.nodes(&head).await.unwrap().len(), 2);
    }
    let nodes = s.nodes(&head).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    f.emu.add_fault(Fault::new("blobs", FaultKind::Truncate, 1));
    let err = s.read(&head, &files, 1024).await.unwrap_err().to_string();
    assert!(err.contains("not the expected JSON"), "{err}");
    assert!(err.contains("nodes/node-a/usage_2026-11-27-1"), "{err}");
    assert_eq!(s.read(&head, &files, 1024).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_incomplete_tree_listing_is_an_error() {
    let f = forge_with(2).await;
    let changes: Vec<_> = (0..5).map(|h| file("node-a", h, "x")).collect();
    let head = f.emu.commit(&changes, "five").unwrap().to_string();
    let s = source(&f);
    let node = s.nodes(&head).await.unwrap().remove(0);
    f.emu
        .add_fault(Fault::new("trees", FaultKind::DropEntry, 1));
    let err = s.files(&node).await.unwrap_err().to_string();
    assert!(
        err.contains("of 5 entries") || err.contains("forge says"),
        "{err}"
    );
    f.emu
        .add_fault(Fault::new("trees", FaultKind::EmptyTruncated, 1));
    let err = s.files(&node).await.unwrap_err().to_string();
    assert!(err.contains("marked truncated"), "{err}");
    assert_eq!(s.files(&node).await.unwrap().len(), 5);
}

#[tokio::test]
async fn server_errors_rate_limits_and_dropped_connections_are_retried() {
    let f = forge().await;
    let head = seed(&f);
    let s = source(&f);
    f.emu
        .add_fault(Fault::new("branch", FaultKind::Status { status: 503 }, 2));
    assert_eq!(s.head().await.unwrap().as_deref(), Some(head.as_str()));
    f.emu
        .add_fault(Fault::new("trees", FaultKind::Status { status: 502 }, 1));
    f.emu.add_fault(Fault::new("trees", FaultKind::Abort, 1));
    assert_eq!(s.nodes(&head).await.unwrap().len(), 2);
    // What the metrics serve: answers by status class, dropped connections, retries.
    let (classes, retries) = s.request_stats().snapshot();
    let class = |c: &str| classes.iter().find(|(k, _)| *k == c).unwrap().1;
    assert_eq!((class("5xx"), class("error"), retries), (3, 1, 4));
    assert!(class("2xx") >= 2, "{classes:?}");
    assert_eq!(class("4xx"), 0, "{classes:?}");

    f.emu.reset_stats();
    f.emu.add_fault(Fault::new(
        "branch",
        FaultKind::RateLimit {
            retry_after_secs: 1,
        },
        1,
    ));
    let started = Instant::now();
    assert!(s.head().await.is_ok());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(f.emu.stats().requests.get("branch"), Some(&2));
    // A proxy's Retry-After may be an HTTP date (whole seconds: 2 s from now is
    // at least 1 s away).
    f.emu.add_fault(Fault::new(
        "branch",
        FaultKind::RateLimitDate {
            retry_after_secs: 2,
        },
        1,
    ));
    let started = Instant::now();
    assert!(s.head().await.is_ok());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "a Retry-After date was not honoured: {:?}",
        started.elapsed()
    );

    // A slow answer hits the timeout and is retried.
    let options = ForgeOptions {
        request_timeout: Duration::from_millis(300),
        ..fast()
    };
    let slow = source_with(&f, Some(TOKEN), options);
    f.emu
        .add_fault(Fault::new("branch", FaultKind::Delay { ms: 1500 }, 1));
    assert!(slow.head().await.is_ok());
}

#[tokio::test]
async fn a_forge_that_stays_down_fails_with_the_attempt_count() {
    let f = forge().await;
    seed(&f);
    let s = source(&f);
    f.emu.reset_stats();
    f.emu.add_fault(Fault {
        endpoint: Some("branch".into()),
        kind: FaultKind::Status { status: 500 },
        times: None,
        probability: None,
        path_contains: None,
    });
    let err = s.head().await.unwrap_err().to_string();
    assert!(err.contains("after 4 attempts"), "{err}");
    assert!(err.contains("500"), "{err}");
    assert_eq!(f.emu.stats().requests.get("branch"), Some(&4));
    // A Retry-After longer than allowed fails at once rather than stalling the pass.
    f.emu.clear_faults();
    f.emu.add_fault(Fault::new(
        "branch",
        FaultKind::RateLimit {
            retry_after_secs: 3600,
        },
        1,
    ));
    let err = s.head().await.unwrap_err().to_string();
    assert!(err.contains("Retry-After"), "{err}");
}

#[tokio::test]
async fn auth_failures_name_the_repo_and_what_to_check() {
    let f = forge().await;
    seed(&f);
    let wrong = source_with(&f, Some("wrong-token"), fast());
    let err = wrong.head().await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(err.contains(REPO), "{err}");
    assert!(err.contains("BILLING_FORGE_TOKEN"), "{err}");
    assert!(!err.contains("wrong-token"), "token leaked: {err}");

    let anonymous = source_with(&f, None, fast());
    let err = anonymous.head().await.unwrap_err().to_string();
    assert!(err.contains("no token is configured"), "{err}");

    let s = source(&f);
    f.emu
        .add_fault(Fault::new("branch", FaultKind::Status { status: 403 }, 1));
    let err = s.head().await.unwrap_err().to_string();
    assert!(err.contains("403") && err.contains("read"), "{err}");
    assert!(!err.contains(TOKEN));
}

#[tokio::test]
async fn missing_repo_branch_and_empty_repo() {
    let f = forge().await;
    // Nothing pushed yet: no head, no error.
    let s = source(&f);
    assert_eq!(s.head().await.unwrap(), None);
    seed(&f);
    let other_repo = ForgeSource::open_with(
        &f.emu.base_url(),
        "lhumina_code/nope",
        "main",
        Some(TOKEN.into()),
        fast(),
    )
    .unwrap();
    let err = other_repo.head().await.unwrap_err().to_string();
    assert!(
        err.contains("lhumina_code/nope") && err.contains("not found"),
        "{err}"
    );
    let other_branch = ForgeSource::open_with(
        &f.emu.base_url(),
        REPO,
        "develop",
        Some(TOKEN.into()),
        fast(),
    )
    .unwrap();
    let err = other_branch.head().await.unwrap_err().to_string();
    assert!(err.contains("develop") && err.contains("--branch"), "{err}");
    assert!(err.contains("default branch is main"), "{err}");
}

#[tokio::test]
async fn force_push_changed_and_deleted_files() {
    let f = forge().await;
    let first = seed(&f);
    let s = source(&f);
    let second = f
        .emu
        .commit(
            &[
                file("node-a", 10, "a10 rewritten"),
                ("nodes/node-a/usage_2026-11-27-11.otoml".into(), None),
            ],
            "rewrite and delete",
        )
        .unwrap();
    assert_eq!(s.head().await.unwrap(), Some(second.to_string()));
    let nodes = s.nodes(&second.to_string()).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    assert_eq!(files.len(), 1, "the deleted file is gone");
    assert_eq!(
        data(&s.read(&second.to_string(), &files, 100).await.unwrap()[0]),
        b"a10 rewritten"
    );

    // Force-push back to the first commit: the head moves backwards.
    let first_id = gix::ObjectId::from_hex(first.as_bytes()).unwrap();
    f.emu.repo().force_branch("main", first_id).unwrap();
    assert_eq!(s.head().await.unwrap(), Some(first.clone()));
    let nodes = s.nodes(&first).await.unwrap();
    assert_eq!(s.files(&nodes[0]).await.unwrap().len(), 2);

    // An object the forge no longer has: a clear error, not an empty answer.
    let gone = NodeTree {
        node_name: "node-a".into(),
        tree_id: "0123456789012345678901234567890123456789".into(),
    };
    let err = s.files(&gone).await.unwrap_err().to_string();
    assert!(
        err.contains("not found") && err.contains("force-pushed"),
        "{err}"
    );
}

#[tokio::test]
async fn blob_downloads_are_bounded_and_keep_file_order() {
    let f = forge().await;
    let changes: Vec<_> = (0..24)
        .map(|h| file("node-a", h, &format!("hour {h}")))
        .collect();
    let head = f.emu.commit(&changes, "a day").unwrap().to_string();
    let s = source(&f);
    let nodes = s.nodes(&head).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    // Slow every blob: with 4 in flight, 24 blobs take >= 6 rounds (0.6 s); one
    // at a time would take 2.4 s.
    f.emu.add_fault(Fault {
        endpoint: Some("blobs".into()),
        kind: FaultKind::Delay { ms: 100 },
        times: None,
        probability: None,
        path_contains: None,
    });
    let started = Instant::now();
    let bodies = s.read(&head, &files, 100).await.unwrap();
    let elapsed = started.elapsed();
    for (h, body) in bodies.iter().enumerate() {
        assert_eq!(data(body), format!("hour {h}").as_bytes());
    }
    assert!(
        elapsed >= Duration::from_millis(590),
        "not bounded: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2000),
        "not concurrent: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_failed_blob_download_is_reported_not_the_cancelled_ones() {
    let f = forge().await;
    let changes: Vec<_> = (0..8)
        .map(|h| file("node-a", h, &format!("hour {h}")))
        .collect();
    let head = f.emu.commit(&changes, "eight hours").unwrap().to_string();
    let s = source(&f);
    let nodes = s.nodes(&head).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    let cases = [
        (
            FaultKind::Status { status: 404 },
            "was not found; the branch was probably force-pushed",
        ),
        (FaultKind::Truncate, "not the expected JSON"),
    ];
    for (kind, expected) in cases {
        f.emu.clear_faults();
        // One blob fails at once; the others are still in flight when it does,
        // so they are cancelled: their cancellation is not the error to show.
        f.emu
            .add_fault(Fault::new("blobs", kind.clone(), 1).on_path(&files[2].blob_id));
        f.emu.add_fault(Fault {
            endpoint: Some("blobs".into()),
            kind: FaultKind::Delay { ms: 400 },
            times: None,
            probability: None,
            path_contains: None,
        });
        let err = s.read(&head, &files, 100).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{kind:?}: {err}");
        assert!(err.contains(&files[2].path), "{kind:?}: {err}");
        assert!(err.contains(&files[2].blob_id), "{kind:?}: {err}");
        assert!(!err.contains("cancelled"), "{kind:?}: {err}");
    }
    f.emu.clear_faults();
    assert_eq!(s.read(&head, &files, 100).await.unwrap().len(), 8);
}

#[tokio::test]
async fn a_blob_in_an_unknown_encoding_is_named_plainly() {
    let f = forge().await;
    let head = seed(&f);
    let s = source(&f);
    let nodes = s.nodes(&head).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    let cases = [
        (
            json!("utf8"),
            "answered with encoding utf8, expected base64",
        ),
        (json!(null), "answered with no encoding, expected base64"),
    ];
    for (value, expected) in cases {
        let kind = FaultKind::SetField {
            field: "encoding".into(),
            value,
        };
        f.emu.add_fault(Fault::new("blobs", kind, 1));
        let err = s
            .read(&head, &files[..1], 1024)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(err.contains(&files[0].path), "{err}");
        assert!(!err.contains("Some("), "{err}");
    }
    assert_eq!(
        data(&s.read(&head, &files[..1], 1024).await.unwrap()[0]),
        b"a10"
    );
}

#[test]
fn open_rejects_bad_configuration_clearly() {
    let err = ForgeSource::open("ftp://forge", REPO, "main", None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--forge-url"), "{err}");
    let err = ForgeSource::open("https://forge.example", "just-a-name", "main", None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("OWNER/NAME"), "{err}");
    let err = ForgeSource::open("https://forge.example", REPO, "main", Some("  \n".into()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("token is empty"), "{err}");
    let s = ForgeSource::open(
        "https://user:pw@forge.example/api/v1/",
        REPO,
        "main",
        Some(TOKEN.into()),
    )
    .unwrap();
    let shown = s.describe();
    assert!(!shown.contains("pw") && !shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("https://forge.example"), "{shown}");
}

/// Forgejo sends a blob over its `[api] DEFAULT_MAX_BLOB_SIZE` (10 MiB by
/// default, as in the emulator) with `"content": ""` and its real size. Such a
/// file is read as the file at the head commit, checked against its blob id,
/// and every record of it applies.
#[tokio::test]
async fn a_file_over_the_forges_blob_cap_is_read_whole_and_applied() {
    let f = forge().await;
    // About 12 MiB of valid records of one user, each padded to about 1 KiB.
    let pad = "x".repeat(1000);
    let mut body = String::from("version = 1\n");
    let mut records = 0i64;
    while body.len() < 12 * 1024 * 1024 {
        body += &format!(
            "\n[[records]]\nidempotency_key = \"big-{records:06}\"\nuser_sid = \"u-big\"\n\
             node_name = \"node-a\"\ncost_cents = 1\nunit = \"{pad}\"\n"
        );
        records += 1;
    }
    let head = f
        .emu
        .commit(&[file("node-a", 10, &body)], "a 12 MiB hour")
        .unwrap()
        .to_string();
    let s = source(&f);
    let nodes = s.nodes(&head).await.unwrap();
    let files = s.files(&nodes[0]).await.unwrap();
    f.emu.reset_stats();
    let bodies = s.read(&head, &files, 16 << 20).await.unwrap();
    assert!(
        data(&bodies[0]) == body.as_bytes(),
        "the whole file, byte for byte"
    );
    let stats = f.emu.stats();
    assert_eq!(stats.requests.get("blobs"), Some(&1), "{stats:?}");
    assert_eq!(stats.requests.get("raw"), Some(&1), "{stats:?}");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
    store
        .register_user(
            &billing_api::RegisterUser {
                user_sid: "u-big".into(),
                display_name: None,
                email: None,
            },
            1,
        )
        .unwrap();
    let agg = Aggregator::new(store, Source::Forge(source(&f)), 16 << 20);
    let summary = agg.run_pass().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.records_applied, records as u64);
    let balance = agg.store().get_balance("u-big").unwrap();
    assert_eq!(balance.credit_balance_cents, -records);
}

/// A public repository is read without a token (as Forgejo allows); a private
/// one answers 404 to anonymous requests, and the error says to set a token.
#[tokio::test]
async fn a_public_repository_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
    config.public = true;
    let f = Forge {
        emu: EmulatorHandle::start(config, repo).await.unwrap(),
        _dir: dir,
    };
    let head = seed(&f);
    let anonymous = source_with(&f, None, fast());
    assert_eq!(anonymous.head().await.unwrap(), Some(head.clone()));
    let nodes = anonymous.nodes(&head).await.unwrap();
    let files = anonymous.files(&nodes[0]).await.unwrap();
    let bodies = anonymous.read(&head, &files, 1024).await.unwrap();
    assert_eq!(data(&bodies[0]), b"a10");

    let private = forge().await;
    seed(&private);
    let err = source_with(&private, None, fast())
        .head()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("404") && err.contains("no token is configured"),
        "{err}"
    );
}

/// A usage file stored with Git LFS comes back from the forge as its pointer
/// text: it is rejected as `lfs_pointer` with what to do, not as bad TOML, and
/// the node's other files apply.
#[tokio::test]
async fn a_git_lfs_pointer_is_rejected_as_such() {
    let f = forge().await;
    let pointer = "version https://git-lfs.github.com/spec/v1\n\
                   oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
                   size 12345\n";
    let good = "version = 1\n[[records]]\nidempotency_key = \"k1\"\nuser_sid = \"u1\"\n\
                node_name = \"node-a\"\ncost_cents = 5\n";
    f.emu
        .commit(
            &[file("node-a", 10, pointer), file("node-a", 11, good)],
            "one file through LFS",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ledger.redb")).unwrap();
    store
        .register_user(
            &billing_api::RegisterUser {
                user_sid: "u1".into(),
                display_name: None,
                email: None,
            },
            1,
        )
        .unwrap();
    let agg = Aggregator::new(store, Source::Forge(source(&f)), 1 << 20);
    let summary = agg.run_pass().await.unwrap();
    assert_eq!((summary.records_applied, summary.files_rejected), (1, 1));
    let rejected = agg.store().list_rejected(None, 10).unwrap().items;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, billing_api::RejectReason::LfsPointer);
    assert_eq!(
        rejected[0].file_path,
        "nodes/node-a/usage_2026-11-27-10.otoml"
    );
    assert!(
        rejected[0].detail.contains("Git LFS pointer"),
        "{}",
        rejected[0].detail
    );
    assert!(
        rejected[0].detail.contains(".gitattributes"),
        "{}",
        rejected[0].detail
    );
}

/// Forgejo 12 and later read up to 50 blobs a call (`git/blobs?shas=`); the
/// source asks the version once and uses it, and an older forge gets one read
/// per blob. One unknown sha fails a batch call whole: its files are then read
/// one by one, which names the file.
#[tokio::test]
async fn new_blobs_are_read_in_batches_where_the_forge_serves_them() {
    for (version, batched) in [
        ("12.0.1+gitea-1.22.0", true),
        ("11.0.3+gitea-1.22.0", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
        let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
        config.version = version.into();
        let f = Forge {
            emu: EmulatorHandle::start(config, repo).await.unwrap(),
            _dir: dir,
        };
        let changes: Vec<_> = (0..120)
            .map(|h| {
                (
                    format!(
                        "nodes/node-a/usage_2026-11-{:02}-{:02}.otoml",
                        1 + h / 24,
                        h % 24
                    ),
                    Some(format!("hour {h}").into_bytes()),
                )
            })
            .collect();
        let head = f.emu.commit(&changes, "five days").unwrap().to_string();
        let s = source(&f);
        let nodes = s.nodes(&head).await.unwrap();
        let files = s.files(&nodes[0]).await.unwrap();
        f.emu.reset_stats();
        let bodies = s.read(&head, &files, 100).await.unwrap();
        for (h, body) in bodies.iter().enumerate() {
            assert_eq!(data(body), format!("hour {h}").as_bytes(), "{version}");
        }
        let stats = f.emu.stats();
        let count = |e: &str| stats.requests.get(e).copied().unwrap_or(0);
        assert_eq!(count("version"), 1, "{version}: {stats:?}");
        if batched {
            assert_eq!((count("blobs_batch"), count("blobs")), (3, 0), "{stats:?}");
        } else {
            assert_eq!(
                (count("blobs_batch"), count("blobs")),
                (0, 120),
                "{stats:?}"
            );
        }
        // The version is asked once per source.
        f.emu.reset_stats();
        s.read(&head, &files[..10], 100).await.unwrap();
        assert_eq!(f.emu.stats().requests.get("version"), None);

        if batched {
            let mut with_unknown = files[..5].to_vec();
            with_unknown[3].blob_id = "0123456789012345678901234567890123456789".into();
            f.emu.reset_stats();
            let err = s
                .read(&head, &with_unknown, 100)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(&with_unknown[3].path), "{err}");
            assert!(err.contains("force-pushed"), "{err}");
            let stats = f.emu.stats();
            assert_eq!(stats.requests.get("blobs_batch"), Some(&1), "{stats:?}");
        }
    }
}

/// A forge whose version claims batch reads but that has no batch endpoint
/// (404 or 405 on `git/blobs?shas=`): the files are read one by one, and the
/// endpoint is not tried again by that source.
#[tokio::test]
async fn a_missing_batch_endpoint_is_tried_once() {
    for status in [404, 405] {
        let dir = tempfile::tempdir().unwrap();
        let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
        let mut config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
        config.version = "12.0.0".into();
        let f = Forge {
            emu: EmulatorHandle::start(config, repo).await.unwrap(),
            _dir: dir,
        };
        f.emu.add_fault(Fault {
            times: None,
            ..Fault::new("blobs_batch", FaultKind::Status { status }, 0)
        });
        let head = seed(&f);
        let s = source(&f);
        let nodes = s.nodes(&head).await.unwrap();
        let files = s.files(&nodes[0]).await.unwrap();
        assert!(files.len() > 1);
        for round in 0..2 {
            f.emu.reset_stats();
            let bodies = s.read(&head, &files, 1 << 20).await.unwrap();
            assert_eq!(bodies.len(), files.len());
            let stats = f.emu.stats();
            let count = |e: &str| stats.requests.get(e).copied().unwrap_or(0);
            let tried = if round == 0 { 1 } else { 0 };
            assert_eq!(
                (count("blobs_batch"), count("blobs")),
                (tried, files.len() as u64),
                "{status}, round {round}: {stats:?}"
            );
        }
    }
}
