//! Shared test fixtures: real git repos in temp dirs (driven with the `git`
//! CLI, as a node would), a real redb ledger, a real server on 127.0.0.1:0.
#![allow(dead_code)]

pub mod webhook_receiver;

use std::path::{Path, PathBuf};
use std::process::Command;

use billing_server::aggregate::Aggregator;
use billing_server::rpc::AdminSecret;
use billing_server::source::Source;
use billing_server::source::git::GitSource;
use billing_server::store::Store;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::server::ServerHandle;

pub const SECRET: &str = "test-admin-secret-0123456789";

/// Runs `git -C dir args…` with a fixed identity; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A working git repo playing the node side.
pub struct NodeRepo {
    pub dir: tempfile::TempDir,
}

impl NodeRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "node@example.org"]);
        repo.git(&["config", "user.name", "node"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }

    /// Writes files (path, bytes) and commits them; returns the new head.
    pub fn commit(&self, files: &[(&str, &[u8])], message: &str) -> String {
        for (path, bytes) in files {
            let full = self.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

/// OTOML text for records `(key, user, cost)` of `node`, each of resource `vm.cpu`.
pub fn batch(node: &str, records: &[(&str, &str, i64)]) -> Vec<u8> {
    let records: Vec<_> = records
        .iter()
        .map(|&(key, user, cost)| (key, user, cost, Some("vm.cpu")))
        .collect();
    batch_of_resources(node, &records)
}

/// OTOML text for records `(key, user, cost, resource)` of `node`.
pub fn batch_of_resources(node: &str, records: &[(&str, &str, i64, Option<&str>)]) -> Vec<u8> {
    let mut out = String::from("version = 1\n");
    for (key, user, cost, resource) in records {
        out += &format!(
            "\n[[records]]\nidempotency_key = \"{key}\"\nuser_sid = \"{user}\"\nnode_name = \"{node}\"\ncost_cents = {cost}\n"
        );
        if let Some(resource) = resource {
            out += &format!("resource = \"{resource}\"\n");
        }
    }
    out.into_bytes()
}

/// The `YYYY-MM-DD-HH` stamp of the current hour (UTC): a node reporting it is not stale.
pub fn this_hour() -> String {
    let now = billing_api::now_rfc3339();
    format!("{}-{}", &now[..10], &now[11..13])
}

pub fn usage_path(node: &str, hour: u32) -> String {
    format!("nodes/{node}/usage_2026-11-27-{hour:02}.otoml")
}

use billing_server::test_support::payment;
pub use billing_server::test_support::{PgTestDb, on_thread};

/// Which ledger backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

/// The ledger of one test: the redb file in its data dir, or a PostgreSQL
/// database of its own (dropped with it).
pub struct TestLedger {
    pub backend: Backend,
    pub pg: Option<PgTestDb>,
}

impl TestLedger {
    pub fn new(backend: Backend) -> Self {
        TestLedger {
            backend,
            pg: (backend == Backend::Postgres).then(PgTestDb::create),
        }
    }

    /// Opens the ledger (again, as after a restart).
    pub fn open(&self, data_dir: &Path) -> Store {
        match &self.pg {
            Some(db) => db.store(),
            None => Store::open(&data_dir.join("ledger.redb")).unwrap(),
        }
    }

    /// The command line arguments that select this ledger.
    pub fn args(&self) -> Vec<String> {
        match &self.pg {
            Some(db) => vec!["--ledger-url".into(), db.url.clone()],
            None => Vec::new(),
        }
    }
}

/// Tests `NAME(backend)` on each backend, as `NAME::redb` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn redb() {
                super::$name($crate::common::Backend::Redb).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

/// An aggregator over `repo` with the ledger `ledger`.
pub fn aggregator_on(
    ledger: &TestLedger,
    repo: &Path,
    data_dir: &Path,
    max_file_bytes: u64,
) -> Aggregator {
    let store = ledger.open(data_dir);
    let source = GitSource::open(repo.to_str().unwrap(), "main", &data_dir.join("mirror")).unwrap();
    Aggregator::new(store, Source::Git(source), max_file_bytes)
}

pub fn aggregator(repo: &Path, data_dir: &Path) -> Aggregator {
    aggregator_with_limit(repo, data_dir, 1024 * 1024)
}

pub fn aggregator_with_limit(repo: &Path, data_dir: &Path, max_file_bytes: u64) -> Aggregator {
    let store = Store::open(&data_dir.join("ledger.redb")).unwrap();
    let source = GitSource::open(repo.to_str().unwrap(), "main", &data_dir.join("mirror")).unwrap();
    Aggregator::new(store, Source::Git(source), max_file_bytes)
}

/// A real server on 127.0.0.1:0 over a real ledger.
pub struct TestServer {
    pub url: String,
    pub aggregator: Aggregator,
    pub handle: ServerHandle,
    pub data_dir: tempfile::TempDir,
    pub ledger: TestLedger,
}

impl TestServer {
    /// A server with its ledger on redb.
    pub async fn start(repo: &Path) -> Self {
        Self::start_on(Backend::Redb, repo).await
    }

    pub async fn start_on(backend: Backend, repo: &Path) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let ledger = TestLedger::new(backend);
        let aggregator = aggregator_on(&ledger, repo, data_dir.path(), 1024 * 1024);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let secret = AdminSecret::new(SECRET, "test").unwrap();
        let (addr, handle) = billing_server::rpc::start(listener, aggregator.clone(), secret)
            .await
            .unwrap();
        Self {
            url: format!("http://{addr}"),
            aggregator,
            handle,
            data_dir,
            ledger,
        }
    }

    pub fn client(&self) -> HttpClient {
        client_with(&self.url, Some(SECRET))
    }

    pub fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1)
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }
}

pub fn client_with(url: &str, secret: Option<&str>) -> HttpClient {
    let mut headers = http::HeaderMap::new();
    if let Some(secret) = secret {
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {secret}").parse().unwrap(),
        );
    }
    HttpClientBuilder::default()
        .set_headers(headers)
        .build(url)
        .unwrap()
}

/// POSTs a raw JSON-RPC body (any framing `body` makes: a string or bytes go
/// with Content-Length, a file or stream chunked) with the admin secret;
/// returns the HTTP status and the response body.
pub async fn post_rpc(url: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Registers `sids` (no name, no email).
pub fn register(store: &Store, sids: &[&str]) {
    for sid in sids {
        on_thread(|| billing_server::test_support::register(store, sid, 1));
    }
}

/// Records a payment that must succeed.
pub fn pay(store: &Store, payment_id: &str, sid: &str, amount_cents: i64) {
    store
        .record_payment(&payment(payment_id, sid, amount_cents), 2)
        .unwrap();
}

/// Applies one usage record of `cost_cents` to `sid` (a file of its own of
/// node `n1`); panics unless it is applied.
pub fn debit(store: &Store, key: &str, sid: &str, cost_cents: i64) {
    use billing_server::store::{FileBatch, FileOutcome, NodeUpdate};
    let update = NodeUpdate {
        node_name: "n1".into(),
        head_commit: format!("commit-{key}"),
        tree_id: format!("tree-{key}"),
        files: vec![FileBatch {
            path: usage_path("n1", 0),
            blob_id: format!("blob-{key}"),
            outcome: FileOutcome::Decoded(vec![Ok(billing_server::test_support::rec(
                key, sid, "n1", cost_cents,
            ))]),
        }],
    };
    let outcome = on_thread(|| store.apply_node(update, 3).unwrap());
    assert_eq!(outcome.applied, 1, "{key} of {sid}: {outcome:?}");
}
