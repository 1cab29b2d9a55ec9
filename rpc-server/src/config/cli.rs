//! The command line: the subcommands and their flags (clap), each with its
//! `BILLING_*` environment variable; how they resolve against the config file
//! is in the parent module.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{ArgGroup, Args, Parser, Subcommand};
use serde::Deserialize;

use super::{
    ConfigFile, DEFAULT_DATA_DIR, DEFAULT_DEMO_DATA_DIR, DEFAULT_LISTEN, LEDGER_FILE,
    LedgerLocation, pick,
};

#[derive(Debug, Parser)]
#[command(
    name = "rpc-server",
    version,
    about = "Central billing aggregator: applies node usage from a git billing repo to prepaid balances, exactly once, and serves them over JSON-RPC.",
    long_about = None,
)]
pub struct Cli {
    /// Log lines on stderr: text (coloured only on a terminal) or json (one object per line) [default: text].
    #[arg(long, global = true, env = "BILLING_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Cli {
    /// `--log-format`, else `BILLING_LOG_FORMAT`, else `log_format` in the
    /// `--config` file of `serve` or `aggregate`, else text.
    pub fn log_format(&self) -> anyhow::Result<LogFormat> {
        if let Some(format) = self.log_format {
            return Ok(format);
        }
        let config = match &self.command {
            Command::Serve(args) => args.source.config.as_deref(),
            Command::Aggregate(args) => args.source.config.as_deref(),
            Command::Reconcile(args) => args.source.config.as_deref(),
            Command::Simulate(_)
            | Command::Demo(_)
            | Command::Verify(_)
            | Command::MigrateLedger(_)
            | Command::Backup(_)
            | Command::Export(_)
            | Command::Restore(_) => None,
        };
        Ok(match config {
            Some(path) => ConfigFile::load(path)?.log_format.unwrap_or_default(),
            None => LogFormat::default(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the JSON-RPC API (HTTP and WebSocket on one port) and aggregate every --interval.
    #[command(
        after_help = "Needs a billing repo (--repo, or --forge-url with --forge-repo) and an admin \
                      secret of at least 16 bytes (--admin-secret-file, or BILLING_ADMIN_SECRET). \
                      `rpc-server demo` starts one with everything made up."
    )]
    Serve(ServeArgs),
    /// Run one aggregation pass on the ledger, without a server.
    #[command(
        after_help = "Exit status: 0 the pass finished cleanly; 1 the pass could not run or failed as a whole \
                      (e.g. the repo is unreachable, or a running server holds the ledger: use its aggregate_now RPC); \
                      2 the pass finished but some nodes failed (see errors in the summary)."
    )]
    Aggregate(AggregateArgs),
    /// Play the node side: create or extend a git billing repo with simulated usage.
    Simulate(crate::simulate::SimulateOptions),
    /// Run a self-contained demo: simulated repo, users, payments, a secret, then serve.
    Demo(DemoArgs),
    /// Check the ledger's counters against its rows (and repair the counters).
    #[command(
        after_help = "Exit status: 0 consistent (or repaired); 3 inconsistent (the report says what \
                      differs); 1 the check could not run. Beside a running server (redb) it checks a snapshot the \
                      server sends (found through DIR/server.json, with the admin secret); --repair needs the server stopped."
    )]
    Verify(VerifyArgs),
    /// Copy the whole ledger between backends: a redb file into an empty PostgreSQL database, or back.
    #[command(
        after_help = "Stop every server using either ledger first. The target must hold no ledger data: \
                      the copy is refused otherwise, and changes nothing. The copy is one transaction \
                      (a failed copy leaves the target empty), keeps every id and sequence number, and is \
                      checked: equal row counts per table, then a full verify of the target.\n\n\
                      Exit status: 0 copied and verified (a report of the rows copied per table is printed); \
                      1 nothing usable was copied (the error says why and what to do)."
    )]
    MigrateLedger(MigrateArgs),
    /// Compare the ledger with the billing repo at its head (changes nothing).
    #[command(
        after_help = "Reports records at head that are neither applied, held nor rejected; applied \
                      records whose file at head no longer has them or has them with other values \
                      (with the node, file and commit that applied them); every user's balance \
                      against payments minus applied records; and totals of both sides. Works \
                      while a server runs on the data dir: it is then asked (its `reconcile` RPC, \
                      found through DIR/server.json, with the admin secret). No pass runs meanwhile.\n\n\
                      Exit status: 0 consistent; 3 differences found (listed); 1 could not compare."
    )]
    Reconcile(ReconcileArgs),
    /// Export users, payments, applied records or rejections as CSV or JSON Lines.
    #[command(
        after_help = "Streams a page at a time (constant memory), newest first. Amounts are integer \
                      cents, each with a decimal column; the columns are in docs/export.md. Works \
                      while a server runs on the data dir: its list methods are then used (found \
                      through DIR/server.json, with the admin secret).\n\n\
                      Exit status: 0 written; 1 not (the error says why)."
    )]
    Export(ExportArgs),
    /// Write a backup of the redb ledger: one consistent snapshot, checked, with a checksum.
    #[command(
        after_help = "Works whether or not a server is serving and aggregating on the data dir: a \
                      running server holds the ledger file, so the backup is then asked of it, \
                      found through DIR/server.json and authenticated with the admin secret. \
                      Passes and payments go on meanwhile; the snapshot is one read transaction, \
                      so no pass or payment is half in it. A PostgreSQL ledger is backed up with \
                      pg_dump (see docs/deploy.md).\n\n\
                      Exit status: 0 written and checked; 1 no backup was written (the error says why)."
    )]
    Backup(BackupArgs),
    /// Restore a backup made by `backup` as the ledger of a data dir.
    #[command(
        after_help = "Refuses to replace an existing ledger without --force, and a ledger a running \
                      server holds in any case. The backup's checksum is checked before anything is \
                      replaced, and the restored ledger is checked with a full verify.\n\n\
                      Exit status: 0 restored and consistent; 3 restored, but verify found \
                      differences (printed); 1 nothing was restored (the error says why)."
    )]
    Restore(RestoreArgs),
}

