//! `rpc-server backup` and `rpc-server restore` for a redb ledger.
//!
//! `backup` opens the ledger itself when no server holds it. When a server
//! does (a redb file is open in one process only), it finds that server
//! through `server.json` in the data dir and downloads the backup from its
//! `GET /backup`, authenticated with the admin secret. Either way the file is
//! written as `FILE.partial`, checked whole against its checksum, and only
//! then renamed to `FILE`. A PostgreSQL ledger is backed up with `pg_dump`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::LedgerLocation;
use crate::secret::AdminSecret;
use crate::server_file;
use crate::store::backup::{self, BackupHeader, RestoreReport};
use crate::store::{RedbStore, StoreError, StoreOptions, VerifyReport};

/// A backup written by [`backup`].
#[derive(Debug)]
pub struct BackupDone {
    pub file: PathBuf,
    pub header: BackupHeader,
    /// The server the backup came from, when one held the ledger.
    pub via_server: Option<String>,
}

/// Writes a backup of `ledger` to `to`. `secret` is asked for only when a
/// running server must be asked for the backup.
pub async fn backup(
    ledger: &LedgerLocation,
    to: &Path,
    secret: impl FnOnce() -> anyhow::Result<AdminSecret>,
) -> anyhow::Result<BackupDone> {
    let path = match ledger {
        LedgerLocation::Redb(path) => path.clone(),
        LedgerLocation::Postgres { .. } => bail!(
            "the ledger {} is in PostgreSQL: back it up with `pg_dump -Fc` and restore it with \
             `pg_restore` (see docs/deploy.md, \"Backups\"); `rpc-server backup` copies redb ledgers",
            ledger.describe()
        ),
    };
    if !path.is_file() {
        bail!(
            "there is no ledger at {}; pass the data dir of the aggregator with --data-dir",
            path.display()
        );
    }
    if to.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file: choose another --to, or \
             remove it first",
            to.display()
        );
    }
    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = write_partial(&path, &partial, secret).await;
    let via_server = match result {
        Ok(via) => via,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let check = partial.clone();
    let header = tokio::task::spawn_blocking(move || backup::check_backup(&check))
        .await?
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            anyhow::anyhow!("the backup came out damaged, so it was not kept: {e}")
        })?;
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot move the backup into place at {}", to.display()))?;
    Ok(BackupDone {
        file: to.to_path_buf(),
        header,
        via_server,
    })
}

