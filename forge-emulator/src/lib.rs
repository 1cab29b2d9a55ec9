//! A small Forgejo (Gitea) API v1 emulator over a real git repository on disk.
//!
//! It serves the subset the billing aggregator's forge source uses (branch,
//! git trees and blobs, raw files, contents, commits), plus the contents
//! create/update endpoints so tests can commit "through the forge". It checks
//! `Authorization: token <t>`, counts requests per endpoint and injects faults
//! on demand, in-process ([`EmulatorHandle`]) or over HTTP (`/_emulator/stats`,
//! `/_emulator/stats/reset`, `/_emulator/faults`). For tests, benchmarks and
//! the smoke script only.

#![recursion_limit = "256"]

pub mod faults;
pub mod repo;
mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use faults::{Fault, FaultKind, Stats};
pub use repo::{FileChange, ForgeRepo, blob_id};
pub use server::endpoint_name;

/// The Forgejo version served by default (before batch blob reads).
pub const DEFAULT_VERSION: &str = "11.0.3+gitea-1.22.0";

/// Forgejo's default `[api] DEFAULT_MAX_BLOB_SIZE`.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 10 * 1024 * 1024;

/// Who the emulated forge says it is.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub owner: String,
    pub name: String,
    /// Required token; `None` accepts anonymous requests.
    pub token: Option<String>,
    /// A public repository can be read without a token; anonymous requests
    /// to a private one answer 404.
    pub public: bool,
    pub default_branch: String,
    /// Largest `per_page` of `git/trees` (Gitea's default is 1000).
    pub tree_page_max: usize,
    /// Largest blob `git/blobs` sends the content of (Forgejo's `[api]
    /// DEFAULT_MAX_BLOB_SIZE`, 10 MiB by default); a larger one comes back
    /// with `"content": ""` and its real size.
    pub max_blob_size: u64,
    /// The Forgejo version `GET /version` reports; from 12 on, `git/blobs?shas=`
    /// (batch reads) is served.
    pub version: String,
}

impl EmulatorConfig {
    /// Whether this version serves `git/blobs?shas=` (Forgejo 12 and later).
    pub fn serves_blob_batches(&self) -> bool {
        self.version
            .split('.')
            .next()
            .and_then(|major| major.parse::<u32>().ok())
            .is_some_and(|major| major >= 12)
    }
}

impl EmulatorConfig {
    /// `owner_repo` is `OWNER/NAME`.
    pub fn new(owner_repo: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let (owner, name) = owner_repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| anyhow::anyhow!("repo {owner_repo:?} must be OWNER/NAME"))?;
        Ok(Self {
            owner: owner.to_string(),
            name: name.to_string(),
            token: token.map(str::to_string),
            public: false,
            default_branch: "main".to_string(),
            tree_page_max: 1000,
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            version: DEFAULT_VERSION.to_string(),
        })
    }
}

/// The shared state of a running emulator.
pub struct Emulator {
    pub config: EmulatorConfig,
    pub repo: ForgeRepo,
    pub control: faults::Control,
}

/// Serves `emulator` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    emulator: Arc<Emulator>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let emulator = emulator.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        server::handle(emulator.clone(), request)
                    });
                    // Errors here are client disconnects and injected aborts.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            () = &mut shutdown => break,
        }
    }
}

/// A running emulator on loopback; stops when dropped or on [`EmulatorHandle::shutdown`].
pub struct EmulatorHandle {
    pub addr: SocketAddr,
    pub emulator: Arc<Emulator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmulatorHandle {
    /// Binds `127.0.0.1:0` and serves `repo` in a background task.
    pub async fn start(config: EmulatorConfig, repo: ForgeRepo) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::start_on(listener, config, repo))
    }

    pub fn start_on(listener: TcpListener, config: EmulatorConfig, repo: ForgeRepo) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let emulator = Arc::new(Emulator {
            config,
            repo,
            control: faults::Control::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, emulator.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            emulator,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port>`: what `ForgeSource::open` takes as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn repo(&self) -> &ForgeRepo {
        &self.emulator.repo
    }

    pub fn stats(&self) -> Stats {
        self.emulator.control.stats()
    }

    pub fn reset_stats(&self) {
        self.emulator.control.reset_stats();
    }

    pub fn add_fault(&self, fault: Fault) {
        self.emulator.control.add_fault(fault);
    }

    pub fn clear_faults(&self) {
        self.emulator.control.clear_faults();
    }

    /// Commits `changes` on the default branch, as a node pushing would.
    pub fn commit(&self, changes: &[FileChange], message: &str) -> anyhow::Result<gix::ObjectId> {
        let branch = self.emulator.config.default_branch.clone();
        self.emulator.repo.commit_files(&branch, changes, message)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