/// Where usage comes from, and where the ledger lives.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// TOML config file with any of the settings below (flags and env win over it).
    #[arg(long, env = "BILLING_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the ledger (ledger.redb) and of mirrored repos [default: ./data].
    #[arg(long, env = "BILLING_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Billing repo: a local path (bare or working repo) or a git URL (file://, http(s)://), mirrored into the data dir.
    #[arg(
        long,
        env = "BILLING_REPO",
        value_name = "PATH|URL",
        conflicts_with = "forge_url"
    )]
    pub repo: Option<String>,
    /// Forgejo/Gitea base URL (e.g. https://forge.example.org); reads the billing repo over its REST API v1.
    #[arg(long, env = "BILLING_FORGE_URL", value_name = "URL")]
    pub forge_url: Option<String>,
    /// Repository on the forge, as OWNER/NAME.
    #[arg(long, env = "BILLING_FORGE_REPO", value_name = "OWNER/NAME")]
    pub forge_repo: Option<String>,
    /// File holding the forge API token (or set BILLING_FORGE_TOKEN to the token itself).
    #[arg(long, env = "BILLING_FORGE_TOKEN_FILE", value_name = "FILE")]
    pub forge_token_file: Option<PathBuf>,
    /// Branch the nodes commit to [default: main].
    #[arg(long, env = "BILLING_BRANCH")]
    pub branch: Option<String>,
    /// Usage files larger than this are rejected without being read [default: 16777216].
    #[arg(long, env = "BILLING_MAX_FILE_BYTES", value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Usage files with more records than this are rejected whole (too_many_records) [default: 1000000].
    #[arg(long, env = "BILLING_MAX_RECORDS_PER_FILE", value_name = "N")]
    pub max_records_per_file: Option<u64>,
    /// Records costing more than this many cents are invalid [default: 100000000, i.e. 1,000,000.00].
    #[arg(long, env = "BILLING_MAX_RECORD_CENTS", value_name = "CENTS")]
    pub max_record_cents: Option<i64>,
    /// Aggregation runs kept in the ledger (older ones are dropped; totals over all runs stay) [default: 10000].
    #[arg(long, env = "BILLING_KEEP_RUNS", value_name = "N")]
    pub keep_runs: Option<u64>,
    /// Accept an empty (0-byte) ledger.redb as a new, empty ledger (otherwise refused as damaged).
    #[arg(long)]
    pub init: bool,
}

