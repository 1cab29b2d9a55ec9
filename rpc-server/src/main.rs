//! `rpc-server`: the billing aggregator's command line. All logic lives in the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use billing_server::config::{self, Cli, Command, LedgerLocation, LogFormat};
use billing_server::store::StoreError;
use billing_server::{backup, demo, export, reconcile, server, simulate};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.log_format() {
        Ok(format) => init_logging(format),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    ignore_file_size_signal();
    match command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
            let listener = server::bind(settings.listen)?;
            server::serve(settings, listener, announce, server::shutdown_signal()).await?;
        }
        Command::Aggregate(args) => {
            let (settings, _) = args.source.resolve()?;
            let summary = server::aggregate_once(&settings).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", demo::summary_text(&summary));
            }
            if !summary.errors.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Simulate(args) => {
            let report = simulate::simulate(&args)?;
            println!(
                "{} commits, {} files, {} records, {} cents, hours {}..{}, head {}",
                report.commits,
                report.files,
                report.records,
                report.total_cost_cents,
                report.first_hour,
                report.last_hour,
                report.head
            );
        }
        Command::Demo(args) => demo::run(args, server::shutdown_signal()).await?,
        Command::Verify(args) => {
            let ((ledger, secret_file), repair) = (args.target.resolve()?, args.repair);
            // The ledger client blocks: off the async runtime's threads.
            let location = ledger.clone();
            let local =
                tokio::task::spawn_blocking(move || server::verify(&location, repair)).await?;
            let (report, repaired) = match (local, &ledger) {
                // A server holds the redb file: check a snapshot it sends.
                (Err(e), LedgerLocation::Redb(path))
                    if !repair && matches!(e.downcast_ref(), Some(StoreError::Locked { .. })) =>
                {
                    let report =
                        backup::verify_via_server(path, || config::admin_secret(secret_file))
                            .await?;
                    (report, None)
                }
                (local, _) => local?,
            };
            if args.json {
                let mut value = serde_json::to_value(&report)?;
                value["repaired_counters"] = serde_json::to_value(repaired)?;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", server::verify_text(&report, repaired.as_ref()));
            }
            if !report.consistent {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Reconcile(args) => {
            let (settings, file) = args.source.resolve()?;
            let secret_file = args.admin_secret_file.or(file.admin_secret_file);
            let report =
                reconcile::command(&settings, || config::admin_secret(secret_file)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", reconcile::text(&report));
            }
            if !report.consistent {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Export(args) => {
            let (ledger, secret_file) = args.target.resolve()?;
            let filter = export::Filter::new(args.from.as_deref(), args.to.as_deref(), args.user)?;
            let out = export::output(args.output.as_ref())?;
            let rows = match export::export(
                &ledger,
                || config::admin_secret(secret_file),
                args.what,
                args.format,
                &filter,
                out,
            )
            .await
            {
                Err(e) if export::is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
                rows => rows?,
            };
            if args.output.is_some() {
                eprintln!("exported {rows} rows");
            }
        }
        Command::Backup(args) => {
            let (ledger, secret_file) = args.target.resolve()?;
            let done =
                backup::backup(&ledger, &args.to, || config::admin_secret(secret_file)).await?;
            print!("{}", backup::backup_text(&done));
        }
        Command::Restore(args) => {
            let ledger = LedgerLocation::Redb(args.data_dir.join(config::LEDGER_FILE));
            let report = backup::restore(args.from, &ledger, args.force).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", backup::restore_text(&report));
            }
            if !report.verify.consistent {
                return Ok(ExitCode::from(3));
            }
        }
        Command::MigrateLedger(args) => {
            let (from, to) = args.resolve()?;
            let report = server::migrate_ledger(from, to).await?;
            print!("{}", server::migrate_text(&report));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr; colour only when stderr is a terminal, so files and
/// pipes get plain text, or one JSON object per line with `--log-format json`.
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init()
        }
        LogFormat::Json => logs.json().init(),
    }
}

/// A write past a file size limit (`ulimit -f`) raises SIGXFSZ, which kills
/// the process by default; caught, the write fails with EFBIG instead and the
/// ledger reports and recovers from it like from a full disk.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let kind = SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw());
        // The handler stays installed after the stream is dropped.
        if let Err(e) = signal(kind) {
            tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file size limit would stop the server");
        }
    }
}

/// Prints the bound address on stdout, so scripts starting with port 0 can read it.
fn announce(at: server::Listening) {
    println!("listening on http://{}", at.api);
    if let Some(metrics) = at.metrics {
        println!("metrics on http://{metrics}/metrics");
    }
    let _ = std::io::stdout().flush();
}
