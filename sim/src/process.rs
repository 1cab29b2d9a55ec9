//! The simulated server process: the real ledger and aggregator over the
//! simulated repo (read as a local git repo, or through the forge emulator),
//! started again after a crash.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use billing_api::RegisterUser;
use billing_api::otoml::DecodeLimits;
use billing_server::aggregate::{Aggregator, PassOutcome};
use billing_server::clock::Clock;
use billing_server::source::Source;
use billing_server::source::forge::{ForgeOptions, ForgeSource};
use billing_server::source::git::GitSource;
use billing_server::store::failpoints::WRITE_STEP;
use billing_server::store::{Store, StoreError, StoreOptions};
use billing_server::test_support::{PgTestDb, payment};
use forge_emulator::{EmulatorConfig, EmulatorHandle, Fault, ForgeRepo};

use crate::model::Limits;
use crate::steps::{ForgeFault, Service};

/// Which ledger the simulated server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redb,
    /// A database of its own in the cluster `BILLING_TEST_PG_URL` names.
    Postgres,
}

/// Where the simulated server reads the repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Git,
    Forge,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Git => "git",
            SourceKind::Forge => "forge",
        }
    }
}

const OWNER_REPO: &str = "sim/billing";
const TOKEN: &str = "sim-token-0123456789";

/// `/dev/shm` when it is a directory with at least 512 MiB free (a
/// container's default 64 MiB one is left alone), else `None`.
fn in_memory_dir() -> Option<&'static std::path::Path> {
    let shm = std::path::Path::new("/dev/shm");
    let stats = rustix::fs::statvfs(shm).ok()?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    (free >= 512 << 20).then_some(shm)
}

/// What outlives a crash: the repo, the ledger's file or database, the forge.
pub struct Setup {
    dir: tempfile::TempDir,
    backend: Backend,
    pg: Option<PgTestDb>,
    emulator: Option<Arc<EmulatorHandle>>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Records per write transaction of a node, when not the default.
    chunk: Option<usize>,
    /// The simulated time (unix ms), read by the aggregator and the services.
    clock: Arc<AtomicU64>,
}

/// Where simulated time starts: 2026-12-01T00:00:00Z, after every hour the
/// generator writes (November 2026), so nodes are stale as on a real clock.
const CLOCK_START_MS: u64 = 1_796_083_200_000;

impl Setup {
    /// `batch_reads`: the forge reports version 12, which serves batch blob
    /// reads, so that a pass reads several nodes' new files in one call.
    pub fn new(
        backend: Backend,
        source: SourceKind,
        chunk: Option<usize>,
        batch_reads: bool,
    ) -> Result<Setup, String> {
        // In memory when the machine has a roomy tmpfs: the same files and
        // syscalls, without waiting for the disk at every durable commit.
        let dir = match in_memory_dir() {
            Some(shm) => tempfile::Builder::new()
                .prefix("billing-sim")
                .tempdir_in(shm),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let repo_dir = dir.path().join("repo.git");
        let repo = ForgeRepo::open_or_init(&repo_dir).map_err(|e| format!("{e:#}"))?;
        let emulator = match source {
            SourceKind::Git => None,
            SourceKind::Forge => {
                let mut config =
                    EmulatorConfig::new(OWNER_REPO, Some(TOKEN)).map_err(|e| format!("{e:#}"))?;
                if batch_reads {
                    config.version = "12.0.0".to_string();
                }
                let handle = runtime
                    .block_on(EmulatorHandle::start(config, repo))
                    .map_err(|e| format!("cannot start the forge emulator: {e}"))?;
                Some(Arc::new(handle))
            }
        };
        let pg = (backend == Backend::Postgres).then(PgTestDb::create);
        Ok(Setup {
            dir,
            backend,
            pg,
            emulator,
            runtime: Arc::new(runtime),
            chunk,
            clock: Arc::new(AtomicU64::new(CLOCK_START_MS)),
        })
    }

    /// Moves simulated time one second on and returns it.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1000, Ordering::SeqCst) + 1000
    }

