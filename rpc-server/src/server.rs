//! What the `serve` and `aggregate` commands do, as library functions the
//! binary and the tests call.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use billing_api::AggregateSummary;
use tracing::{info, warn};

use crate::aggregate::Aggregator;
use crate::config::{LedgerLocation, LedgerSettings, ServeSettings, SourceSpec};
use crate::source::{Source, git::GitSource};
use crate::store::migrate::{self, MigrationReport};
use crate::store::{Depth, LedgerCounts, Store, StoreOptions, VerifyReport};

/// Opens the configured billing repo.
pub fn open_source(settings: &LedgerSettings) -> anyhow::Result<Source> {
    match &settings.source {
        SourceSpec::Git { repo, branch } => {
            let source = GitSource::open(repo, branch, &settings.mirror_dir())?;
            Ok(Source::Git(source))
        }
        SourceSpec::Forge {
            url,
            repo,
            branch,
            token,
        } => {
            let source = crate::source::forge::ForgeSource::open(url, repo, branch, token.clone())?;
            Ok(Source::Forge(source))
        }
    }
}

/// Opens (creating if needed) the ledger: in the data dir, or in PostgreSQL.
pub fn open_store(settings: &LedgerSettings) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data dir {}", settings.data_dir.display()))?;
    settings.ledger.open(settings.store)
}

/// Opens the source, then the ledger, and builds the aggregator: a mistyped
/// repo fails before any ledger is created.
pub fn open_aggregator(settings: &LedgerSettings) -> anyhow::Result<Aggregator> {
    let source = open_source(settings)?;
    let store = open_store(settings)?;
    Ok(Aggregator::with_limits(
        store,
        source,
        settings.max_file_bytes,
        settings.decode_limits,
    ))
}

/// [`open_aggregator`] on a blocking thread: opening the ledger and the repo
/// does blocking I/O (a PostgreSQL ledger's client must not run on the async
/// runtime's threads at all).
pub async fn open_aggregator_async(settings: &LedgerSettings) -> anyhow::Result<Aggregator> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || open_aggregator(&settings))
        .await
        .context("opening the ledger and the repo stopped unexpectedly")?
}

/// One pass without a server (`rpc-server aggregate --once`).
pub async fn aggregate_once(settings: &LedgerSettings) -> anyhow::Result<AggregateSummary> {
    let aggregator = open_aggregator_async(settings).await?;
    // The error itself, not its text: callers and `{:#}` see its cause chain.
    Ok(aggregator.run_pass().await?)
}

/// Where a server listens (port 0 resolved to a real port).
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The JSON-RPC API.
    pub api: SocketAddr,
    /// `GET /metrics`, when `--metrics-listen` is set.
    pub metrics: Option<SocketAddr>,
}

/// Binds the JSON-RPC address (`--listen`), for [`serve`].
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen on {addr}; is another server running there? pick another --listen address"
        )
    })
}

/// Serves the JSON-RPC API on `listener` until `shutdown` resolves, with a
/// first pass, the scheduler, and the metrics endpoint if configured.
/// `on_listening` gets the addresses.
pub async fn serve(
    settings: ServeSettings,
    listener: std::net::TcpListener,
    on_listening: impl FnOnce(Listening),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let aggregator = open_aggregator_async(&settings.ledger).await?;
    aggregator.set_replica_name(&settings.replica_name);
    aggregator.set_stale_after(settings.stale_after);
    {
        // A ledger that refuses writes (inconsistent counters) still serves reads:
        // the threshold it holds stays in force until it is repaired.
        let cents = settings.low_balance_cents;
        if let Err(e) = crate::blocking::with_store(aggregator.store(), move |s| {
            s.set_low_balance_default(cents, crate::clock::now_ms())
        })
        .await
        {
            warn!(error = %e, low_balance_cents = cents, "cannot store --low-balance-cents in \
                  the ledger; the threshold stored before stays in force");
        }
    }
    let deliveries = settings.webhooks.clone().map(|webhooks| {
        aggregator.set_webhook_urls(webhooks.urls.clone());
        tokio::spawn(crate::webhooks::worker::run(aggregator.clone(), webhooks))
    });
    let metrics = match settings.metrics_listen {
        Some(addr) => {
            let listener = crate::metrics::http::bind(addr).await?;
            let addr = crate::metrics::http::local_addr(&listener)?;
            info!(%addr, "serving Prometheus metrics at GET /metrics");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(crate::metrics::http::serve(
                listener,
                aggregator.clone(),
                async move {
                    let _ = stopped.await;
                },
            ));
            Some((addr, stop, task))
        }
        None => None,
    };
    let (addr, handle) =
        crate::rpc::start(listener, aggregator.clone(), settings.secret.clone()).await?;
    info!(%addr, source = ?settings.ledger.source, ledger = ?settings.ledger.ledger, replica = %settings.replica_name, "serving JSON-RPC");
    on_listening(Listening {
        api: addr,
        metrics: metrics.as_ref().map(|(addr, _, _)| *addr),
    });
    // How `rpc-server backup` finds this server, which holds the redb file.
    let _server_file = match &settings.ledger.ledger {
        LedgerLocation::Redb(path) => {
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            crate::server_file::write(dir, addr)
                .map_err(|e| {
                    warn!(dir = %dir.display(), error = %e, "cannot write server.json; \
                          `rpc-server backup` will not find this server")
                })
                .ok()
        }
        LedgerLocation::Postgres { .. } => None,
    };

    // The first pass and the scheduler run beside the API; a failing repo does not stop serving.
    let background = {
        let aggregator = aggregator.clone();
        let interval = settings.interval;
        tokio::spawn(async move {
            if let Err(e) = aggregator.run_pass().await {
                warn!(error = %e, "initial aggregation pass failed");
            }
            match interval {
                Some(interval) => crate::scheduler::run(aggregator, interval).await,
                None => info!("scheduler disabled (--interval 0)"),
            }
        })
    };

    shutdown.await;
    info!("shutting down");
    background.abort();
    if let Some(deliveries) = deliveries {
        // Deliveries in flight are retried after their lease, by this server or another.
        deliveries.abort();
    }
    let _ = handle.stop();
    handle.stopped().await;
    if let Some((_, stop, task)) = metrics {
        let _ = stop.send(());
        let _ = task.await;
    }
    // An aborted pass is safe (each node is one transaction); wait for it to unwind.
    let _ = background.await;
    Ok(())
}

