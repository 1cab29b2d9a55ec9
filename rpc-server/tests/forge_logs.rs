//! What the forge source logs, captured from a real run against the emulator.
//!
//! Alone in its own test binary on purpose: a subscriber installed with
//! `set_default` only sees events whose callsites it was asked about, and a
//! test running in parallel on another thread (no subscriber there) that hits a
//! callsite first caches "never" for it, so the logs here would come out empty.

use std::time::Duration;

use billing_server::source::forge::{ForgeOptions, ForgeSource};
use forge_emulator::{EmulatorConfig, EmulatorHandle, Fault, FaultKind, ForgeRepo};

const REPO: &str = "lhumina_code/hero_onboarding_billing";
const TOKEN: &str = "s3cret-forge-token-value";

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn source(emu: &EmulatorHandle, token: &str) -> ForgeSource {
    let options = ForgeOptions {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        max_attempts: 4,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        ..ForgeOptions::default()
    };
    ForgeSource::open_with(
        &emu.base_url(),
        REPO,
        "main",
        Some(token.to_string()),
        options,
    )
    .unwrap()
}

#[tokio::test]
async fn the_token_never_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The default test runtime is single-threaded: everything below logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let config = EmulatorConfig::new(REPO, Some(TOKEN)).unwrap();
    let emu = EmulatorHandle::start(config, repo).await.unwrap();
    emu.commit(
        &[(
            "nodes/node-a/usage_2026-11-27-10.otoml".into(),
            Some(b"a10".to_vec()),
        )],
        "seed",
    )
    .unwrap();
    let s = source(&emu, TOKEN);
    emu.add_fault(Fault::new("branch", FaultKind::Status { status: 503 }, 1));
    s.head().await.unwrap();
    let wrong = source(&emu, "another-secret-token");
    assert!(wrong.head().await.is_err());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying forge request"), "{logs}");
    assert!(!logs.contains(TOKEN), "token in logs: {logs}");
    assert!(
        !logs.contains("another-secret-token"),
        "token in logs: {logs}"
    );
}
