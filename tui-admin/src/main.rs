//! `tui-admin`: parse the command line, then either run a subcommand or open
//! the live dashboard. The logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tokio::sync::mpsc;
use tui_admin::app::App;
use tui_admin::cli::{self, Cli};
use tui_admin::config;
use tui_admin::event::{self, Event};
use tui_admin::fetch::{self, Fetcher};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            // Errors quote server messages: no raw control character may pass.
            eprintln!("error: {}", tui_admin::safe::visible(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Cli) -> anyhow::Result<ExitCode> {
    let conn = args.connection()?;
    if let Some(command) = args.command.take() {
        return cli::run(&conn, command).await;
    }
    let client = conn.http_client()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let fetcher = Fetcher::new(client, tx.clone())
        .with_check_client(conn.http_client_with(config::CHECK_TIMEOUT)?);
    let mut app = App::new(
        &conn.url,
        &conn.secret.source,
        args.refresh.as_millis() as u64,
    );
    for call in app.start(event::now_millis()) {
        fetcher.execute(call);
    }
    event::spawn_input(tx.clone());
    event::spawn_ticker(tx.clone());
    event::spawn_signals(tx.clone());
    fetch::spawn_run_subscription(conn.clone(), tx);

    // ratatui::init installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::init();
    let result =
        tui_admin::run::run(&mut terminal, &mut app, &mut rx, |c| fetcher.execute(c)).await;
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}
