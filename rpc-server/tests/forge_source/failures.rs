//! Failures: bad bodies, server errors and rate limits (retried), a forge
//! that stays down, authentication and configuration errors.

use super::*;

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
