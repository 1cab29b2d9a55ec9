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

mod blobs;
mod failures;
mod listing;
