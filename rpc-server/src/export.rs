//! `rpc-server export`: users, payments, applied records or rejections as
//! CSV or JSON Lines, for accounting. Columns are documented in
//! `docs/export.md`.
//!
//! Rows stream a page at a time, so memory stays constant whatever the size
//! of the ledger. Pages come from the ledger itself, or, when a running
//! server holds the redb file, from that server's list methods (found through
//! `server.json`, with the admin secret). Items come newest first, as the list
//! methods give them. Amounts are integer cents, each with a decimal column.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use billing_api::{ConsumedRecord, Page, Payment, RejectedItem, UserBilling, rfc3339_to_millis};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::LedgerLocation;
use crate::secret::AdminSecret;
use crate::server_file::{self, ServerFile};
use crate::store::{Store, StoreError, StoreOptions};

/// Items asked for per page.
const PAGE: u32 = 1000;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    Users,
    Payments,
    Consumed,
    Rejected,
}

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// Which items: by time (created, paid, applied or first seen) and user.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Inclusive, unix milliseconds.
    pub from_ms: Option<u64>,
    /// Exclusive, unix milliseconds.
    pub to_ms: Option<u64>,
    pub user_sid: Option<String>,
}

impl Filter {
    /// Parses `--from` and `--to` (RFC 3339).
    pub fn new(from: Option<&str>, to: Option<&str>, user: Option<String>) -> anyhow::Result<Self> {
        let at = |flag: &str, text: Option<&str>| -> anyhow::Result<Option<u64>> {
            text.map(|t| {
                rfc3339_to_millis(t).with_context(|| {
                    format!("{flag} `{t}` is not an RFC 3339 time, e.g. 2026-11-01T00:00:00Z")
                })
            })
            .transpose()
        };
        Ok(Filter {
            from_ms: at("--from", from)?,
            to_ms: at("--to", to)?,
            user_sid: user,
        })
    }

    fn keeps(&self, at: &str, user: Option<&str>) -> bool {
        let ms = rfc3339_to_millis(at).unwrap_or(0);
        self.from_ms.is_none_or(|from| ms >= from)
            && self.to_ms.is_none_or(|to| ms < to)
            && self
                .user_sid
                .as_deref()
                .is_none_or(|want| user == Some(want))
    }
}

/// Where pages come from.
enum Pages {
    Ledger(Store),
    Server(ServerFile, AdminSecret),
}

impl Pages {
    async fn page<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: Value,
        local: impl FnOnce(&Store) -> Result<Page<T>, StoreError> + Send + 'static,
    ) -> anyhow::Result<Page<T>> {
        match self {
            Pages::Ledger(store) => Ok(store.on_blocking_thread(local).await?),
            Pages::Server(file, secret) => {
                let result = server_file::call_with(file, secret, method, params).await?;
                Ok(serde_json::from_value(result)?)
            }
        }
    }
}

/// One cell of a row.
enum Cell {
    Text(String),
    Int(i64),
    Null,
}

impl Cell {
    fn opt(text: Option<String>) -> Cell {
        text.map_or(Cell::Null, Cell::Text)
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Null => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(t) => json!(t),
            Cell::Int(n) => json!(n),
            Cell::Null => Value::Null,
        }
    }
}

/// Cents as a decimal amount: `-1234` → `-12.34`.
pub fn decimal(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The column names of `what`, in order.
pub fn columns(what: What) -> &'static [&'static str] {
    match what {
        What::Users => &[
            "user_sid",
            "display_name",
            "email",
            "created_at",
            "balance_cents",
            "balance",
            "paid_cents",
            "paid",
            "consumed_cents",
            "consumed",
        ],
        What::Payments => &[
            "payment_id",
            "user_sid",
            "amount_cents",
            "amount",
            "kind",
            "reference",
            "created_at",
        ],
        What::Consumed => &[
            "idempotency_key",
            "user_sid",
            "cost_cents",
            "cost",
            "resource",
            "applied_at",
            "node_name",
            "file_path",
            "commit_sha",
        ],
        What::Rejected => &[
            "id",
            "reason",
            "node_name",
            "file_path",
            "blob_id",
            "commit_sha",
            "record_index",
            "record_count",
            "idempotency_key",
            "user_sid",
            "cost_cents",
            "cost",
            "detail",
            "first_seen_at",
        ],
    }
}