/// Where the ledger lives, when not in the data dir.
#[derive(Debug, Clone, Default, Args)]
pub struct LedgerArgs {
    /// Keep the ledger in PostgreSQL instead of the data dir's redb file:
    /// postgres://USER@HOST:PORT/DATABASE. Several servers may share one database.
    #[arg(long, env = "BILLING_LEDGER_URL", value_name = "URL")]
    pub ledger_url: Option<String>,
    /// File holding the PostgreSQL password, when the URL has none (else PGPASSWORD is used).
    #[arg(long, env = "BILLING_LEDGER_PASSWORD_FILE", value_name = "FILE")]
    pub ledger_password_file: Option<PathBuf>,
}

impl LedgerArgs {
    /// The ledger's location, with the config file's keys under the flags.
    pub fn resolve(&self, data_dir: &Path, file: &ConfigFile) -> anyhow::Result<LedgerLocation> {
        LedgerLocation::resolve(
            data_dir,
            pick(&self.ledger_url, &file.ledger_url),
            pick(&self.ledger_password_file, &file.ledger_password_file),
        )
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8787].
    #[arg(long, env = "BILLING_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Seconds between scheduled aggregation passes; 0 disables the scheduler [default: 300].
    #[arg(long, env = "BILLING_INTERVAL", value_name = "SECS")]
    pub interval: Option<u64>,
    /// File holding the admin secret (at least 16 bytes), or set BILLING_ADMIN_SECRET to the secret itself.
    #[arg(long, env = "BILLING_ADMIN_SECRET_FILE", value_name = "FILE")]
    pub admin_secret_file: Option<PathBuf>,
    /// Name of this server in aggregator_state (which replica ran the last pass) [default: HOSTNAME:PID].
    #[arg(long, env = "BILLING_REPLICA_NAME", value_name = "NAME")]
    pub replica_name: Option<String>,
    /// Serve Prometheus metrics at GET /metrics on this address (no secret needed there) [default: off].
    #[arg(long, env = "BILLING_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// A node whose newest usage hour ended longer ago than this is stale [default: 3h].
    #[arg(long, env = "BILLING_STALE_AFTER", value_name = "DURATION")]
    pub stale_after: Option<String>,
    /// Default low-balance threshold in cents: a debit below it is a balance.low event [default: 500].
    #[arg(long, env = "BILLING_LOW_BALANCE_CENTS", value_name = "CENTS")]
    pub low_balance_cents: Option<i64>,
    /// Deliver every event to this URL as a signed JSON POST (repeat for several).
    #[arg(
        long = "webhook-url",
        env = "BILLING_WEBHOOK_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub webhook_url: Vec<String>,
    /// File holding the webhook signing secret (whsec_<base64>, Standard Webhooks).
    #[arg(long, env = "BILLING_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Run exactly one pass and exit (the only mode; required so the intent is explicit).
    #[arg(long, required = true)]
    pub once: bool,
    /// Print the pass summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: HeldLedgerArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Rewrite the stored counters (and, on redb, the list_users indexes) from the rows, then
    /// check again (needs the server stopped).
    #[arg(long)]
    pub repair: bool,
}

/// The ledger a maintenance command works on, and the admin secret to ask the
/// server that holds it, if one does.
#[derive(Debug, Args)]
pub struct HeldLedgerArgs {
    /// TOML config file (only its data_dir, ledger and admin_secret_file keys are used).
    #[arg(long, env = "BILLING_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the ledger (ledger.redb) [default: ./data].
    #[arg(long, env = "BILLING_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// File holding the admin secret of the server that holds the ledger, if one does
    /// (or set BILLING_ADMIN_SECRET to the secret itself).
    #[arg(long, env = "BILLING_ADMIN_SECRET_FILE", value_name = "FILE")]
    pub admin_secret_file: Option<PathBuf>,
}

