//! Command line: the dashboard flags and the non-interactive subcommands for
//! scripts and cron, which call the same RPC as the dashboard. Everything they
//! print goes through [`line`] or [`json_line`], which keep control characters
//! from the server off the terminal ([`crate::safe`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use billing_api::rpc::BillingApiClient;
use billing_api::types::{
    MAX_PAGE_LIMIT, Page, Payment, RejectedItem, UserBilling, UserFilter, UserSort,
};
use billing_api::{Event, EventType};
use clap::{Args, Parser, Subcommand};
use jsonrpsee::core::client::Error as ClientError;
use serde::Serialize;

use crate::app::ErrorKind;
use crate::config::{Connection, SECRET_ENV, Secret, UNREACHABLE_ADVICE};
use crate::fetch::classify;
use crate::safe;
use crate::{event_text, format};

#[derive(Debug, Parser)]
#[command(
    name = "tui-admin",
    version,
    about = "Terminal dashboard for billing operators; without a subcommand it opens the live dashboard.",
    after_help = "The admin secret is read from BILLING_ADMIN_SECRET if set, else from --secret-file."
)]
pub struct Cli {
    /// JSON-RPC URL of the aggregator.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// File holding the admin secret (the demo writes ./demo-data/admin.secret).
    #[arg(long, global = true, default_value = "./demo-data/admin.secret")]
    pub secret_file: PathBuf,
    /// How often the dashboard polls (e.g. 2s, 500ms, 1m); the subcommands do not poll.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub refresh: Duration,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one aggregation pass on the server and prints its summary
    /// (exit 1 if it failed, 2 if some nodes had errors).
    Aggregate {
        /// Run exactly one pass (required; the server schedules the others).
        #[arg(long)]
        once: bool,
        /// Print the pass summary as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Lists users with their balances, by sid or in another order, filtered
    /// on the server.
    Users {
        #[command(flatten)]
        query: UserQueryArgs,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Lists payments, newest first.
    Payments {
        /// Only this user's payments.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Prints the aggregator's health, last pass and per-node state.
    State {
        /// Print the state as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Lists held and rejected records and files, newest first.
    Rejected(ListArgs),
    /// Lists events (balance alerts, failed passes, stale nodes), newest
    /// first, with the state of their webhook deliveries.
    Events {
        /// Only events of this type: balance.low, balance.overdrawn,
        /// balance.recovered, aggregation.failed, node.stale or node.recovered.
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_event_type)]
        kind: Option<EventType>,
        #[command(flatten)]
        list: ListArgs,
    },
}

fn parse_event_type(text: &str) -> Result<EventType, String> {
    EventType::parse(text).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!("not an event type; one of: {}", known.join(", "))
    })
}

/// Every `list_users` order, by its name on the wire.
const USER_SORTS: [UserSort; 4] = [
    UserSort::Sid,
    UserSort::BalanceAsc,
    UserSort::BalanceDesc,
    UserSort::ConsumedDesc,
];

fn parse_user_sort(text: &str) -> Result<UserSort, String> {
    USER_SORTS
        .into_iter()
        .find(|sort| sort.as_str() == text)
        .ok_or_else(|| {
            let known: Vec<&str> = USER_SORTS.iter().map(|s| s.as_str()).collect();
            format!("not an order; one of: {}", known.join(", "))
        })
}

/// `tui-admin users`: the `sort` and `filter` of `list_users`.
#[derive(Debug, Args)]
pub struct UserQueryArgs {
    /// Order: sid (the default), balance_asc (lowest balance first),
    /// balance_desc or consumed_desc (most consumed first).
    #[arg(long, value_name = "ORDER", value_parser = parse_user_sort)]
    pub sort: Option<UserSort>,
    /// Only users whose sid, name or email holds this text, ignoring case.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only overdrawn users (balance below zero).
    #[arg(long)]
    pub overdrawn: bool,
    /// Only users whose balance is below this many cents (strictly).
    #[arg(long, value_name = "CENTS", allow_negative_numbers = true)]
    pub below: Option<i64>,
}

impl UserQueryArgs {
    /// The `filter` param; `None` when no filter flag is given.
    pub fn filter(&self) -> Option<UserFilter> {
        let filter = UserFilter {
            text: self.search.clone(),
            below_cents: self.below,
            overdrawn: self.overdrawn.then_some(true),
            ..UserFilter::default()
        };
        (filter != UserFilter::default()).then_some(filter)
    }

    /// Whether a cursor printed for more rows is only valid with these flags.
    fn is_set(&self) -> bool {
        self.sort.is_some() || self.filter().is_some()
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an array of items) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rows per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Start at this cursor (printed on stderr after a page with more rows).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursors to the end; rows are printed page by page, never held all at once.
    #[arg(long)]
    pub all: bool,
}

