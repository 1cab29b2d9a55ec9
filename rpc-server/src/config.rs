//! Command line, environment and config file, resolved into [`Settings`].
//!
//! Each setting comes from, in order of precedence: the flag, its `BILLING_*`
//! environment variable, the `--config` TOML file (keys named like the flags,
//! with underscores), the built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::secret::AdminSecret;
use crate::store::{DEFAULT_KEEP_RUNS, StoreOptions};

mod cli;
mod ledger;
pub use cli::{
    AggregateArgs, BackupArgs, Cli, Command, DemoArgs, LedgerArgs, LogFormat, MigrateArgs,
    RestoreArgs, ServeArgs, SourceArgs, VerifyArgs,
};
pub use ledger::LedgerLocation;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_DEMO_DATA_DIR: &str = "./demo-data";
pub const DEFAULT_BRANCH: &str = "main";
pub const DEFAULT_INTERVAL_SECS: u64 = 300;
/// File name of the ledger inside the data dir.
pub const LEDGER_FILE: &str = "ledger.redb";
/// Directory of mirrored remote repos inside the data dir.
pub const MIRROR_DIR: &str = "mirror";

/// The `--config` file: every key optional, named like the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub ledger_url: Option<String>,
    pub ledger_password_file: Option<PathBuf>,
    pub replica_name: Option<String>,
    pub repo: Option<String>,
    pub forge_url: Option<String>,
    pub forge_repo: Option<String>,
    pub forge_token_file: Option<PathBuf>,
    pub branch: Option<String>,
    pub max_file_bytes: Option<u64>,
    pub max_records_per_file: Option<u64>,
    pub max_record_cents: Option<i64>,
    pub listen: Option<String>,
    pub interval: Option<u64>,
    pub admin_secret_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub keep_runs: Option<u64>,
    pub metrics_listen: Option<String>,
    pub stale_after: Option<String>,
    pub low_balance_cents: Option<i64>,
    pub webhook_url: Option<Vec<String>>,
    pub webhook_secret_file: Option<PathBuf>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "config file {} is not valid (keys: data_dir, ledger_url, ledger_password_file, replica_name, repo, forge_url, forge_repo, forge_token_file, \
                 branch, max_file_bytes, max_records_per_file, max_record_cents, listen, interval, \
                 admin_secret_file, log_format, keep_runs, metrics_listen, stale_after, \
                 low_balance_cents, webhook_url, webhook_secret_file)",
                path.display()
            )
        })
    }
}

/// Which billing repo to read.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Git {
        repo: String,
        branch: String,
    },
    Forge {
        url: String,
        repo: String,
        branch: String,
        token: Option<String>,
    },
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Git { repo, branch } => write!(f, "git {repo} ({branch})"),
            // The token stays out of logs.
            Self::Forge {
                url, repo, branch, ..
            } => write!(f, "forge {url} {repo} ({branch})"),
        }
    }
}

/// Resolved settings of the ledger and source, shared by `serve` and `aggregate`.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
    /// The redb file in the data dir, or a PostgreSQL database.
    pub ledger: LedgerLocation,
    pub source: SourceSpec,
    pub max_file_bytes: u64,
    /// Per-file record limit and per-record cost ceiling.
    pub decode_limits: billing_api::otoml::DecodeLimits,
    /// How to open the ledger (`--init`, `--keep-runs`).
    pub store: StoreOptions,
}

impl LedgerSettings {
    /// The defaults: the ledger in the data dir, the default limits.
    pub fn new(data_dir: PathBuf, source: SourceSpec) -> LedgerSettings {
        LedgerSettings {
            ledger: LedgerLocation::Redb(data_dir.join(LEDGER_FILE)),
            data_dir,
            source,
            max_file_bytes: billing_api::otoml::DEFAULT_MAX_FILE_BYTES,
            decode_limits: billing_api::otoml::DecodeLimits::default(),
            store: StoreOptions::default(),
        }
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join(LEDGER_FILE)
    }

    pub fn mirror_dir(&self) -> PathBuf {
        self.data_dir.join(MIRROR_DIR)
    }
}

/// Resolved settings of `serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub ledger: LedgerSettings,
    /// This server's name in `aggregator_state`.
    pub replica_name: String,
    pub listen: SocketAddr,
    /// `None` disables the scheduler.
    pub interval: Option<Duration>,
    pub secret: AdminSecret,
    /// Where `GET /metrics` is served; `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// A node whose newest usage hour ended longer ago than this is stale.
    pub stale_after: Duration,
    /// The default low-balance threshold, in cents.
    pub low_balance_cents: i64,
    /// Where events are delivered, with the signing secret; `None`: not delivered.
    pub webhooks: Option<WebhookSettings>,
}

