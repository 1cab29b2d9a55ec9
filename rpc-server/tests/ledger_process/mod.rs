//! The real `rpc-server` binary as a child process, for ledger end-to-end
//! tests: a billing repo made with `rpc-server simulate`, `serve` on
//! 127.0.0.1:0 called over HTTP, `verify`, and the server's log.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");
pub const SECRET: &str = "ledger-test-admin-secret-0123456789";

/// `rpc-server simulate` into `repo` (created or extended).
pub fn simulate(repo: &Path, nodes: u32, hours: u32, records: u32, seed: u64) {
    let out = Command::new(BIN)
        .args(["simulate", "--users", "8", "--seed", &seed.to_string()])
        .args(["--nodes", &nodes.to_string(), "--hours", &hours.to_string()])
        .args(["--records", &records.to_string(), "--repo"])
        .arg(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rpc-server args…`, to completion.
pub fn run(args: &[&str], data_dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A running `rpc-server serve`.
pub struct ServerProcess {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl ServerProcess {
    /// Starts `serve --interval 0` on 127.0.0.1:0 and waits until it listens.
    pub fn start(data_dir: &Path, repo: &Path) -> Self {
        let secret = data_dir.with_extension("secret");
        std::fs::write(&secret, SECRET).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--repo")
            .arg(repo)
            .arg("--admin-secret-file")
            .arg(&secret)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    log.lock().unwrap()
                )
            })
            .to_string();
        Self {
            child,
            url,
            log,
            http: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The whole JSON-RPC response (`result` or `error`).
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.http
            .post(&self.url)
            .bearer_auth(SECRET)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `result` of a call that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let response = self.rpc(method, params).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}; log:\n{}", self.log()),
        }
    }

    /// Status and body of `GET /health`.
    pub async fn health(&self) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/health", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Polls `GET /health` until it answers `status`, for at most `timeout`.
    pub async fn wait_health(&self, status: u16, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (now, body) = self.health().await;
            if now == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/health still answers {now} {body} after {timeout:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> String {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "server exit {status}; log:\n{}",
            self.log()
        );
        self.log()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data dir and repo of one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("billing.git")
    }

    pub fn data(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        data
    }

    pub fn ledger(&self) -> PathBuf {
        self.data().join("ledger.redb")
    }
}