impl HeldLedgerArgs {
    /// The ledger, and the admin secret file to use if a server holds it.
    pub fn resolve(&self) -> anyhow::Result<(LedgerLocation, Option<PathBuf>)> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let data_dir =
            pick(&self.data_dir, &file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let ledger = self.ledger.resolve(&data_dir, &file)?;
        Ok((
            ledger,
            pick(&self.admin_secret_file, &file.admin_secret_file),
        ))
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: HeldLedgerArgs,
    /// What to export.
    #[arg(long, value_enum)]
    pub what: crate::export::What,
    /// csv (RFC 4180, with a header row) or jsonl (one JSON object per line).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: crate::export::Format,
    /// Only items at or after this time (RFC 3339): created, paid, applied or first seen.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only items before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only this user's items (users, payments, consumed).
    #[arg(long, value_name = "SID")]
    pub user: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// File holding the admin secret of the server that holds the ledger, if one does
    /// (or set BILLING_ADMIN_SECRET to the secret itself).
    #[arg(long, env = "BILLING_ADMIN_SECRET_FILE", value_name = "FILE")]
    pub admin_secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: HeldLedgerArgs,
    /// The backup file to write (never overwritten).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file, as written by `rpc-server backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Data dir to restore into: the backup becomes DIR/ledger.redb.
    #[arg(long, env = "BILLING_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Replace the ledger already in DIR (never one a running server holds).
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `migrate-ledger`: one end is a redb file, the other a PostgreSQL database.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("source").required(true).args(["from_data_dir", "from"])),
    group(ArgGroup::new("target").required(true).args(["to", "to_data_dir"]))
)]
pub struct MigrateArgs {
    /// Copy the redb ledger DIR/ledger.redb (the data dir of the aggregator).
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: Option<PathBuf>,
    /// Copy the ledger in this PostgreSQL database: postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Into this PostgreSQL database, which must hold no ledger data (its tables are created).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Into a new redb ledger DIR/ledger.redb (refused if one there holds data).
    #[arg(long, value_name = "DIR")]
    pub to_data_dir: Option<PathBuf>,
    /// File holding the PostgreSQL password, when the URL has none (else PGPASSWORD is used).
    #[arg(long, env = "BILLING_LEDGER_PASSWORD_FILE", value_name = "FILE")]
    pub ledger_password_file: Option<PathBuf>,
}

impl MigrateArgs {
    /// The source and the target; one is a redb file, the other PostgreSQL.
    pub fn resolve(&self) -> anyhow::Result<(LedgerLocation, LedgerLocation)> {
        let end = |dir: &Option<PathBuf>, url: &Option<String>, flag: &str| match (dir, url) {
            (Some(dir), None) => Ok(LedgerLocation::Redb(dir.join(LEDGER_FILE))),
            (None, Some(url)) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!(
                        "{flag} must be a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE \
                         (the password in --ledger-password-file or PGPASSWORD)"
                    );
                }
                LedgerLocation::resolve(
                    Path::new(""),
                    Some(url.clone()),
                    self.ledger_password_file.clone(),
                )
            }
            _ => bail!("give exactly one of {flag} URL and {flag}-data-dir DIR"),
        };
        let from = end(&self.from_data_dir, &self.from, "--from")?;
        let to = end(&self.to_data_dir, &self.to, "--to")?;
        match (&from, &to) {
            (LedgerLocation::Redb(_), LedgerLocation::Redb(_)) => bail!(
                "both ends are redb files: copy ledger.redb itself (with the server stopped); \
                 migrate-ledger moves a ledger between redb and PostgreSQL"
            ),
            (LedgerLocation::Postgres { .. }, LedgerLocation::Postgres { .. }) => bail!(
                "both ends are PostgreSQL databases: copy the database with pg_dump and \
                 pg_restore; migrate-ledger moves a ledger between redb and PostgreSQL"
            ),
            _ => Ok((from, to)),
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's repo, ledger and secret.
    #[arg(long, env = "BILLING_DEMO_DATA_DIR", value_name = "DIR", default_value = DEFAULT_DEMO_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
}
