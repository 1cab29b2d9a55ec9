//! A real rpc-server on 127.0.0.1:0 for the dashboard's end-to-end tests,
//! shared so every test starts it the same way.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use billing_server::config::{LedgerSettings, ServeSettings, SourceSpec};
use billing_server::rpc::AdminSecret;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; `stop` ends it.
pub struct RunningServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Serves the git billing repo `repo` (branch main) with its ledger in
    /// `data`, no scheduler, and `secret` as the admin secret.
    pub async fn start(repo: String, data: PathBuf, secret: &str) -> RunningServer {
        std::fs::create_dir_all(&data).unwrap();
        let settings = ServeSettings {
            ledger: LedgerSettings::new(
                data,
                SourceSpec::Git {
                    repo,
                    branch: "main".into(),
                },
            ),
            replica_name: "test".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            interval: None,
            secret: AdminSecret::new(secret, "test").unwrap(),
            metrics_listen: None,
            stale_after: billing_server::aggregate::freshness::DEFAULT_STALE_AFTER,
            low_balance_cents: 500,
            webhooks: None,
        };
        let (addr_tx, addr_rx) = oneshot::channel::<SocketAddr>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            billing_server::server::serve(settings, |at| addr_tx.send(at.api).unwrap(), shutdown)
                .await
                .unwrap();
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .expect("server listens within 30 s")
            .unwrap();
        RunningServer {
            url: format!("http://{addr}"),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
