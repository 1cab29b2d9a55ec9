//! Heads, node trees and their listings: what the source reads, and what it
//! costs in requests.

use super::*;

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
