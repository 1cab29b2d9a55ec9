//! Online backups of a redb ledger (`rpc-server backup`), and restoring them
//! (`rpc-server restore`).
//!
//! A backup is taken in **one read transaction**: every table is copied, row
//! by row, from that snapshot into a new redb file, so no pass (a node's chunk
//! is one write transaction) and no payment is half in it, and a server keeps
//! serving and aggregating meanwhile. The copy is then checked with a full
//! `verify` and wrapped in a backup file:
//!
//! ```text
//! billing-ledger-backup 1\n          the magic line, with the backup format
//! {"ledger_format":3,…,"sha256":…}\n  the header: one JSON line (BackupHeader)
//! <bytes>                             the redb file itself
//! ```
//!
//! The checksum covers the redb bytes; `restore` refuses a file whose bytes
//! do not match it, or a ledger format newer than this binary's.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use redb::{Database, Durability, Key, ReadTransaction, TableDefinition, TableHandle, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Depth, LEDGER_FORMAT, RedbStore, StoreError, StoreOptions, VerifyReport, tables};

/// The first line of every backup file, with the backup format after it.
pub const BACKUP_MAGIC: &str = "billing-ledger-backup";
/// The layout of the backup file (magic line, header line, redb bytes).
pub const BACKUP_FORMAT: u32 = 1;
/// Longest header line read back.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// What a backup file says about itself (its second line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The ledger format of the redb file inside ([`LEDGER_FORMAT`] when taken).
    pub ledger_format: u32,
    /// When the snapshot was taken, RFC 3339.
    pub taken_at: String,
    /// The ledger it was taken from (a path).
    pub source: String,
    /// Length and SHA-256 (hex) of the redb bytes after the header.
    pub bytes: u64,
    pub sha256: String,
    /// What the snapshot holds, for a reader who wants to check it at a glance.
    pub users: u64,
    pub consumed_records: u64,
    pub pending_records: u64,
    pub total_balance_cents: String,
}

/// Page cache of the copy being written.
const COPY_CACHE_BYTES: usize = 8 << 20;
/// Rows written to the backup per write transaction: the copy's memory stays
/// bounded whatever the size of the ledger.
const COPY_BATCH: usize = 50_000;

/// Copies one table of the snapshot into the backup; rows copied. The
/// snapshot is read through one iterator of the one read transaction; the
/// copy is committed every [`COPY_BATCH`] rows, not durably (the last commit
/// of `copy_tables` is).
fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &Database,
    def: TableDefinition<K, V>,
    copied: &mut BTreeSet<String>,
) -> Result<u64, StoreError> {
    copied.insert(def.name().to_string());
    let source = match from.open_table(def) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut rows = 0;
    let mut entries = redb::ReadableTable::iter(&source)?;
    loop {
        let mut write = to.begin_write()?;
        write.set_durability(Durability::None)?;
        let mut batch = 0;
        {
            let mut target = write.open_table(def)?;
            for entry in entries.by_ref().take(COPY_BATCH) {
                let (key, value) = entry?;
                target.insert(key.value(), value.value())?;
                batch += 1;
            }
        }
        write.commit()?;
        rows += batch as u64;
        if batch < COPY_BATCH {
            return Ok(rows);
        }
    }
}

/// Copies every table of the ledger from `from` into `to`, and commits it
/// durably. Fails when the ledger has a table this copy does not know: a
/// backup never leaves one out.
fn copy_tables(from: &ReadTransaction, to: &Database) -> Result<u64, StoreError> {
    let mut copied = BTreeSet::new();
    let c = &mut copied;
    let rows = copy_table(from, to, tables::META, c)?
        + copy_table(from, to, tables::USERS, c)?
        + copy_table(from, to, tables::USERS_BY_BALANCE, c)?
        + copy_table(from, to, tables::USERS_BY_CONSUMED, c)?
        + copy_table(from, to, tables::PAYMENTS, c)?
        + copy_table(from, to, tables::PAYMENT_LOG, c)?
        + copy_table(from, to, tables::USER_PAYMENTS, c)?
        + copy_table(from, to, tables::CONSUMED_KEYS, c)?
        + copy_table(from, to, tables::CONSUMED_LOG, c)?
        + copy_table(from, to, tables::CONSUMED_SOURCES, c)?
        + copy_table(from, to, tables::USER_CONSUMED, c)?
        + copy_table(from, to, tables::PENDING, c)?
        + copy_table(from, to, tables::USER_PENDING, c)?
        + copy_table(from, to, tables::REJECTED, c)?
        + copy_table(from, to, tables::REJECTED_FINGERPRINTS, c)?
        + copy_table(from, to, tables::REJECTED_COUNTS, c)?
        + copy_table(from, to, tables::FILE_TALLIES, c)?
        + copy_table(from, to, tables::NODES, c)?
        + copy_table(from, to, tables::CONSUMED_FILES, c)?
        + copy_table(from, to, tables::RUNS, c)?
        + copy_table(from, to, tables::ALERTS, c)?
        + copy_table(from, to, tables::EVENTS, c)?
        + copy_table(from, to, tables::DELIVERIES, c)?
        + copy_table(from, to, tables::WEBHOOK_CURSORS, c)?;
    for table in from.list_tables()? {
        if !copied.contains(table.name()) {
            return Err(StoreError::Storage(format!(
                "the ledger has a table `{}` that the backup does not copy; this binary cannot \
                 back up this ledger",
                table.name()
            )));
        }
    }
    let mut last = to.begin_write()?;
    last.set_durability(Durability::Immediate)?;
    last.commit()?;
    Ok(rows)
}