/// `--webhook-url` (one or more) and the secret that signs the deliveries.
#[derive(Clone)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secret: crate::webhooks::WebhookSecret,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self
            .urls
            .iter()
            .map(|u| crate::store::alerts::redact_url(u))
            .collect();
        f.debug_struct("WebhookSettings")
            .field("urls", &shown)
            .finish_non_exhaustive()
    }
}

impl SourceArgs {
    /// Merges flags/env with the config file and defaults.
    pub fn resolve(&self) -> anyhow::Result<(LedgerSettings, ConfigFile)> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let data_dir =
            pick(&self.data_dir, &file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let branch = pick(&self.branch, &file.branch).unwrap_or_else(|| DEFAULT_BRANCH.into());
        let repo = pick(&self.repo, &file.repo);
        let forge_url = pick(&self.forge_url, &file.forge_url);
        let source = match (repo, forge_url) {
            (Some(_), Some(_)) => bail!(
                "both a git repo and a forge URL are configured; keep only one of --repo / --forge-url \
                 (check the flags, BILLING_REPO / BILLING_FORGE_URL and the config file)"
            ),
            (Some(repo), None) => SourceSpec::Git { repo, branch },
            (None, Some(url)) => {
                let repo = pick(&self.forge_repo, &file.forge_repo).context(
                    "--forge-url needs --forge-repo OWNER/NAME (or BILLING_FORGE_REPO, or forge_repo in the config file)",
                )?;
                let token = pick_token(
                    self.forge_token_file.clone(),
                    std::env::var("BILLING_FORGE_TOKEN").ok(),
                    file.forge_token_file.clone(),
                )?;
                SourceSpec::Forge {
                    url,
                    repo,
                    branch,
                    token,
                }
            }
            (None, None) => bail!(
                "no billing repo configured: pass --repo <path|url> (or BILLING_REPO), or --forge-url URL \
                 --forge-repo OWNER/NAME; `rpc-server demo` runs on a simulated repo"
            ),
        };
        let max_file_bytes = pick(&self.max_file_bytes, &file.max_file_bytes)
            .unwrap_or(billing_api::otoml::DEFAULT_MAX_FILE_BYTES);
        let defaults = billing_api::otoml::DecodeLimits::default();
        let decode_limits = billing_api::otoml::DecodeLimits {
            max_records: pick(&self.max_records_per_file, &file.max_records_per_file)
                .unwrap_or(defaults.max_records),
            max_record_cents: pick(&self.max_record_cents, &file.max_record_cents)
                .unwrap_or(defaults.max_record_cents),
        };
        if decode_limits.max_records == 0 || decode_limits.max_record_cents < 0 {
            bail!(
                "--max-records-per-file must be at least 1 and --max-record-cents at least 0 \
                 (got {} and {})",
                decode_limits.max_records,
                decode_limits.max_record_cents
            );
        }
        let keep_runs = pick(&self.keep_runs, &file.keep_runs).unwrap_or(DEFAULT_KEEP_RUNS);
        if keep_runs == 0 {
            bail!("--keep-runs must be at least 1 (the last run gives the aggregator's health)");
        }
        let store = StoreOptions {
            init: self.init,
            keep_runs,
            ..StoreOptions::default()
        };
        Ok((
            LedgerSettings {
                ledger: self.ledger.resolve(&data_dir, &file)?,
                data_dir,
                source,
                max_file_bytes,
                decode_limits,
                store,
            },
            file,
        ))
    }
}