/// Writes the backup to `partial`: from the ledger file if this process can
/// open it, else from the server that holds it (whose address it returns).
async fn write_partial(
    ledger: &Path,
    partial: &Path,
    secret: impl FnOnce() -> anyhow::Result<AdminSecret>,
) -> anyhow::Result<Option<String>> {
    let (ledger_path, out) = (ledger.to_path_buf(), partial.to_path_buf());
    let local = tokio::task::spawn_blocking(move || local_backup(&ledger_path, &out)).await?;
    match local {
        Ok(()) => Ok(None),
        Err(StoreError::Locked { .. }) => {
            let dir = ledger.parent().unwrap_or(Path::new("."));
            let server = server_file::read(dir).map_err(anyhow::Error::msg)?;
            download(&server.address, &secret()?, partial, "").await?;
            Ok(Some(server.address))
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes the backup in this process (no server holds the ledger).
fn local_backup(ledger: &Path, partial: &Path) -> Result<(), StoreError> {
    let options = StoreOptions {
        init: false,
        check: false,
        ..StoreOptions::default()
    };
    let store = RedbStore::open_with(ledger, options)?;
    let scratch = with_suffix(partial, ".ledger");
    let _ = std::fs::remove_file(&scratch);
    let taken = backup::take_snapshot(
        &store,
        &ledger.display().to_string(),
        &scratch,
        billing_api::now_rfc3339(),
        true,
    );
    let written = taken.and_then(|snapshot| {
        let file = std::fs::File::create(partial)
            .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", partial.display())))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        backup::write_backup(&snapshot, &mut out)
            .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|file| file.sync_all())
            .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", partial.display())))
    });
    let _ = std::fs::remove_file(&scratch);
    written
}

/// Downloads the backup from the server at `address` into `partial`.
async fn download(
    address: &str,
    secret: &AdminSecret,
    partial: &Path,
    query: &str,
) -> anyhow::Result<()> {
    let client = server_file::client()?;
    let url = format!("{address}/backup{query}");
    let mut response = client
        .get(&url)
        .header(http::header::AUTHORIZATION, secret.authorization())
        .send()
        .await
        .map_err(|e| server_file::unreachable(address, &e))?;
    let status = response.status();
    if !status.is_success() {
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(server_file::refused(address));
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("the server at {address} could not make the backup ({status}): {message}");
    }
    let mut file = std::fs::File::create(partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("the backup from {address} broke off"))?
    {
        file.write_all(&chunk)
            .with_context(|| format!("cannot write {}", partial.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    Ok(())
}

/// `rpc-server verify` while a server holds the redb file `ledger`: the
/// server sends a snapshot (one read transaction, as for a backup), which is
/// restored next to the ledger, checked with a full verify, and deleted.
pub async fn verify_via_server(
    ledger: &Path,
    secret: impl FnOnce() -> anyhow::Result<AdminSecret>,
) -> anyhow::Result<VerifyReport> {
    let dir = ledger.parent().unwrap_or(Path::new("."));
    let server = server_file::read(dir).map_err(anyhow::Error::msg)?;
    let pid = std::process::id();
    let file = dir.join(format!("verify-{pid}.backup"));
    let copy = dir.join(format!("verify-{pid}.redb"));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&copy);
    let result = async {
        download(&server.address, &secret()?, &file, "?unchecked=1").await?;
        let (from, to) = (file.clone(), copy.clone());
        tokio::task::spawn_blocking(move || backup::restore(&from, &to, false))
            .await?
            .map_err(anyhow::Error::msg)
    }
    .await;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&copy);
    let mut report = result?.verify;
    report.ledger = format!(
        "{} (a snapshot from the server at {} that holds it)",
        ledger.display(),
        server.address
    );
    Ok(report)
}

/// `rpc-server restore`: the backup `from` as the ledger of `ledger`.
pub async fn restore(
    from: PathBuf,
    ledger: &LedgerLocation,
    force: bool,
) -> anyhow::Result<RestoreReport> {
    let path = match ledger {
        LedgerLocation::Redb(path) => path.clone(),
        LedgerLocation::Postgres { .. } => bail!(
            "restore writes a redb ledger; a PostgreSQL ledger is restored with `pg_restore` \
             (see docs/deploy.md, \"Backups\")"
        ),
    };
    tokio::task::spawn_blocking(move || backup::restore(&from, &path, force))
        .await?
        .map_err(anyhow::Error::msg)
}

/// The text `backup` prints.
pub fn backup_text(done: &BackupDone) -> String {
    let h = &done.header;
    format!(
        "backup {} written{}: ledger format {}, taken at {}, {} users, {} applied records, \
         {} held, total balance {} cents, {} bytes, sha256 {}\n",
        done.file.display(),
        done.via_server
            .as_ref()
            .map(|a| format!(" (from the server at {a})"))
            .unwrap_or_default(),
        h.ledger_format,
        h.taken_at,
        h.users,
        h.consumed_records,
        h.pending_records,
        h.total_balance_cents,
        h.bytes,
        h.sha256
    )
}

/// The text `restore` prints.
pub fn restore_text(report: &RestoreReport) -> String {
    let h = &report.header;
    let mut out = format!(
        "restored the backup taken at {} from {} into {}{}: {} users, {} applied records, \
         total balance {} cents\n",
        h.taken_at,
        h.source,
        report.ledger,
        if report.replaced {
            " (the ledger there was replaced)"
        } else {
            ""
        },
        h.users,
        h.consumed_records,
        h.total_balance_cents
    );
    out += &crate::server::verify_text(&report.verify, None);
    out
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
