//! `sim`: runs simulation seeds (see `billing_sim`), one or a campaign over
//! several threads' worth of processes.
//!
//! `sim --seed 123` replays one seed and prints what differed;
//! `sim --seeds 1000 --jobs 2` runs seeds 1..=1000 in 2 worker processes and
//! prints seeds per second. The ledger's failpoints are global to a process,
//! so a campaign runs one seed at a time per process.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use billing_sim::{Backend, Options, SourceKind};
use clap::Parser;

/// Campaign worker processes per core when `--jobs` is not given.
const WORKERS_PER_CORE: u64 = 3;

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of the billing aggregator against a model")]
struct Args {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run seeds FIRST..FIRST+N.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a campaign.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Steps per seed.
    #[arg(long, default_value_t = 200)]
    steps: u32,
    /// The ledger backend: redb, or postgres (needs BILLING_TEST_PG_URL).
    #[arg(long, default_value = "redb", value_parser = ["redb", "postgres"])]
    backend: String,
    /// The source: drawn from the seed unless given.
    #[arg(long, value_parser = ["git", "forge"])]
    source: Option<String>,
    /// Worker processes of a campaign (default: three per core).
    #[arg(long)]
    jobs: Option<u64>,
    /// Print each step as it runs.
    #[arg(long)]
    trace: bool,
    /// Internal: run the seeds FIRST+k*STRIDE of the campaign in this process.
    #[arg(long, hide = true)]
    stride: Option<u64>,
}

fn options(args: &Args, seed: u64) -> Options {
    Options {
        seed,
        steps: args.steps,
        backend: match args.backend.as_str() {
            "postgres" => Backend::Postgres,
            _ => Backend::Redb,
        },
        source: args.source.as_deref().map(|s| match s {
            "forge" => SourceKind::Forge,
            _ => SourceKind::Git,
        }),
        trace: args.trace,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        let started = Instant::now();
        return match billing_sim::run(options(&args, seed)) {
            Ok(report) => {
                println!(
                    "seed {seed}: ok in {:.2}s ({report:?})",
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(count) = args.seeds else {
        eprintln!("give --seed N to replay one seed, or --seeds N for a campaign");
        return ExitCode::from(2);
    };
    if let Some(stride) = args.stride {
        return worker(&args, count, stride);
    }
    campaign(&args, count)
}

/// Runs seeds `first + k·stride` (k from 0) below `first + count`; prints
/// one line per seed.
fn worker(args: &Args, count: u64, stride: u64) -> ExitCode {
    let mut failed = false;
    let mut seed = args.first;
    while seed < args.first + count {
        match billing_sim::run(options(args, seed)) {
            Ok(_) => println!("ok {seed}"),
            Err(failure) => {
                println!("FAIL {seed}");
                eprintln!("{failure}\n");
                failed = true;
            }
        }
        seed += stride;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn campaign(args: &Args, count: u64) -> ExitCode {
    // A worker keeps only about half a core busy: its threads hand work to
    // each other and wait on the forge's real timeouts. Three per core fill
    // the machine (on 2 cores: 2 workers 2.5-2.8 seeds/s, 6 workers 5.4-5.7).
    let jobs = args.jobs.unwrap_or_else(|| {
        WORKERS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
    });
    let started = Instant::now();
    let exe = std::env::current_exe().expect("the running binary's path");
    let mut workers = Vec::new();
    for j in 0..jobs.min(count) {
        let mut cmd = Command::new(&exe);
        // Worker j runs seeds first+j, first+j+jobs, …, all below first+count.
        cmd.args(["--seeds", &(count - j).to_string()])
            .args(["--first", &(args.first + j).to_string()])
            .args(["--stride", &jobs.to_string()])
            .args(["--steps", &args.steps.to_string()])
            .args(["--backend", &args.backend])
            .stdout(Stdio::piped());
        if let Some(source) = &args.source {
            cmd.args(["--source", source]);
        }
        let child = cmd.spawn().expect("a worker process starts");
        workers.push(child);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for child in &mut workers {
        let out = child.stdout.take().expect("piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let (mut ok, mut failed) = (0u64, Vec::new());
    for line in rx {
        if let Some(seed) = line.strip_prefix("FAIL ") {
            failed.push(seed.to_string());
        } else if line.starts_with("ok ") {
            ok += 1;
        }
        let done = ok + failed.len() as u64;
        if done.is_multiple_of(100) {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{done}/{count} seeds, {} failed, {:.1} seeds/s",
                failed.len(),
                done as f64 / secs
            );
        }
    }
    let mut died = false;
    for mut child in workers {
        // A worker exits 1 when a seed failed (reported above); anything else
        // (a panic, a signal) means it stopped before its seeds were done.
        died |= child
            .wait()
            .map_or(true, |s| s.code() != Some(0) && s.code() != Some(1));
    }
    let missing = count - (ok + failed.len() as u64).min(count);
    if died || missing > 0 {
        println!("{missing} seeds did not report: a worker process died (its error is above)");
        return ExitCode::FAILURE;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "SIM seeds={} steps_per_seed={} failed={} elapsed_s={secs:.1} seeds_per_s={:.2} backend={}",
        ok + failed.len() as u64,
        args.steps,
        failed.len(),
        (ok + failed.len() as u64) as f64 / secs,
        args.backend
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failed seeds: {}", failed.join(" "));
        ExitCode::FAILURE
    }
}
