//! `server.json` in the data dir: how a command finds the server that holds
//! the ledger file. A redb ledger can be open in one process only, so
//! `rpc-server backup` run next to a serving server asks that server instead
//! (`GET /backup`, see `rpc/backup.rs`). `serve` writes the file once it
//! listens and removes it when it stops; a file left by a killed server names
//! an address where nobody answers, which the command reports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data dir.
pub const SERVER_FILE: &str = "server.json";

/// What `server.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFile {
    /// Where the API answers, e.g. `http://127.0.0.1:8787`.
    pub address: String,
    pub pid: u32,
    pub started_at: String,
}

/// Removes `server.json` when the server stops (if it is still this server's).
#[derive(Debug)]
pub struct ServerFileGuard {
    path: PathBuf,
    written: ServerFile,
}

impl Drop for ServerFileGuard {
    fn drop(&mut self) {
        if read_at(&self.path).is_ok_and(|f| f == self.written) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `server.json` into `data_dir` for a server listening on `addr`.
pub fn write(data_dir: &Path, addr: SocketAddr) -> std::io::Result<ServerFileGuard> {
    // A server listening on every address is reached on loopback from here.
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let written = ServerFile {
        address: format!("http://{}", SocketAddr::new(ip, addr.port())),
        pid: std::process::id(),
        started_at: billing_api::now_rfc3339(),
    };
    let path = data_dir.join(SERVER_FILE);
    let partial = data_dir.join(format!("{SERVER_FILE}.{}", std::process::id()));
    let text = serde_json::to_string_pretty(&written).expect("always serializes");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)?;
    Ok(ServerFileGuard { path, written })
}

/// Reads `server.json` of `data_dir`.
pub fn read(data_dir: &Path) -> Result<ServerFile, String> {
    let path = data_dir.join(SERVER_FILE);
    read_at(&path).map_err(|e| {
        format!(
            "cannot read {} to find the server that holds the ledger ({e}); is a server \
             running on this data dir? Start it again, or stop it and run this command \
             without it",
            path.display()
        )
    })
}

/// Calls `method` (no params) on the server `file` names, with the admin secret;
/// its `result`, or an error saying what to do.
pub async fn call(
    file: &ServerFile,
    secret: &crate::secret::AdminSecret,
    method: &str,
) -> anyhow::Result<serde_json::Value> {
    call_with(file, secret, method, serde_json::json!({})).await
}

/// Calls `method` with `params` on the server `file` names; see [`call`].
pub async fn call_with(
    file: &ServerFile,
    secret: &crate::secret::AdminSecret,
    method: &str,
    params: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let address = &file.address;
    let client = client()?;
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = client
        .post(address)
        .header(http::header::AUTHORIZATION, secret.authorization())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(address, &e))?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Err(refused(address));
    }
    let text = response
        .text()
        .await
        .map_err(|e| anyhow::anyhow!("the answer of {address} to {method} broke off: {e}"))?;
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the answer of {address} to {method} is not JSON: {e}"))?;
    match answer.get("result") {
        Some(result) => Ok(result.clone()),
        None => anyhow::bail!(
            "the server at {address} answered {method} with an error: {}",
            answer["error"]["message"]
                .as_str()
                .unwrap_or("(no message)")
        ),
    }
}

/// The HTTP client that asks the server `server.json` names: it waits at
/// most 5 s for the connection, and as long as the answer takes.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))
}

/// The error for a server that `server.json` names but that does not answer.
pub fn unreachable(address: &str, e: &reqwest::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "a server holds the ledger, but none answers at {address}, the address its \
         server.json names ({}). If that server is gone, delete server.json and run \
         again; else check that it is up",
        billing_api::text::error_chain(e)
    )
}

/// The error for a server that refused the admin secret.
pub fn refused(address: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the server at {address} refused the admin secret: pass the secret it was started \
         with (--admin-secret-file or BILLING_ADMIN_SECRET)"
    )
}

fn read_at(path: &Path) -> Result<ServerFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("it is not valid ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_on_any_address_it_names_loopback_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let guard = write(dir.path(), "0.0.0.0:4321".parse().unwrap()).unwrap();
        let file = read(dir.path()).unwrap();
        assert_eq!(file.address, "http://127.0.0.1:4321");
        assert_eq!(file.pid, std::process::id());
        drop(guard);
        let err = read(dir.path()).unwrap_err();
        assert!(
            err.contains("server.json") && err.contains("is a server running"),
            "{err}"
        );
    }

    #[test]
    fn a_newer_servers_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let old = write(dir.path(), "127.0.0.1:1".parse().unwrap()).unwrap();
        let newer = write(dir.path(), "127.0.0.1:2".parse().unwrap()).unwrap();
        drop(old);
        assert_eq!(read(dir.path()).unwrap().address, "http://127.0.0.1:2");
        drop(newer);
        assert!(read(dir.path()).is_err());
    }
}