fn money(cents: i64) -> [Cell; 2] {
    [Cell::Int(cents), Cell::Text(decimal(cents))]
}

fn user_row(u: UserBilling) -> Vec<Cell> {
    let mut row = vec![
        Cell::Text(u.user_sid),
        Cell::opt(u.display_name),
        Cell::opt(u.email),
        Cell::Text(u.created_at),
    ];
    row.extend(money(u.credit_balance_cents));
    row.extend(money(u.total_paid_cents));
    row.extend(money(u.total_consumed_cents));
    row
}

fn payment_row(p: Payment) -> Vec<Cell> {
    let mut row = vec![Cell::Text(p.payment_id), Cell::Text(p.user_sid)];
    row.extend(money(p.amount_cents));
    row.extend([
        Cell::Text(p.kind),
        Cell::opt(p.reference),
        Cell::Text(p.created_at),
    ]);
    row
}

fn consumed_row(c: ConsumedRecord) -> Vec<Cell> {
    let mut row = vec![Cell::Text(c.idempotency_key), Cell::Text(c.user_sid)];
    row.extend(money(c.cost_cents));
    row.extend([
        Cell::opt(c.resource),
        Cell::Text(c.applied_at),
        Cell::Text(c.node_name),
        Cell::Text(c.file_path),
        Cell::Text(c.commit_sha),
    ]);
    row
}

fn rejected_row(r: RejectedItem) -> Vec<Cell> {
    let reason = serde_json::to_value(r.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut row = vec![
        Cell::Text(r.id),
        Cell::Text(reason),
        Cell::Text(r.node_name),
        Cell::Text(r.file_path),
        Cell::Text(r.blob_id),
        Cell::Text(r.commit_sha),
        r.record_index
            .map_or(Cell::Null, |i| Cell::Int(i64::from(i))),
        r.record_count.map_or(Cell::Null, |n| {
            Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
        }),
        Cell::opt(r.idempotency_key),
        Cell::opt(r.user_sid),
    ];
    match r.cost_cents {
        Some(cents) => row.extend(money(cents)),
        None => row.extend([Cell::Null, Cell::Null]),
    }
    row.extend([Cell::Text(r.detail), Cell::Text(r.first_seen_at)]);
    row
}

/// Writes rows as CSV (RFC 4180) or JSON Lines.
struct Sink<W: Write> {
    format: Format,
    columns: &'static [&'static str],
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
}