impl RedbStore {
    /// Copies the ledger, as of one read transaction, into a new redb file
    /// at `to` (which must not exist). Returns the rows copied.
    pub fn snapshot_into(&self, to: &Path) -> Result<u64, StoreError> {
        // A small cache: the copy is written once and not read back here.
        let target = Database::builder()
            .set_cache_size(COPY_CACHE_BYTES)
            .create(to)
            .map_err(|e| {
                StoreError::Storage(format!(
                    "cannot create the backup's ledger file {}: {e}",
                    to.display()
                ))
            })?;
        self.read("take a backup", |txn| copy_tables(txn, &target))
    }
}

/// SHA-256 (hex) and length of a file.
fn digest_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        hasher.update(buf);
        let n = buf.len();
        bytes += n as u64;
        file.consume(n);
    }
    Ok((hex(&hasher.finalize()), bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A snapshot file made by [`RedbStore::snapshot_into`], checked and ready
/// to be written out as a backup.
pub struct Snapshot {
    pub path: PathBuf,
    pub header: BackupHeader,
}

/// Takes a snapshot of `store` into `scratch` (a new file, removed by the
/// caller), checks it with a full verify unless `check` is false (a snapshot
/// taken to be verified elsewhere, see `rpc-server verify`), and describes it.
pub fn take_snapshot(
    store: &RedbStore,
    source: &str,
    scratch: &Path,
    taken_at: String,
    check: bool,
) -> Result<Snapshot, StoreError> {
    store.snapshot_into(scratch)?;
    let options = StoreOptions {
        init: false,
        check: false,
        ..StoreOptions::default()
    };
    let copy = RedbStore::open_with(scratch, options)?;
    if check {
        let report = copy.verify(Depth::Full)?;
        if !report.consistent {
            return Err(StoreError::Storage(format!(
                "the snapshot of {} does not pass verify, so no backup was written: {}. Run \
                 `rpc-server verify` on the ledger",
                source,
                report
                    .findings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
    }
    let counts = copy.overview_counts()?;
    drop(copy);
    let (sha256, bytes) = digest_file(scratch).map_err(|e| {
        StoreError::Io(format!(
            "cannot read the snapshot {}: {e}",
            scratch.display()
        ))
    })?;
    Ok(Snapshot {
        path: scratch.to_path_buf(),
        header: BackupHeader {
            ledger_format: LEDGER_FORMAT,
            taken_at,
            source: source.to_string(),
            bytes,
            sha256,
            users: counts.total_users,
            consumed_records: counts.consumed_records,
            pending_records: counts.pending_records,
            total_balance_cents: counts.total_balance_cents.to_string(),
        },
    })
}

/// The magic line and header line of a backup.
pub fn header_lines(header: &BackupHeader) -> String {
    format!(
        "{BACKUP_MAGIC} {BACKUP_FORMAT}\n{}\n",
        serde_json::to_string(header).expect("a header always serializes")
    )
}

/// Writes the backup file of `snapshot` to `out`.
pub fn write_backup(snapshot: &Snapshot, out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(header_lines(&snapshot.header).as_bytes())?;
    let mut file = File::open(&snapshot.path)?;
    std::io::copy(&mut file, out)?;
    out.flush()
}

/// Reads the magic and header lines of a backup file.
pub fn read_header(from: &mut impl BufRead, name: &str) -> Result<BackupHeader, String> {
    let mut line = String::new();
    from.take(MAX_HEADER_BYTES)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let format = line
        .trim_end()
        .strip_prefix(BACKUP_MAGIC)
        .map(str::trim)
        .ok_or_else(|| {
            format!("{name} is not a ledger backup (it does not start with `{BACKUP_MAGIC}`)")
        })?;
    if format != BACKUP_FORMAT.to_string() {
        return Err(format!(
            "{name} is a backup of format {format}; this binary reads format {BACKUP_FORMAT}: \
             restore it with the version of rpc-server that made it"
        ));
    }
    line.clear();
    from.take(MAX_HEADER_BYTES)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let header: BackupHeader = serde_json::from_str(line.trim_end())
        .map_err(|e| format!("the header of backup {name} is damaged ({e})"))?;
    if header.ledger_format > LEDGER_FORMAT {
        return Err(format!(
            "{name} holds a ledger of format {}, newer than this binary's {LEDGER_FORMAT}: \
             restore it with a newer rpc-server",
            header.ledger_format
        ));
    }
    Ok(header)
}

/// What `restore` put in place.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub header: BackupHeader,
    pub ledger: String,
    pub replaced: bool,
    pub verify: VerifyReport,
}

/// Restores the backup file `from` as the ledger at `ledger` (the data dir's
/// `ledger.redb`). Refuses to replace an existing ledger unless `force`, and
/// a ledger a running server holds in any case. The bytes are written next to
/// it, checked against the header's checksum, and only then renamed into place.
pub fn restore(from: &Path, ledger: &Path, force: bool) -> Result<RestoreReport, String> {
    let name = from.display().to_string();
    let file = File::open(from).map_err(|e| format!("cannot open the backup {name}: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = read_header(&mut reader, &name)?;
    let exists = ledger.exists();
    if exists {
        if !force {
            return Err(format!(
                "{} already holds a ledger; restoring would replace it. Restore into a new \
                 --data-dir, or pass --force to replace it",
                ledger.display()
            ));
        }
        // A ledger a server holds cannot be opened here: refuse before writing.
        let options = StoreOptions {
            init: false,
            check: false,
            ..StoreOptions::default()
        };
        if let Err(StoreError::Locked { path }) = RedbStore::open_with(ledger, options) {
            return Err(format!(
                "{} is open in another process, most likely a running rpc-server: stop it \
                 before restoring over its ledger",
                path.display()
            ));
        }
    }
    let dir = ledger.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data dir {}: {e}", dir.display()))?;
    let partial = ledger.with_extension("redb.restoring");
    let result = write_checked(&mut reader, &partial, &header, &name);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, ledger).map_err(|e| {
        format!(
            "cannot move the restored ledger {} into place: {e}",
            partial.display()
        )
    })?;
    let options = StoreOptions {
        check: false,
        ..StoreOptions::default()
    };
    let verify = RedbStore::open_with(ledger, options)
        .and_then(|store| store.verify(Depth::Full))
        .map_err(|e| {
            format!(
                "the restored ledger {} cannot be checked: {e}",
                ledger.display()
            )
        })?;
    Ok(RestoreReport {
        header,
        ledger: ledger.display().to_string(),
        replaced: exists,
        verify,
    })
}

/// Copies the redb bytes of a backup into `to`, checking length and checksum.
fn write_checked(
    from: &mut impl Read,
    to: &Path,
    header: &BackupHeader,
    name: &str,
) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", to.display());
    let file = File::create(to).map_err(failed)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    copy_checked(from, &mut out, header, name)?;
    let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(failed)
}

/// Checks a backup file whole: its header, and its bytes against the checksum.
pub fn check_backup(path: &Path) -> Result<BackupHeader, String> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| format!("cannot open the backup {name}: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = read_header(&mut reader, &name)?;
    copy_checked(&mut reader, &mut std::io::sink(), &header, &name)?;
    Ok(header)
}

/// Copies the rest of `from` into `out`; fails unless it has the length and
/// checksum the header says.
fn copy_checked(
    from: &mut impl Read,
    out: &mut impl Write,
    header: &BackupHeader,
    name: &str,
) -> Result<(), String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| format!("cannot read the backup {name}: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write the ledger of backup {name}: {e}"))?;
        bytes += n as u64;
    }
    let sha256 = hex(&hasher.finalize());
    if bytes != header.bytes || sha256 != header.sha256 {
        return Err(format!(
            "the backup {name} is damaged: its ledger is {bytes} bytes with SHA-256 {sha256}, \
             but its header says {} bytes with SHA-256 {}, so it cannot be restored. Use another \
             copy of the backup",
            header.bytes, header.sha256
        ));
    }
    Ok(())
}
