//! `GET /backup` (admin secret required): a backup of the server's redb
//! ledger, for `rpc-server backup` when this server holds the ledger file.
//!
//! The snapshot is taken in one read transaction into a scratch file next to
//! the ledger, checked (see `store/backup.rs`; not with `?unchecked=1`, which
//! `rpc-server verify` asks for, as it checks the snapshot itself), then streamed in the backup
//! file format; the scratch file is removed when the answer ends, however it
//! ends. Passes and payments go on meanwhile.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpResponse};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::auth::json_response;
use crate::store::Store;
use crate::store::backup::{Snapshot, header_lines, take_snapshot};

/// Bytes sent per chunk of the answer.
const CHUNK_BYTES: usize = 1 << 20;

/// Removes the scratch snapshot when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers `GET /backup`.
pub(super) async fn respond(store: Store, check: bool) -> Result<HttpResponse, BoxError> {
    let taken = tokio::task::spawn_blocking(move || snapshot(&store, check)).await;
    let (snapshot, scratch) = match taken {
        Ok(Ok(taken)) => taken,
        Ok(Err((status, message))) => return Ok(error(status, message)),
        Err(e) => {
            return Ok(error(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("taking the backup stopped unexpectedly: {e}"),
            ));
        }
    };
    info!(
        bytes = snapshot.header.bytes,
        users = snapshot.header.users,
        "sending a backup of the ledger"
    );
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let _scratch = scratch;
        if let Err(e) = send(&snapshot, &tx) {
            warn!(error = %e, "a backup could not be sent whole");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let response = http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(HttpBody::new(ChannelBody(rx)))
        .expect("static response parts are valid");
    Ok(response)
}

type Failure = (http::StatusCode, String);

/// Takes the snapshot into a scratch file next to the ledger.
fn snapshot(store: &Store, check: bool) -> Result<(Snapshot, Scratch), Failure> {
    let Store::Redb(redb) = store else {
        return Err((
            http::StatusCode::NOT_IMPLEMENTED,
            "this server's ledger is in PostgreSQL: back it up with pg_dump (see docs/deploy.md)"
                .to_string(),
        ));
    };
    let Some(ledger) = redb.path() else {
        return Err((
            http::StatusCode::NOT_IMPLEMENTED,
            "this server's ledger is in memory; there is nothing to back up".to_string(),
        ));
    };
    let scratch = Scratch(scratch_path(ledger));
    let taken_at = billing_api::now_rfc3339();
    match take_snapshot(redb, redb.location(), &scratch.0, taken_at, check) {
        Ok(snapshot) => Ok((snapshot, scratch)),
        Err(e) => Err((
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot take a backup of {}: {e}", redb.location()),
        )),
    }
}

/// A new scratch file name next to `ledger`.
fn scratch_path(ledger: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    ledger.with_extension(format!("backup-{}-{n}.tmp", std::process::id()))
}

/// Sends the backup file of `snapshot` into `tx`, a chunk at a time.
fn send(snapshot: &Snapshot, tx: &mpsc::Sender<std::io::Result<Bytes>>) -> std::io::Result<()> {
    let head = Bytes::from(header_lines(&snapshot.header));
    if tx.blocking_send(Ok(head)).is_err() {
        return Ok(());
    }
    let mut file = std::fs::File::open(&snapshot.path)?;
    loop {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            // The client went away.
            return Ok(());
        }
    }
}

/// The answer's body: the chunks `send` produces.
struct ChannelBody(mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

fn error(status: http::StatusCode, message: String) -> HttpResponse {
    let body = serde_json::json!({ "error": "backup_failed", "message": message });
    json_response(status, body.to_string())
}
