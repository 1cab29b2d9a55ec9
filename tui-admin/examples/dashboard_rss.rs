//! Peak memory of the dashboard against a real (large) server: the real
//! `App`, `Fetcher`, WebSocket subscription and run loop, drawing into a
//! 120x40 `TestBackend`, visit every view, page through 20 pages of users and
//! open a user. Prints `FIGURE tui_rss …` (target: ≤ 30 MB with 1,000,000 users
//! on the server). Used by `scripts/bench.sh` while its big server runs:
//!   BENCH_URL=http://127.0.0.1:PORT BILLING_ADMIN_SECRET=... \
//!     cargo run --release -p tui-admin --example dashboard_rss

use std::process::ExitCode;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use tui_admin::app::{Action, App, View};
use tui_admin::config::{Connection, SECRET_ENV, Secret};
use tui_admin::event::{Event, now_millis};
use tui_admin::fetch::{Fetcher, spawn_run_subscription};

const TARGET_MB: u64 = 30;
const PAGES: usize = 20;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Harness {
    app: App,
    terminal: Terminal<TestBackend>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    fetcher: Fetcher,
}

impl Harness {
    /// Applies `action`, then runs the loop until `done` holds (at most 30 s).
    async fn step(&mut self, action: Action, done: impl Fn(&App) -> bool) -> anyhow::Result<()> {
        self.tx.send(Event::Action(action))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let fetcher = self.fetcher.clone();
            let slice = tui_admin::run::run(&mut self.terminal, &mut self.app, &mut self.rx, |c| {
                fetcher.execute(c)
            });
            let _ = tokio::time::timeout(Duration::from_millis(50), slice).await;
            if done(&self.app) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the dashboard did not get there within 30 s (state: {:?})",
                    self.app.conn
                );
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let url = std::env::var("BENCH_URL")
        .map_err(|_| anyhow::anyhow!("set BENCH_URL to the server's http://host:port"))?;
    let file =
        std::env::var("BENCH_SECRET_FILE").unwrap_or_else(|_| "./demo-data/admin.secret".into());
    let secret = Secret::resolve(std::env::var(SECRET_ENV).ok(), std::path::Path::new(&file))?;
    let conn = Connection {
        url: url.clone(),
        secret,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let fetcher = Fetcher::new(conn.http_client()?, tx.clone());
    let mut app = App::new(&url, &conn.secret.source, 2000);
    for call in app.start(now_millis()) {
        fetcher.execute(call);
    }
    spawn_run_subscription(conn, tx.clone());
    let mut h = Harness {
        app,
        terminal: Terminal::new(TestBackend::new(120, 40))?,
        tx,
        rx,
        fetcher,
    };
    h.step(Action::Refresh, |a| {
        a.overview.totals.data.is_some() && a.overview.runs.data.is_some()
    })
    .await?;
    for view in [
        View::Aggregator,
        View::Payments,
        View::Rejected,
        View::Events,
        View::Users,
    ] {
        h.step(Action::ShowView(view), move |a| match view {
            View::Aggregator => a.aggregator_state.data.is_some(),
            View::Payments => a.payments.list.loaded,
            View::Rejected => a.rejected.list.loaded,
            View::Events => a.events.list.loaded,
            _ => a.users.list.loaded,
        })
        .await?;
    }
    for page in 1..=PAGES {
        if h.app.users.list.next_cursor.is_none() {
            break;
        }
        h.step(Action::NextPage, move |a| {
            a.users.list.page_index() == page && !a.users.list.loading
        })
        .await?;
    }
    h.step(Action::Open, |a| {
        a.detail.as_ref().is_some_and(|d| d.data.data.is_some())
    })
    .await?;
    let total = h
        .app
        .overview
        .totals
        .data
        .as_ref()
        .map(|o| o.total_users)
        .unwrap_or(0);
    let rss_mb = peak_rss_kb() / 1024;
    println!(
        "FIGURE tui_rss server_users={total} pages_visited={} rows_held={} peak_rss_mb={rss_mb} (target: <= {TARGET_MB} MB)",
        h.app.users.list.page_index() + 1,
        h.app.users.list.items.len(),
    );
    Ok(if rss_mb <= TARGET_MB {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