impl Cli {
    /// The server connection, with the secret from the env or the file.
    pub fn connection(&self) -> anyhow::Result<Connection> {
        let secret = Secret::resolve(std::env::var(SECRET_ENV).ok(), &self.secret_file)?;
        Ok(Connection {
            url: self.url.clone(),
            secret,
        })
    }
}

/// Turns a client error into a message that says what to do.
pub fn explain(conn: &Connection, what: &str, err: ClientError) -> anyhow::Error {
    let fetch = classify(&err);
    match fetch.kind {
        ErrorKind::Unauthorized => anyhow!(
            "{what}: the server at {} rejected the admin secret from {} (HTTP 401); check that it \
             is the secret the server was started with, then pass --secret-file or set {SECRET_ENV}",
            conn.url,
            conn.secret.source
        ),
        ErrorKind::Unreachable => anyhow!(
            "{what}: cannot reach the server at {} ({}); {UNREACHABLE_ADVICE}",
            conn.url,
            fetch.message
        ),
        ErrorKind::Server => anyhow!("{what}: {}", fetch.message),
    }
}

/// Awaits one RPC call; its error says `what` failed and what to do ([`explain`]).
async fn call<T>(
    conn: &Connection,
    what: &str,
    rpc: impl Future<Output = Result<T, ClientError>>,
) -> anyhow::Result<T> {
    rpc.await.map_err(|e| explain(conn, what, e))
}

