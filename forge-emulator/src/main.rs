//! `forge-emulator`: serves a git repository as a Forgejo API v1 subset on loopback.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use forge_emulator::{EmulatorConfig, EmulatorHandle, ForgeRepo};

#[derive(Parser)]
#[command(about = "Forgejo API v1 emulator for tests, benchmarks and the smoke script")]
struct Cli {
    /// Git repository to serve; an empty bare one is created when missing.
    #[arg(long)]
    repo: PathBuf,
    /// OWNER/NAME the repository is served as.
    #[arg(long, default_value = "lhumina_code/hero_onboarding_billing")]
    forge_repo: String,
    /// Token clients must send as `Authorization: token <t>` (none = anonymous).
    #[arg(long, env = "FORGE_EMULATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve the repository as public: readable without a token (writes still need it).
    #[arg(long)]
    public: bool,
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long, default_value = "main")]
    branch: String,
    /// Largest page of `git/trees` listings.
    #[arg(long, default_value_t = 1000)]
    tree_page_max: usize,
    /// Largest blob whose content `git/blobs` sends (Forgejo's `[api] DEFAULT_MAX_BLOB_SIZE`);
    /// a larger one answers `"content": ""` with its real size.
    #[arg(long, default_value_t = forge_emulator::DEFAULT_MAX_BLOB_SIZE)]
    max_blob_size: u64,
    /// Forgejo version to report (`GET /api/v1/version`); 12 and later also serve batch blob
    /// reads (`git/blobs?shas=`).
    #[arg(long, default_value = forge_emulator::DEFAULT_VERSION)]
    version: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let mut config = EmulatorConfig::new(&cli.forge_repo, cli.token.as_deref())?;
    config.default_branch = cli.branch;
    config.public = cli.public;
    config.tree_page_max = cli.tree_page_max.max(1);
    config.max_blob_size = cli.max_blob_size;
    config.version = cli.version;
    let repo = ForgeRepo::open_or_init(&cli.repo)?;
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}; pick another --listen", cli.listen))?;
    let handle = EmulatorHandle::start_on(listener, config, repo);
    println!("listening on {}", handle.base_url());
    tracing::info!(repo = %cli.repo.display(), "forge emulator serving");
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
