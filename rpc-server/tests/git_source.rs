//! `GitSource` against real repositories built with the simulator and the `git` CLI.

mod common;

use std::path::{Path, PathBuf};

use billing_server::simulate::{SimulateOptions, SimulateReport, simulate};
use billing_server::source::git::GitSource;
use billing_server::source::{FileBody, FileEntry, NodeTree, Source};
use common::git;

fn rev(dir: &Path, spec: &str) -> String {
    git(dir, &["rev-parse", spec]).trim().to_string()
}

fn sim(repo: &Path, hours: u32) -> SimulateReport {
    simulate(&SimulateOptions {
        repo: repo.to_path_buf(),
        nodes: 3,
        hours,
        records: 4,
        users: 5,
        seed: 7,
        branch: "main".into(),
    })
    .unwrap()
}

fn open(repo: &str, branch: &str, mirror: &Path) -> Source {
    Source::Git(GitSource::open(repo, branch, mirror).unwrap())
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A working repo with one commit of `files` (path, content).
fn working_repo(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for (path, body) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "usage"]);
    work
}

/// Checks nodes, files and bodies at `head` against what `git` says about `repo`.
async fn assert_matches_git(source: &Source, repo: &Path, head: &str) {
    let nodes = source.nodes(head).await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.node_name.as_str()).collect();
    assert_eq!(names, ["node-000", "node-001", "node-002"]);
    for node in &nodes {
        assert_eq!(
            node.tree_id,
            rev(repo, &format!("{head}:nodes/{}", node.node_name))
        );
        let files = source.files(node).await.unwrap();
        let listing = git(
            repo,
            &[
                "ls-tree",
                "--name-only",
                &format!("{head}:nodes/{}", node.node_name),
            ],
        );
        let expected: Vec<String> = listing
            .lines()
            .map(|f| format!("nodes/{}/{f}", node.node_name))
            .collect();
        let paths: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths, expected);
        let bodies = source.read(head, &files, 1 << 20).await.unwrap();
        assert_eq!(bodies.len(), files.len());
        for (file, body) in files.iter().zip(bodies) {
            assert_eq!(file.blob_id, rev(repo, &format!("{head}:{}", file.path)));
            let expected = git(repo, &["cat-file", "blob", &file.blob_id]);
            assert_eq!(body, FileBody::Data(expected.into_bytes()), "{}", file.path);
        }
    }
}

#[tokio::test]
async fn reads_a_bare_repo_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    let report = sim(&repo, 2);
    let mirror = dir.path().join("mirror");
    let source = open(repo.to_str().unwrap(), "main", &mirror);

    let head = source.head().await.unwrap().unwrap();
    assert_eq!(head, report.head);
    assert_matches_git(&source, &repo, &head).await;
    assert!(!mirror.exists(), "local repos are read in place");
    assert!(source.describe().contains(repo.to_str().unwrap()));
    assert!(source.describe().contains("main"));

    // An older commit is still readable by id.
    let older = rev(&repo, "main~1");
    let nodes = source.nodes(&older).await.unwrap();
    let files = source.files(&nodes[0]).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "nodes/node-000/usage_2026-01-01-00.otoml");

    // Nodes keep pushing (a new pack appears): the open source sees it.
    let later = sim(&repo, 1);
    let head = source.head().await.unwrap().unwrap();
    assert_eq!(head, later.head);
    assert_matches_git(&source, &repo, &head).await;
}

#[tokio::test]
async fn reads_a_working_repo_and_sees_new_commits() {
    let dir = tempfile::tempdir().unwrap();
    let work = working_repo(
        dir.path(),
        &[("nodes/node-a/usage_2026-01-01-00.otoml", b"records = []\n")],
    );
    let source = open(work.to_str().unwrap(), "main", &dir.path().join("m"));
    let first = source.head().await.unwrap().unwrap();
    assert_eq!(first, rev(&work, "HEAD"));

    std::fs::write(
        work.join("nodes/node-a/usage_2026-01-01-01.otoml"),
        "records = []\n",
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "next hour"]);
    let second = source.head().await.unwrap().unwrap();
    assert_ne!(second, first);
    let nodes = source.nodes(&second).await.unwrap();
    let files = source.files(&nodes[0]).await.unwrap();
    assert_eq!(files.len(), 2);
}

