//! HTTP layer that checks the JSON-RPC envelope of every POST before
//! jsonrpsee sees it:
//!
//! * the body is read under the size limit however it is framed, so a
//!   chunked body over the limit gets HTTP 413 like one with a
//!   `Content-Length` (jsonrpsee alone answers the chunked one with 500);
//! * a call jsonrpsee would drop without a word is refused with HTTP 400 and
//!   a JSON-RPC error body: a notification (no `id`), an `id` that is not a
//!   string, a non-negative integer or null, or an object jsonrpsee would
//!   read as a notification (a repeated `id`). Every method here answers
//!   something the caller needs (a payment's outcome, a balance), so none is
//!   accepted without an id. In a batch, one such entry refuses the whole
//!   batch and nothing in it runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use jsonrpsee::types::ErrorObjectOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tower::{Layer, Service};

use super::error::{body_unreadable, request_too_large, unanswerable_batch, unanswerable_call};

/// Why a call cannot be run and answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Unanswerable {
    /// No `id`: a notification. The method name, if the call had one.
    Notification { method: Option<String> },
    /// An `id` of a kind JSON-RPC does not allow (or jsonrpsee cannot echo).
    BadId { found: &'static str },
    /// No `id` jsonrpsee could take (none, or one of a kind it cannot echo),
    /// as seen behind jsonrpsee's parser (WebSocket).
    NoUsableId { method: String },
    /// An object that is not a readable call; the reason.
    Malformed(String),
}

/// Tower layer putting [`Envelope`] in front of the JSON-RPC service.
#[derive(Clone, Debug)]
pub struct EnvelopeLayer {
    max_bytes: u32,
}

impl EnvelopeLayer {
    pub fn new(max_bytes: u32) -> Self {
        Self { max_bytes }
    }
}

impl<S> Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Envelope {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Envelope<S> {
    inner: S,
    max_bytes: u32,
}

impl<S> Service<HttpRequest> for Envelope<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        // WebSocket upgrades (GET), other methods and other content types go
        // straight on: jsonrpsee answers those without reading a body.
        if request.method() != http::Method::POST
            || !jsonrpsee::server::http::content_type_is_json(&request)
        {
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        }
        // The ready service handles this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match read_body(&parts.headers, body, max_bytes).await {
                Ok(body) => body,
                Err(refusal) => return Ok(refusal),
            };
            if let Some(refusal) = refuse_unanswerable(&body) {
                return Ok(refusal);
            }
            let request = HttpRequest::from_parts(parts, HttpBody::from(body));
            inner.call(request).await.map_err(Into::into)
        })
    }
}

/// Most bytes of a refused body read (and dropped) before answering 413, so a
/// client still sending it reads the answer instead of a broken connection.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads the whole body, at most `max_bytes`, whatever its framing.
async fn read_body(
    headers: &http::HeaderMap,
    mut body: HttpBody,
    max_bytes: u32,
) -> Result<Vec<u8>, HttpResponse> {
    let max = max_bytes as usize;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            request_too_large(max_bytes),
        )
    };
    let mut over = declared.is_some_and(|len| len > u64::from(max_bytes));
    if declared.is_some_and(|len| len > DRAIN_BYTES as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            error_response(
                http::StatusCode::BAD_REQUEST,
                body_unreadable(&e.to_string()),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > max {
            over = true;
            buf = Vec::new();
        }
        if over {
            if seen > DRAIN_BYTES {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if over {
        return Err(too_large());
    }
    Ok(buf)
}

/// The refusal of a body holding a call that would go unanswered; `None`
/// when jsonrpsee can run and answer every call in it (or answers the body
/// with its own parse error).
fn refuse_unanswerable(body: &[u8]) -> Option<HttpResponse> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    let error = match first {
        b'{' => unanswerable_call(&unanswerable_single(body)?),
        b'[' => {
            let entries: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
            let problems: Vec<(usize, Unanswerable)> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, entry)| unanswerable(entry.get().as_bytes()).map(|p| (i, p)))
                .collect();
            if problems.is_empty() {
                return None;
            }
            unanswerable_batch(&problems)
        }
        _ => return None,
    };
    Some(error_response(http::StatusCode::BAD_REQUEST, error))
}

/// A single call: invalid JSON is left to jsonrpsee's parse error.
fn unanswerable_single(body: &[u8]) -> Option<Unanswerable> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    unanswerable(body)
}

/// What keeps one valid JSON value (a call or a batch entry) from being
/// answered, if anything. Values that are not objects are answered by
/// jsonrpsee with "Invalid request".
fn unanswerable(value: &[u8]) -> Option<Unanswerable> {
    if value.first() != Some(&b'{') {
        return None;
    }
    match serde_json::from_slice::<CallEnvelope>(value) {
        Ok(CallEnvelope { id: None, method }) => Some(Unanswerable::Notification { method }),
        Ok(CallEnvelope { id: Some(id), .. }) => {
            bad_id(&id).map(|found| Unanswerable::BadId { found })
        }
        Err(e) => Some(Unanswerable::Malformed(e.to_string())),
    }
}

/// What an id is, when JSON-RPC 2.0 (and jsonrpsee) cannot take it.
fn bad_id(id: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value;
    match id {
        Value::Null | Value::String(_) => None,
        Value::Number(n) if n.is_u64() => None,
        Value::Number(n) if n.is_i64() => Some("a negative number"),
        Value::Number(_) => Some("a fractional or out-of-range number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Array(_) => Some("an array"),
        Value::Object(_) => Some("an object"),
    }
}

/// The parts of a call that say whether it can be answered. Other members
/// are skipped; a repeated member is an error (as it is to jsonrpsee).
#[derive(Deserialize)]
struct CallEnvelope {
    /// `None` when absent; `Some(Null)` for `"id": null`.
    #[serde(default, deserialize_with = "present")]
    id: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// An HTTP response carrying a JSON-RPC error with a null id.
fn error_response(status: http::StatusCode, error: ErrorObjectOwned) -> HttpResponse {
    let body = serde_json::json!({"jsonrpc": "2.0", "error": error, "id": null});
    http::Response::builder()
        .status(status)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(HttpBody::from(body.to_string()))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Option<Unanswerable> {
        unanswerable_single(body.as_bytes())
    }

    #[test]
    fn tells_calls_from_notifications_and_bad_ids() {
        assert_eq!(check(r#"{"jsonrpc":"2.0","id":1,"method":"m"}"#), None);
        assert_eq!(check(r#"{"jsonrpc":"2.0","id":"a","method":"m"}"#), None);
        assert_eq!(check(r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#), None);
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","method":"m","params":{}}"#),
            Some(Unanswerable::Notification {
                method: Some("m".into())
            })
        );
        for (id, found) in [
            (r#"{"a":1}"#, "an object"),
            ("[1]", "an array"),
            ("true", "a boolean"),
            ("-1", "a negative number"),
            ("1.5", "a fractional or out-of-range number"),
            (
                "18446744073709551616",
                "a fractional or out-of-range number",
            ),
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            assert_eq!(check(&body), Some(Unanswerable::BadId { found }), "{body}");
        }
        assert!(matches!(
            check(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#),
            Some(Unanswerable::Malformed(_))
        ));
        // Not JSON at all: jsonrpsee's parse error answers it.
        assert_eq!(check(r#"{"jsonrpc":"2.0","id":1"#), None);
    }
}
