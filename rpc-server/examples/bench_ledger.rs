//! Helpers for `scripts/bench.sh`: bulk user registration, balances spread
//! over users, and timing of "nothing new" passes. Not part of the server.

use billing_server::test_support::payment;
use std::path::PathBuf;
use std::time::Instant;

use billing_api::RegisterUser;
use billing_server::aggregate::Aggregator;
use billing_server::config::{LedgerSettings, SourceSpec};
use billing_server::server::open_aggregator;
use billing_server::store::Store;
use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Registers users `<prefix><zero-padded index>` in batches of 10,000 per transaction.
    Register {
        #[arg(long)]
        data_dir: PathBuf,
        /// Register into this PostgreSQL ledger instead of the data dir's redb file.
        #[arg(long)]
        ledger_url: Option<String>,
        #[arg(long)]
        users: u32,
        #[arg(long, default_value = "u-")]
        prefix: String,
        #[arg(long, default_value_t = 4)]
        width: usize,
    },
    /// Gives every `every`-th user `<prefix><zero-padded index>` a balance spread over
    /// 1..=100,000 cents, one payment each (seeded, so every run spreads them the same), from
    /// `threads` callers at once so that their durable commits group.
    Spread {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        users: u32,
        #[arg(long, default_value = "u-")]
        prefix: String,
        #[arg(long, default_value_t = 4)]
        width: usize,
        #[arg(long, default_value_t = 1)]
        every: u32,
        #[arg(long, default_value_t = 64)]
        threads: u32,
    },
    /// Runs a first pass, then times passes that find nothing new.
    NoopPass {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        repo: String,
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Register {
            data_dir,
            ledger_url,
            users,
            prefix,
            width,
        } => {
            // The PostgreSQL client blocks: registration runs off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                register(data_dir, ledger_url, users, prefix, width)
            })
            .await??;
        }
        Cmd::Spread {
            data_dir,
            users,
            prefix,
            width,
            every,
            threads,
        } => {
            tokio::task::spawn_blocking(move || {
                spread(data_dir, users, prefix, width, every, threads)
            })
            .await??;
        }
        Cmd::NoopPass {
            data_dir,
            repo,
            runs,
        } => {
            let aggregator: Aggregator = open_aggregator(&LedgerSettings::new(
                data_dir,
                SourceSpec::Git {
                    repo,
                    branch: "main".into(),
                },
            ))?;
            let first = aggregator
                .run_pass()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let started = Instant::now();
                let summary = aggregator
                    .run_pass()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(summary.records_applied, 0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "FIGURE noop_pass nodes={} median_ms={:.3} p95_ms={:.3} max_ms={:.3} (target <= 20 ms)",
                first.nodes_total,
                times[times.len() / 2],
                times[times.len() * 95 / 100],
                times[times.len() - 1]
            );
        }
    }
    Ok(())
}

fn register(
    data_dir: PathBuf,
    ledger_url: Option<String>,
    users: u32,
    prefix: String,
    width: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)?;
    let store = match ledger_url {
        Some(url) => Store::connect(&url, None, Default::default())?,
        None => Store::open(&data_dir.join("ledger.redb"))?,
    };
    let started = Instant::now();
    let ids: Vec<u32> = (0..users).collect();
    for chunk in ids.chunks(10_000) {
        let batch: Vec<RegisterUser> = chunk
            .iter()
            .map(|i| RegisterUser {
                user_sid: format!("{prefix}{i:0width$}"),
                display_name: Some(format!("Bench user {i}")),
                email: None,
            })
            .collect();
        store.register_users(&batch, 1)?;
    }
    eprintln!("registered {users} users in {:.2?}", started.elapsed());
    Ok(())
}

fn spread(
    data_dir: PathBuf,
    users: u32,
    prefix: String,
    width: usize,
    every: u32,
    threads: u32,
) -> anyhow::Result<()> {
    let store = Store::open(&data_dir.join("ledger.redb"))?;
    let started = Instant::now();
    let threads = threads.max(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (store, prefix) = (&store, &prefix);
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut rng = StdRng::seed_from_u64(u64::from(t));
                    let every = every.max(1);
                    for i in (t * every..users).step_by((threads * every) as usize) {
                        store.record_payment(
                            &payment(
                                format!("spread-{i}"),
                                format!("{prefix}{i:0width$}"),
                                rng.random_range(1..=100_000),
                            ),
                            1,
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a spread thread panicked")?;
        }
        Ok(())
    })?;
    eprintln!(
        "paid {} of {users} users in {:.2?}",
        users.div_ceil(every.max(1)),
        started.elapsed()
    );
    Ok(())
}