impl ServeArgs {
    pub fn resolve(&self) -> anyhow::Result<ServeSettings> {
        let (ledger, file) = self.source.resolve()?;
        let listen = pick(&self.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen.parse().with_context(|| {
            format!("--listen {listen:?} is not an address like 127.0.0.1:8787")
        })?;
        let interval = pick(&self.interval, &file.interval).unwrap_or(DEFAULT_INTERVAL_SECS);
        let secret = pick_secret(
            self.admin_secret_file.clone(),
            std::env::var("BILLING_ADMIN_SECRET").ok(),
            file.admin_secret_file.clone(),
        )?;
        let replica_name =
            pick(&self.replica_name, &file.replica_name).unwrap_or_else(default_replica_name);
        let metrics_listen = pick(&self.metrics_listen, &file.metrics_listen)
            .map(|addr| {
                addr.parse().with_context(|| {
                    format!("--metrics-listen {addr:?} is not an address like 127.0.0.1:9187")
                })
            })
            .transpose()?;
        let stale_after = match pick(&self.stale_after, &file.stale_after) {
            Some(text) => humantime::parse_duration(&text).with_context(|| {
                format!("--stale-after {text:?} is not a duration like 3h or 90m")
            })?,
            None => crate::aggregate::freshness::DEFAULT_STALE_AFTER,
        };
        if stale_after.is_zero() {
            bail!(
                "--stale-after must be longer than 0 (it is how late a node may report, e.g. 3h)"
            );
        }
        let low_balance_cents = pick(&self.low_balance_cents, &file.low_balance_cents)
            .unwrap_or(crate::store::alerts::DEFAULT_LOW_BALANCE_CENTS);
        if !(0..=crate::store::alerts::outbox::MAX_THRESHOLD_CENTS).contains(&low_balance_cents) {
            bail!(
                "--low-balance-cents must be between 0 and {}, got {low_balance_cents}",
                crate::store::alerts::outbox::MAX_THRESHOLD_CENTS
            );
        }
        let urls = if self.webhook_url.is_empty() {
            file.webhook_url.clone().unwrap_or_default()
        } else {
            self.webhook_url.clone()
        };
        let webhooks = webhook_settings(
            urls,
            pick(&self.webhook_secret_file, &file.webhook_secret_file),
        )?;
        Ok(ServeSettings {
            ledger,
            replica_name,
            listen,
            interval: (interval > 0).then(|| Duration::from_secs(interval)),
            secret,
            metrics_listen,
            stale_after,
            low_balance_cents,
            webhooks,
        })
    }
}

/// Checks the webhook URLs and reads the signing secret.
fn webhook_settings(
    urls: Vec<String>,
    secret_file: Option<PathBuf>,
) -> anyhow::Result<Option<WebhookSettings>> {
    if urls.is_empty() {
        if secret_file.is_some() {
            bail!("--webhook-secret-file is set but no --webhook-url: where should events go?");
        }
        return Ok(None);
    }
    for url in &urls {
        let parsed = reqwest::Url::parse(url).with_context(|| {
            format!(
                "--webhook-url {:?} is not a URL like https://hooks.example.org/billing",
                crate::store::alerts::redact_url(url)
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!(
                "--webhook-url {} must be http:// or https://",
                crate::store::alerts::redact_url(url)
            );
        }
    }
    let path = secret_file.context(
        "--webhook-url needs --webhook-secret-file with the signing secret (whsec_…); make one \
         with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\" > webhook.secret",
    )?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the webhook secret file {}", path.display()))?;
    let secret = crate::webhooks::WebhookSecret::parse(&text)
        .with_context(|| format!("the webhook secret in {} is not usable", path.display()))?;
    Ok(Some(WebhookSettings { urls, secret }))
}

/// `HOSTNAME:PID`, which names a replica uniquely while it runs.
pub fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

fn pick<T: Clone>(flag_or_env: &Option<T>, file: &Option<T>) -> Option<T> {
    flag_or_env.clone().or_else(|| file.clone())
}

/// The admin secret from `BILLING_ADMIN_SECRET`, else from the secret file.
pub fn admin_secret(file: Option<PathBuf>) -> anyhow::Result<AdminSecret> {
    pick_secret(file, std::env::var("BILLING_ADMIN_SECRET").ok(), None)
}

/// The admin secret, in the documented order: `--admin-secret-file`, then
/// `BILLING_ADMIN_SECRET`, then the config file's `admin_secret_file`.
fn pick_secret(
    flag: Option<PathBuf>,
    env: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<AdminSecret> {
    if let Some(path) = flag {
        return admin_secret_from_file(&path);
    }
    if let Some(secret) = env {
        return AdminSecret::new(&secret, "BILLING_ADMIN_SECRET").map_err(anyhow::Error::msg);
    }
    let Some(path) = config else {
        bail!(
            "no admin secret: pass --admin-secret-file FILE or set BILLING_ADMIN_SECRET \
             (at least 16 bytes; e.g. `head -c 32 /dev/urandom | base64 > admin.secret`)"
        );
    };
    admin_secret_from_file(&path)
}

/// The admin secret stored in `path`.
pub fn admin_secret_from_file(path: &Path) -> anyhow::Result<AdminSecret> {
    let secret = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin secret file {}", path.display()))?;
    AdminSecret::new(&secret, &path.display().to_string()).map_err(anyhow::Error::msg)
}

/// The forge token, in the same order: `--forge-token-file`, then
/// `BILLING_FORGE_TOKEN`, then the config file's `forge_token_file`.
fn pick_token(
    flag: Option<PathBuf>,
    env: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    let path = match (flag, env) {
        (Some(path), _) => path,
        (None, Some(token)) => return Ok(Some(token.trim().to_string())),
        (None, None) => match config {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the forge token file {}", path.display()))?;
    Ok(Some(token.trim().to_string()))
}

/// Parses `args` as the command line, reading no environment variable.
#[cfg(test)]
pub(crate) fn parse_without_env<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    fn strip(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.env(None::<&str>))
            .mut_subcommands(strip)
    }
    let matches = strip(Cli::command()).try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests;
