//! Blob reads: bounded and ordered downloads, the forge's blob cap, Git LFS
//! pointers, and batch reads on Forgejo 12+.

use super::*;

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