/// `rpc-server verify`: the full check of the ledger, after rewriting the
/// counters from the rows if `repair`. Returns the report and the counters
/// written by the repair.
pub fn verify(
    ledger: &LedgerLocation,
    repair: bool,
) -> anyhow::Result<(VerifyReport, Option<LedgerCounts>)> {
    if !ledger.exists() {
        anyhow::bail!(
            "there is no ledger at {}; pass the data dir of the aggregator with --data-dir \
             (or its database with --ledger-url)",
            ledger.describe()
        );
    }
    let options = StoreOptions {
        check: false,
        ..StoreOptions::default()
    };
    let store = ledger.open(options)?;
    let repaired = if repair {
        Some(store.repair_counters()?)
    } else {
        None
    };
    Ok((store.verify(Depth::Full)?, repaired))
}

/// The text form of a verify report.
pub fn verify_text(report: &VerifyReport, repaired: Option<&LedgerCounts>) -> String {
    let mut out = String::new();
    if repaired.is_some() {
        out += "counters rewritten from the rows\n";
    }
    out += &format!(
        "ledger {}: {} ({} users checked in {} ms)\n",
        report.ledger,
        if report.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        report.users_checked,
        report.elapsed_ms
    );
    for finding in &report.findings {
        out += &format!("  {finding}\n");
    }
    if report.more_findings > 0 {
        out += &format!("  … and {} more\n", report.more_findings);
    }
    if !report.consistent {
        out += "Counters that differ from the rows: stop the server, run `rpc-server verify --repair` \
                and restart. Rows that disagree with each other (balance, totals) are damaged: \
                restore the ledger from a backup.\n";
    }
    out
}

/// `rpc-server migrate-ledger`: copies the whole ledger `from` → `to` (a redb
/// file into an empty PostgreSQL database, or back) and checks the copy.
pub async fn migrate_ledger(
    from: LedgerLocation,
    to: LedgerLocation,
) -> anyhow::Result<MigrationReport> {
    // The PostgreSQL client is synchronous: it must not run on the runtime's threads.
    tokio::task::spawn_blocking(move || match (&from, &to) {
        (LedgerLocation::Redb(path), LedgerLocation::Postgres { url, password }) => {
            Ok(migrate::redb_to_postgres(path, url, password.as_deref())?)
        }
        (LedgerLocation::Postgres { url, password }, LedgerLocation::Redb(path)) => {
            Ok(migrate::postgres_to_redb(url, password.as_deref(), path)?)
        }
        _ => anyhow::bail!(
            "migrate-ledger copies between a redb file and PostgreSQL; {} and {} are both {}",
            from.describe(),
            to.describe(),
            if matches!(from, LedgerLocation::Redb(_)) {
                "redb"
            } else {
                "PostgreSQL"
            }
        ),
    })
    .await
    .context("the copy stopped unexpectedly")?
}

/// The text form of a migration report.
pub fn migrate_text(report: &MigrationReport) -> String {
    let mut out = format!(
        "copied the ledger {} -> {} in {:.1} s\n",
        report.from,
        report.to,
        report.elapsed_ms as f64 / 1000.0
    );
    for (table, rows) in &report.tables {
        out += &format!("  {table:<24}{rows:>12}\n");
    }
    out += &format!(
        "row counts equal in source and target; target verified (full): consistent, {} users \
         checked\n",
        report.verify.users_checked
    );
    out
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use crate::config::Command;
    use crate::source::SourceError;

    /// The error itself reaches the caller, not only its text, so that `{:#}`
    /// and callers that look for a kind of error still find it.
    #[tokio::test]
    async fn a_missing_repo_fails_with_its_own_error_before_any_ledger_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let repo = dir.path().join("no-repo-here");
        let args = ["rpc-server", "aggregate", "--once", "--data-dir"];
        let cli = crate::config::parse_without_env(args.iter().copied().chain([
            data.to_str().unwrap(),
            "--repo",
            repo.to_str().unwrap(),
        ]))
        .unwrap();
        let Command::Aggregate(args) = cli.command else {
            panic!("parsed as aggregate")
        };
        let (settings, _) = args.source.resolve().unwrap();
        let err = super::aggregate_once(&settings).await.unwrap_err();
        let source = err
            .downcast_ref::<SourceError>()
            .unwrap_or_else(|| panic!("a SourceError, not only its text: {err:#}"));
        assert!(source.message.contains("no-repo-here"), "{source}");
        assert!(
            !data.join("ledger.redb").exists(),
            "a mistyped repo creates no ledger"
        );
    }
}