    pub fn repo_dir(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    /// Starts the server process: opens the ledger (waiting for a crashed
    /// process's handle to let go of the file) and the source.
    pub fn open(&self, limits: Limits) -> Result<Process, String> {
        let store = match (&self.backend, &self.pg) {
            (Backend::Postgres, Some(db)) => Store::connect(&db.url, None, StoreOptions::default())
                .map_err(|e| format!("cannot open the PostgreSQL ledger: {e}"))?,
            _ => {
                let path = self.dir.path().join("ledger.redb");
                let mut tries = 0;
                loop {
                    match Store::open(&path) {
                        Ok(store) => break store,
                        Err(StoreError::Locked { .. }) if tries < 200 => {
                            tries += 1;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => return Err(format!("cannot open the redb ledger: {e}")),
                    }
                }
            }
        };
        let source = match &self.emulator {
            None => Source::Git(
                GitSource::open(
                    &self.repo_dir().to_string_lossy(),
                    "main",
                    &self.dir.path().join("mirror"),
                )
                .map_err(|e| e.to_string())?,
            ),
            Some(emulator) => Source::Forge(
                ForgeSource::open_with(
                    &emulator.base_url(),
                    OWNER_REPO,
                    "main",
                    Some(TOKEN.to_string()),
                    ForgeOptions {
                        request_timeout: Duration::from_millis(300),
                        connect_timeout: Duration::from_millis(300),
                        max_attempts: 3,
                        backoff_base: Duration::from_millis(1),
                        backoff_max: Duration::from_millis(4),
                        retry_after_max: Duration::from_secs(1),
                        blob_concurrency: 4,
                        tree_page_size: 1000,
                    },
                )
                .map_err(|e| e.to_string())?,
            ),
        };
        let decode = DecodeLimits {
            max_records: limits.max_records,
            max_record_cents: limits.max_record_cents,
        };
        let aggregator = Aggregator::with_limits(store, source, limits.max_file_bytes, decode)
            .with_clock(Clock::manual(self.clock.clone()));
        if let Some(records) = self.chunk {
            aggregator.set_chunk_records(records);
        }
        Ok(Process {
            aggregator,
            emulator: self.emulator.clone(),
            runtime: self.runtime.clone(),
        })
    }
}

/// How a service call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    NotFound,
    Conflict,
    /// Anything else (a crashed ledger write).
    Other(String),
}

/// One life of the server process.
pub struct Process {
    aggregator: Aggregator,
    emulator: Option<Arc<EmulatorHandle>>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Process {
    pub fn store(&self) -> &Store {
        self.aggregator.store()
    }

    pub fn call(&self, service: &Service, now_ms: u64) -> Result<(), CallError> {
        let store = self.store();
        let result = match service {
            Service::Register(user) => store
                .register_user(
                    &RegisterUser {
                        user_sid: user.clone(),
                        display_name: None,
                        email: None,
                    },
                    now_ms,
                )
                .map(drop),
            Service::Pay { id, user, amount } => store
                .record_payment(&payment(id.as_str(), user.as_str(), *amount), now_ms)
                .map(drop),
        };
        result.map_err(|e| match e {
            StoreError::NotFound { .. } => CallError::NotFound,
            StoreError::Conflict(_) => CallError::Conflict,
            e => CallError::Other(e.to_string()),
        })
    }

    /// Runs a pass while `services` write one after another, with `faults`
    /// on the forge for the pass's requests.
    pub fn pass_beside(
        &self,
        services: &[Service],
        faults: Option<&[ForgeFault]>,
        now_ms: u64,
    ) -> (PassOutcome, Vec<Result<(), CallError>>) {
        if let (Some(emulator), Some(faults)) = (&self.emulator, faults) {
            for f in faults {
                emulator.add_fault(Fault::new(f.endpoint, f.kind.clone(), f.times));
            }
        }
        let aggregator = self.aggregator.clone();
        let pass = self
            .runtime
            .spawn(async move { aggregator.run_pass().await });
        let answers = services.iter().map(|s| self.call(s, now_ms)).collect();
        let outcome = self
            .runtime
            .block_on(pass)
            .unwrap_or_else(|e| panic!("the pass task panicked: {e}"));
        if let Some(emulator) = &self.emulator {
            emulator.clear_faults();
        }
        (outcome, answers)
    }
}

/// From now on, the `after`-th ledger write step and every later one fail.
pub fn arm_crash(after: u32) {
    let actions = if after == 0 {
        "return".to_string()
    } else {
        format!("{after}*off->return")
    };
    fail::cfg(WRITE_STEP, &actions).expect("a valid failpoint action");
}

pub fn disarm_crash() {
    fail::remove(WRITE_STEP);
}