/// Runs one subcommand; the exit code follows the `rpc-server aggregate` convention.
pub async fn run(conn: &Connection, command: Command) -> anyhow::Result<ExitCode> {
    let client = conn.http_client()?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Aggregate { once, json } => {
            if !once {
                return Err(anyhow!(
                    "tui-admin aggregate only triggers single passes; run `tui-admin aggregate --once`"
                ));
            }
            let summary = call(conn, "aggregate_now failed", client.aggregate_now()).await?;
            if json {
                json_line(&mut out, &summary)?;
            } else {
                for text in crate::views::aggregator::summary_lines(&summary) {
                    line(&mut out, &text)?;
                }
            }
            if !summary.errors.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::State { json } => {
            let state = call(conn, "aggregator_state failed", client.aggregator_state()).await?;
            if json {
                json_line(&mut out, &state)?;
            } else {
                line(
                    &mut out,
                    &format!(
                        "health: {}",
                        crate::views::overview::health_text(state.health).0
                    ),
                )?;
                match &state.last_run {
                    Some(run) => {
                        for text in crate::views::aggregator::summary_lines(run) {
                            line(&mut out, &text)?;
                        }
                    }
                    None => line(&mut out, "no pass has run yet")?,
                }
                line(
                    &mut out,
                    &format!(
                        "{:<16} {:<8} {:<24} {:>10} {:<6} LAST ERROR",
                        "NODE", "COMMIT", "LAST RUN", "CONSUMED", "STATUS"
                    ),
                )?;
                for n in &state.nodes {
                    let text = format!(
                        "{:<16} {:<8} {:<24} {:>10} {:<6} {}",
                        n.node_name,
                        n.last_commit_sha
                            .as_deref()
                            .map(format::short_sha)
                            .unwrap_or("-"),
                        n.last_run_at.as_deref().unwrap_or("never"),
                        n.records_consumed_total,
                        match n.status {
                            billing_api::types::NodeStatus::Ok => "ok",
                            billing_api::types::NodeStatus::Error => "error",
                        },
                        n.last_error.as_deref().unwrap_or("")
                    );
                    line(&mut out, &text)?;
                }
            }
        }
        Command::Users { query, list } => {
            let (sort, filter) = (query.sort, query.filter());
            let again = if query.is_set() {
                " with the same --sort, --search, --overdrawn and --below"
            } else {
                ""
            };
            print_pages(
                &mut out,
                &list,
                |cursor, limit| {
                    let users = client.list_users(cursor, Some(limit), sort, filter.clone());
                    call(conn, "list_users failed", users)
                },
                &users_header(),
                again,
                user_row,
            )
            .await?;
        }
        Command::Payments { user, list } => {
            print_pages(
                &mut out,
                &list,
                |cursor, limit| {
                    let payments = client.list_payments(user.clone(), cursor, Some(limit));
                    call(conn, "list_payments failed", payments)
                },
                PAYMENTS_HEADER,
                "",
                payment_row,
            )
            .await?;
        }
        Command::Rejected(list) => {
            print_pages(
                &mut out,
                &list,
                |cursor, limit| {
                    let rejected = client.list_rejected(cursor, Some(limit));
                    call(conn, "list_rejected failed", rejected)
                },
                REJECTED_HEADER,
                "",
                rejected_row,
            )
            .await?;
        }
        Command::Events { kind, list } => {
            // Times until the next attempts are from when the command ran.
            let now = crate::event::now_millis();
            print_pages(
                &mut out,
                &list,
                |cursor, limit| {
                    let events = client.list_events(cursor, Some(limit), kind);
                    call(conn, "list_events failed", events)
                },
                EVENTS_HEADER,
                "",
                |e| event_row(e, now),
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The header of `tui-admin users`, laid out like [`user_row`].
fn users_header() -> String {
    format!(
        "{:<10} {:>12} {:>13} {:>13}  {}",
        "SID", "BALANCE", "PAID", "CONSUMED", "NAME / EMAIL"
    )
}

fn user_row(u: &UserBilling) -> String {
    format!(
        "{:<10} {:>12} {:>13} {:>13}  {} {}",
        u.user_sid,
        format::cents(u.credit_balance_cents),
        format::cents(u.total_paid_cents),
        format::cents(u.total_consumed_cents),
        u.display_name.as_deref().unwrap_or("-"),
        u.email
            .as_deref()
            .map(|e| format!("<{e}>"))
            .unwrap_or_default()
    )
}

const PAYMENTS_HEADER: &str = "CREATED                   USER             AMOUNT  KIND        PAYMENT ID            REFERENCE";

fn payment_row(p: &Payment) -> String {
    format!(
        "{:<25} {:<10} {:>12}  {:<10}  {:<20}  {}",
        p.created_at,
        p.user_sid,
        format::cents(p.amount_cents),
        p.kind,
        p.payment_id,
        p.reference.as_deref().unwrap_or("")
    )
}

const REJECTED_HEADER: &str = "FIRST SEEN                REASON        NODE          FILE                                         #     DETAIL";

fn rejected_row(r: &RejectedItem) -> String {
    format!(
        "{:<25} {:<13} {:<13} {:<44} {:<5} {}",
        r.first_seen_at,
        r.reason.as_str(),
        r.node_name,
        r.file_path,
        r.record_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "file".into()),
        r.detail
    )
}

const EVENTS_HEADER: &str = "CREATED                   ID                TYPE               SUBJECT      DETAILS · DELIVERY";

fn event_row(e: &Event, now_millis: u64) -> String {
    format!(
        "{:<25} {:<17} {:<18} {:<12} {} · {}",
        e.created_at,
        e.id,
        e.kind.as_str(),
        event_text::subject(e),
        event_text::details(e),
        event_text::delivery(&e.deliveries, now_millis)
    )
}

/// Prints one line of text; control characters from the server in it are
/// written visibly (`\u{1b}`), never raw.
fn line(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "{}", safe::visible(text))
}

/// Prints a value as pretty JSON: valid JSON with the real values, with the
/// control characters `serde_json` leaves raw escaped as `\uXXXX`.
fn json_line(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding the answer as JSON")?;
    writeln!(out, "{}", safe::json(&text))?;
    Ok(())
}

/// Prints one page, or with `--all` every page, as a table or a JSON array,
/// writing each page before fetching the next. `again` says which flags the
/// printed cursor needs besides itself (it is only valid for the same query).
async fn print_pages<T, F, Fut>(
    out: &mut impl Write,
    args: &ListArgs,
    mut fetch: F,
    header: &str,
    again: &str,
    row: impl Fn(&T) -> String,
) -> anyhow::Result<()>
where
    T: Serialize,
    F: FnMut(Option<String>, u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Page<T>>>,
{
    if args.limit == 0 || args.limit > MAX_PAGE_LIMIT {
        return Err(anyhow!(
            "--limit {} is out of range; use 1..={MAX_PAGE_LIMIT}",
            args.limit
        ));
    }
    let mut cursor = args.cursor.clone();
    let mut first = true;
    let mut started = false;
    loop {
        let page = fetch(cursor.clone(), args.limit).await?;
        // The header only once the server answered, so an error prints alone.
        if !started {
            started = true;
            if args.json {
                write!(out, "[")?;
            } else {
                line(out, header)?;
            }
        }
        for item in &page.items {
            if args.json {
                let sep = if first { "\n" } else { ",\n" };
                let text = serde_json::to_string(item).context("encoding a row as JSON")?;
                write!(out, "{sep}{}", safe::json(&text))?;
            } else {
                line(out, &row(item))?;
            }
            first = false;
        }
        out.flush()?;
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            Some(next) => {
                // A filtered page reads a bounded number of rows on the
                // server, so it may end empty with more to read.
                let what = if page.items.is_empty() {
                    "no match in the rows read so far; to read on"
                } else {
                    "more rows"
                };
                eprintln!(
                    "{what}: pass --cursor {}{again} (or --all)",
                    safe::visible(&next)
                );
                break;
            }
            None => break,
        }
    }
    if args.json {
        writeln!(out, "\n]")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