#[tokio::test]
async fn skips_invalid_node_names_and_non_usage_files() {
    let dir = tempfile::tempdir().unwrap();
    let ok: &[u8] = b"records = []\n";
    let work = working_repo(
        dir.path(),
        &[
            ("README.md", b"hello"),
            ("usage_2026-01-01-00.otoml", ok),
            ("nodes/README", b"a file directly under nodes/"),
            ("nodes/bad name/usage_2026-01-01-00.otoml", ok),
            ("nodes/n\u{00e9}ud/usage_2026-01-01-00.otoml", ok),
            ("nodes/node-b/usage_2026-01-01-00.otoml", ok),
            ("nodes/node-a/usage_2026-01-01-01.otoml", ok),
            ("nodes/node-a/usage_2026-01-01-00.otoml", ok),
            ("nodes/node-a/usage_2026-01-01.otoml", ok),
            ("nodes/node-a/usage_2026-01-01-00.toml", ok),
            ("nodes/node-a/notes.txt", b"x"),
            ("nodes/node-a/sub/usage_2026-01-01-00.otoml", ok),
            ("nodes/node-a/usage_2026-01-01-02.otoml/usage_x", ok),
        ],
    );
    let source = open(work.to_str().unwrap(), "main", &dir.path().join("m"));
    let head = source.head().await.unwrap().unwrap();
    let nodes = source.nodes(&head).await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.node_name.as_str()).collect();
    assert_eq!(names, ["node-a", "node-b"]);

    let files = source.files(&nodes[0]).await.unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "nodes/node-a/usage_2026-01-01-00.otoml",
            "nodes/node-a/usage_2026-01-01-01.otoml",
        ]
    );
}

#[tokio::test]
async fn no_nodes_directory_means_no_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let work = working_repo(dir.path(), &[("README.md", b"nothing yet")]);
    let source = open(work.to_str().unwrap(), "main", &dir.path().join("m"));
    let head = source.head().await.unwrap().unwrap();
    assert_eq!(source.nodes(&head).await.unwrap(), Vec::<NodeTree>::new());
}

#[tokio::test]
async fn oversize_blobs_are_not_read_and_bytes_are_returned_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'#'; 5000];
    let not_utf8: &[u8] = b"records = [\xff\xfe\x00]\n";
    let work = working_repo(
        dir.path(),
        &[
            ("nodes/n/usage_2026-01-01-00.otoml", &big),
            ("nodes/n/usage_2026-01-01-01.otoml", not_utf8),
            ("nodes/n/usage_2026-01-01-02.otoml", b""),
        ],
    );
    let source = open(work.to_str().unwrap(), "main", &dir.path().join("m"));
    let head = source.head().await.unwrap().unwrap();
    let nodes = source.nodes(&head).await.unwrap();
    let files = source.files(&nodes[0]).await.unwrap();
    assert_eq!(files.len(), 3);

    let bodies = source.read(&head, &files, 4999).await.unwrap();
    assert_eq!(
        bodies,
        [
            FileBody::TooLarge { size: 5000 },
            FileBody::Data(not_utf8.to_vec()),
            FileBody::Data(Vec::new()),
        ]
    );
    let bodies = source.read(&head, &files[..1], 5000).await.unwrap();
    assert_eq!(bodies, [FileBody::Data(big)]);
    assert_eq!(source.read(&head, &[], 10).await.unwrap(), []);
}

#[tokio::test]
async fn unknown_blob_ids_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    sim(&repo, 1);
    let source = open(repo.to_str().unwrap(), "main", &dir.path().join("m"));
    let missing = FileEntry {
        path: "nodes/node-000/usage_2030-01-01-00.otoml".into(),
        blob_id: "0123456789012345678901234567890123456789".into(),
        size: None,
    };
    let err = source.read("main", &[missing], 100).await.unwrap_err();
    assert!(err.message.contains("usage_2030-01-01-00"), "{err}");
    let err = source.nodes("not-hex").await.unwrap_err();
    assert!(err.message.contains("not-hex"), "{err}");
}