impl<W: Write> Sink<W> {
    fn new(format: Format, what: What, out: W) -> anyhow::Result<Self> {
        let columns = columns(what);
        Ok(match format {
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                writer.write_record(columns)?;
                Sink {
                    format,
                    columns,
                    csv: Some(writer),
                    out: None,
                }
            }
            Format::Jsonl => Sink {
                format,
                columns,
                csv: None,
                out: Some(out),
            },
        })
    }

    fn row(&mut self, cells: Vec<Cell>) -> anyhow::Result<()> {
        match self.format {
            Format::Csv => {
                let writer = self.csv.as_mut().expect("csv sink");
                writer.write_record(cells.iter().map(Cell::csv))?;
            }
            Format::Jsonl => {
                let object: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(&cells)
                    .map(|(name, cell)| (name.to_string(), cell.json()))
                    .collect();
                let out = self.out.as_mut().expect("jsonl sink");
                serde_json::to_writer(&mut *out, &object)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some(mut writer) = self.csv {
            writer.flush()?;
        }
        if let Some(mut out) = self.out {
            out.flush()?;
        }
        Ok(())
    }
}

/// Exports `what` of `ledger` to `out`; returns the rows written.
pub async fn export(
    ledger: &LedgerLocation,
    secret: impl FnOnce() -> anyhow::Result<AdminSecret>,
    what: What,
    format: Format,
    filter: &Filter,
    out: impl Write,
) -> anyhow::Result<u64> {
    if filter.user_sid.is_some() && what == What::Rejected {
        bail!("--user does not apply to --what rejected");
    }
    let pages = open(ledger, secret).await?;
    let mut sink = Sink::new(format, what, out)?;
    let mut rows = 0u64;
    let mut cursor: Option<String> = None;
    let user = filter.user_sid.clone();
    loop {
        let (cells, next): (Vec<Vec<Cell>>, Option<String>) = match what {
            What::Users => {
                let c = cursor.clone();
                let page: Page<UserBilling> = pages
                    .page(
                        "list_users",
                        json!({"cursor": c, "limit": PAGE}),
                        move |s| s.list_users(c.as_deref(), PAGE),
                    )
                    .await?;
                let keep = page
                    .items
                    .into_iter()
                    .filter(|u| filter.keeps(&u.created_at, Some(&u.user_sid)));
                (keep.map(user_row).collect(), page.next_cursor)
            }
            What::Payments => {
                let (c, u) = (cursor.clone(), user.clone());
                let page: Page<Payment> = pages
                    .page(
                        "list_payments",
                        json!({"user_sid": u, "cursor": c, "limit": PAGE}),
                        move |s| s.list_payments(u.as_deref(), c.as_deref(), PAGE),
                    )
                    .await?;
                let keep = page
                    .items
                    .into_iter()
                    .filter(|p| filter.keeps(&p.created_at, Some(&p.user_sid)));
                (keep.map(payment_row).collect(), page.next_cursor)
            }
            What::Consumed => {
                let (c, u) = (cursor.clone(), user.clone());
                let page: Page<ConsumedRecord> = pages
                    .page(
                        "list_consumed",
                        json!({"user_sid": u, "cursor": c, "limit": PAGE}),
                        move |s| s.list_consumed(u.as_deref(), c.as_deref(), PAGE),
                    )
                    .await?;
                let keep = page
                    .items
                    .into_iter()
                    .filter(|r| filter.keeps(&r.applied_at, Some(&r.user_sid)));
                (keep.map(consumed_row).collect(), page.next_cursor)
            }
            What::Rejected => {
                let c = cursor.clone();
                let page: Page<RejectedItem> = pages
                    .page(
                        "list_rejected",
                        json!({"cursor": c, "limit": PAGE}),
                        move |s| s.list_rejected(c.as_deref(), PAGE),
                    )
                    .await?;
                let keep = page
                    .items
                    .into_iter()
                    .filter(|r| filter.keeps(&r.first_seen_at, None));
                (keep.map(rejected_row).collect(), page.next_cursor)
            }
        };
        for row in cells {
            sink.row(row)?;
            rows += 1;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    sink.finish()?;
    Ok(rows)
}

/// The ledger, or the server that holds it.
async fn open(
    ledger: &LedgerLocation,
    secret: impl FnOnce() -> anyhow::Result<AdminSecret>,
) -> anyhow::Result<Pages> {
    if !ledger.exists() {
        bail!(
            "there is no ledger at {}; pass the data dir of the aggregator with --data-dir (or \
             its database with --ledger-url)",
            ledger.describe()
        );
    }
    let options = StoreOptions {
        init: false,
        check: false,
        ..StoreOptions::default()
    };
    let location = ledger.clone();
    let opened = tokio::task::spawn_blocking(move || location.open(options)).await?;
    match (opened, ledger) {
        (Ok(store), _) => Ok(Pages::Ledger(store)),
        (Err(e), LedgerLocation::Redb(path))
            if matches!(e.downcast_ref(), Some(StoreError::Locked { .. })) =>
        {
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let file = server_file::read(dir).map_err(anyhow::Error::msg)?;
            Ok(Pages::Server(file, secret()?))
        }
        (Err(e), _) => Err(e),
    }
}

/// Whether `e` is the reader of stdout going away (`export … | head`): the
/// export then simply ends.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<csv::Error>().map(csv::Error::kind) {
                Some(csv::ErrorKind::Io(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Where `export` writes: a file, or stdout.
pub fn output(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the export to {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}
