//! A real webhook receiver on `127.0.0.1:0`. It checks every delivery with
//! its own Standard Webhooks verifier (not the server's signer), records it,
//! and answers as scripted: 500s, a stall longer than the sender's timeout,
//! then 200. It can be stopped and restarted on the same port.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// How far a `webhook-timestamp` may be from now (the specification's 5 minutes).
pub const TOLERANCE_SECS: u64 = 5 * 60;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id` ("" when missing).
    pub id: String,
    /// `webhook-timestamp`, if present and a number.
    pub timestamp: Option<u64>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    pub signature_valid: bool,
    /// The timestamp is within [`TOLERANCE_SECS`] of now.
    pub timestamp_fresh: bool,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The answer: 401 (bad signature or timestamp), 400 (not JSON), else as
    /// scripted. A stalled request answers 503 after its delay, to a sender
    /// that has usually given up by then.
    pub status: u16,
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Stall(Duration),
}

struct State {
    key: Vec<u8>,
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// A running receiver; stops when dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Binds `127.0.0.1:0` and verifies with `secret` (`whsec_<base64>`).
    pub async fn start(secret: &str) -> Self {
        let encoded = secret
            .trim()
            .strip_prefix("whsec_")
            .expect("a whsec_ secret");
        let key = STANDARD.decode(encoded).expect("base64 after whsec_");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let state = Arc::new(State {
            key,
            script: Mutex::default(),
            received: Mutex::default(),
        });
        let addr = listener.local_addr().expect("bound");
        let task = Some(tokio::spawn(serve(listener, state.clone())));
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next `n` validly signed deliveries with 500.
    pub fn fail_next(&self, n: usize) {
        self.answer_next(n, 500);
    }

    /// Answers the next `n` validly signed deliveries with `status`.
    pub fn answer_next(&self, n: usize, status: u16) {
        let mut script = self.state.script.lock().unwrap();
        script.extend(std::iter::repeat_n(Reply::Status(status), n));
    }

    /// Holds the next validly signed delivery for `delay` (make it longer than
    /// the sender's timeout), then answers 503.
    pub fn stall_next(&self, delay: Duration) {
        self.state
            .script
            .lock()
            .unwrap()
            .push_back(Reply::Stall(delay));
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        let all = self.all();
        all.into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Requests per `webhook-id`, whatever the answer.
    pub fn counts_by_id(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for received in self.state.received.lock().unwrap().iter() {
            *counts.entry(received.id.clone()).or_default() += 1;
        }
        counts
    }

    /// Waits until `n` requests were accepted and returns them; panics, with
    /// every request seen, after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries accepted after {timeout:?}; seen: {:#?}",
                accepted.len(),
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the port and every open connection; records and script stay.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same port after [`Self::stop`].
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.task = Some(tokio::spawn(serve(listener, self.state.clone())));
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The Standard Webhooks check, written here from the specification: does any
/// `v1,<base64>` in `header` equal HMAC-SHA256(key, "{id}.{timestamp}.{body}")?
/// `timestamp` is the header's text, exactly as received.
pub fn verify_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    header
        .split(' ')
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|signature| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            mac.update(&signed);
            mac.verify_slice(&signature).is_ok()
        })
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    // Owned here, so aborting this task closes every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(state.clone(), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = header("webhook-id");
    let timestamp_text = header("webhook-timestamp");
    let signature = header("webhook-signature");
    let content_type = header("content-type");
    let user_agent = header("user-agent");
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };

    let signature_valid = match (&id, &timestamp_text, &signature) {
        (Some(id), Some(ts), Some(sig)) => verify_signature(&state.key, id, ts, &body, sig),
        _ => false,
    };
    let timestamp = timestamp_text.and_then(|t| t.parse::<u64>().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let timestamp_fresh = timestamp.is_some_and(|t| t.abs_diff(now) <= TOLERANCE_SECS);
    let json = serde_json::from_slice::<serde_json::Value>(&body).ok();

    let reply = if !signature_valid || !timestamp_fresh {
        Reply::Status(401)
    } else if json.is_none() {
        Reply::Status(400)
    } else {
        let next = state.script.lock().unwrap().pop_front();
        next.unwrap_or(Reply::Status(200))
    };
    let status = match reply {
        Reply::Status(status) => status,
        Reply::Stall(_) => 503,
    };
    state.received.lock().unwrap().push(Received {
        id: id.unwrap_or_default(),
        timestamp,
        body: json.unwrap_or(serde_json::Value::Null),
        signature_valid,
        timestamp_fresh,
        content_type,
        user_agent,
        status,
    });
    if let Reply::Stall(delay) = reply {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
    Ok(response)
}