#[tokio::test]
async fn mirrors_a_file_url_and_follows_new_and_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin.git");
    let first = sim(&origin, 1);
    let mirror = dir.path().join("data").join("mirror");
    let source = open(&file_url(&origin), "main", &mirror);
    assert!(source.describe().contains("file://"));

    let head = source.head().await.unwrap().unwrap();
    assert_eq!(head, first.head);
    assert!(mirror.join("HEAD").exists(), "mirror is a bare repo");
    assert_matches_git(&source, &mirror, &head).await;

    let second = sim(&origin, 2);
    let head = source.head().await.unwrap().unwrap();
    assert_eq!(head, second.head);
    assert_matches_git(&source, &mirror, &head).await;

    // A force-push rewinding the branch is mirrored as is.
    git(&origin, &["update-ref", "refs/heads/main", &first.head]);
    assert_eq!(source.head().await.unwrap().unwrap(), first.head);

    // Re-opening an existing mirror works and fetches again.
    let third = sim(&origin, 1);
    let reopened = open(&file_url(&origin), "main", &mirror);
    assert_eq!(reopened.head().await.unwrap().unwrap(), third.head);
}

#[tokio::test]
async fn empty_repos_have_no_head_yet() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("empty.git");
    std::fs::create_dir(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);

    let local = open(bare.to_str().unwrap(), "main", &dir.path().join("m1"));
    assert_eq!(local.head().await.unwrap(), None);
    let mirrored = open(&file_url(&bare), "main", &dir.path().join("m2"));
    assert_eq!(mirrored.head().await.unwrap(), None);
}

#[tokio::test]
async fn a_missing_branch_is_an_error_listing_the_branches() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("billing.git");
    sim(&repo, 1);
    git(&repo, &["branch", "archive", "main"]);

    let local = open(repo.to_str().unwrap(), "release", &dir.path().join("m1"));
    let err = local.head().await.unwrap_err().message;
    assert!(err.contains("release"), "{err}");
    assert!(err.contains("main") && err.contains("archive"), "{err}");
    assert!(err.contains("--branch"), "{err}");

    let mirrored = open(&file_url(&repo), "release", &dir.path().join("m2"));
    let err = mirrored.head().await.unwrap_err().message;
    assert!(err.contains("release"), "{err}");
    assert!(err.contains("main") && err.contains("archive"), "{err}");
}

#[tokio::test]
async fn bad_repo_paths_and_urls_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");

    let missing = dir.path().join("nope");
    let err = GitSource::open(missing.to_str().unwrap(), "main", &m)
        .err()
        .unwrap()
        .message;
    assert!(
        err.contains("does not exist") && err.contains("nope"),
        "{err}"
    );

    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("file.txt"), "x").unwrap();
    let err = GitSource::open(plain.to_str().unwrap(), "main", &m)
        .err()
        .unwrap()
        .message;
    assert!(err.contains("not a readable git repository"), "{err}");
    assert!(err.contains("plain"), "{err}");

    let err = GitSource::open(plain.to_str().unwrap(), "bad..name", &m)
        .err()
        .unwrap()
        .message;
    assert!(
        err.contains("bad..name") && err.contains("--branch"),
        "{err}"
    );

    // A URL that is not a repo fails at fetch time, naming the URL.
    let url = file_url(&plain);
    let source = open(&url, "main", &dir.path().join("m3"));
    let err = source.head().await.unwrap_err().message;
    assert!(err.contains(&url) && err.contains("fetching"), "{err}");
}

#[tokio::test]
async fn credentials_in_urls_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(
        "http://alice:hunter22@127.0.0.1:9/billing.git",
        "main",
        &dir.path().join("m"),
    );
    let described = source.describe();
    assert!(!described.contains("hunter22"), "{described}");
    assert!(!described.contains("alice"), "{described}");
    assert!(described.contains("127.0.0.1:9/billing.git"), "{described}");
    // Nothing listens on port 9: the fetch fails, and the error is redacted too.
    let err = source.head().await.unwrap_err().message;
    assert!(!err.contains("hunter22"), "{err}");
    assert!(err.contains("fetching"), "{err}");
}
