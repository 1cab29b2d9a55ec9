//! HTTP serving of the Forgejo API v1 subset: the request entry point, auth,
//! faults and the control routes; the API routes are in `routes.rs`, the JSON
//! shapes in `shapes.rs`.

mod routes;
mod shapes;

use routes::route;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::Emulator;
use crate::faults::{Fault, FaultKind};
use crate::repo::{CommitInfo, TreeEntry};

pub type ResponseBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (contents API uploads).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// Gitea's `DEFAULT_PAGING_NUM`, used for commit lists.
const DEFAULT_PAGE_SIZE: usize = 30;
const MAX_PAGE_SIZE: usize = 50;

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body that sends `first` and then fails, so the client sees a connection
/// dropped in the middle of a response.
struct AbortBody {
    first: Option<Bytes>,
}

impl Body for AbortBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.first.take() {
            Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            None => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "fault injected: connection aborted mid-body",
            )))),
        }
    }
}

/// A response before faults are applied.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: StatusCode, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json;charset=utf-8",
            body: Bytes::from(serde_json::to_vec(value).expect("JSON values serialize")),
            headers: Vec::new(),
        }
    }

    fn error(status: StatusCode, message: &str, url: &str) -> Self {
        Self::json(status, &json!({ "message": message, "url": url }))
    }

    fn not_found(url: &str) -> Self {
        Self::json(
            StatusCode::NOT_FOUND,
            &json!({ "errors": [], "message": "The target couldn't be found.", "url": url }),
        )
    }

    fn into_response(self) -> Response<ResponseBody> {
        let mut response = Response::new(full(self.body));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Entry point for every request.
pub async fn handle(
    emulator: Arc<Emulator>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = request.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        return Ok(control(&emulator, request, rest.to_string()).await);
    }
    let Some(api_path) = path.strip_prefix("/api/v1/") else {
        return Ok(Reply::not_found(&path).into_response());
    };
    let segments: Vec<String> = api_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let endpoint = endpoint_name(request.method(), &segments);
    let fault = emulator.control.on_request(endpoint, &path);
    if let Some(FaultKind::Delay { ms }) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let reply = match &fault {
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Reply::error(status, "fault injected by the emulator", &path)
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let mut reply = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded (fault injected)",
                &path,
            );
            reply
                .headers
                .push(("retry-after", retry_after_secs.to_string()));
            reply
        }
        Some(FaultKind::RateLimitDate { retry_after_secs }) => {
            let mut reply = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded (fault injected)",
                &path,
            );
            reply.headers.push((
                "retry-after",
                httpdate::fmt_http_date(
                    std::time::SystemTime::now()
                        + std::time::Duration::from_secs(*retry_after_secs),
                ),
            ));
            reply
        }
        Some(FaultKind::NotJson) => Reply {
            status: StatusCode::OK,
            content_type: "text/html",
            body: Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
            headers: Vec::new(),
        },
        _ => match authorize(&emulator, &request) {
            Err(reply) => reply,
            Ok(()) => {
                let host = request
                    .headers()
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost")
                    .to_string();
                let ctx = Ctx {
                    emulator: &emulator,
                    base: format!("http://{host}"),
                    query: parse_query(request.uri().query().unwrap_or("")),
                    path: path.clone(),
                };
                let method = request.method().clone();
                let body = if method == Method::POST || method == Method::PUT {
                    match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
                        .collect()
                        .await
                    {
                        Ok(collected) => collected.to_bytes(),
                        Err(e) => {
                            let reply = Reply::error(
                                StatusCode::BAD_REQUEST,
                                &format!("cannot read request body: {e}"),
                                &path,
                            );
                            return Ok(reply.into_response());
                        }
                    }
                } else {
                    Bytes::new()
                };
                route(&ctx, &method, &segments, &body).unwrap_or_else(|e| {
                    Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"), &path)
                })
            }
        },
    };
    Ok(match fault {
        Some(kind @ (FaultKind::DropEntry | FaultKind::EmptyTruncated)) => {
            tamper_tree(reply, &kind).into_response()
        }
        Some(FaultKind::SetField { field, value }) => {
            match serde_json::from_slice::<Value>(&reply.body) {
                Ok(Value::Object(mut object)) => {
                    object.insert(field, value);
                    Reply::json(reply.status, &Value::Object(object)).into_response()
                }
                _ => reply.into_response(),
            }
        }
        Some(FaultKind::Truncate) => {
            let cut = reply.body.slice(..reply.body.len() / 2);
            Reply { body: cut, ..reply }.into_response()
        }
        Some(FaultKind::Abort) => {
            let full_len = reply.body.len();
            let half = reply.body.slice(..full_len / 2);
            let mut response = Response::new(AbortBody { first: Some(half) }.boxed());
            *response.status_mut() = reply.status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(full_len.max(2) as u64));
            response
        }
        _ => reply.into_response(),
    })
}

/// Rewrites a tree page the way a broken server or proxy might.
fn tamper_tree(reply: Reply, kind: &FaultKind) -> Reply {
    let Ok(mut value) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    let Some(tree) = value.get_mut("tree").and_then(Value::as_array_mut) else {
        return reply;
    };
    match kind {
        FaultKind::DropEntry => {
            tree.pop();
        }
        _ => {
            tree.clear();
            value["truncated"] = Value::Bool(true);
        }
    }
    Reply::json(reply.status, &value)
}

/// The name a request is counted (and matched by faults) under.
pub fn endpoint_name(method: &Method, segments: &[String]) -> &'static str {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["user"] => "user",
        ["user", "repos"] => "user_repos",
        ["repos", _, _] => "repo",
        ["repos", _, _, "branches", _, ..] => "branch",
        ["repos", _, _, "commits"] => "commits",
        ["repos", _, _, "compare", ..] => "compare",
        ["repos", _, _, "contents", ..] if *method == Method::GET => "contents",
        ["repos", _, _, "contents", ..] => "contents_write",
        ["repos", _, _, "git", "trees", _] => "trees",
        ["repos", _, _, "git", "blobs", _] => "blobs",
        ["repos", _, _, "git", "blobs"] => "blobs_batch",
        ["version"] => "version",
        ["repos", _, _, "git", "commits", _] => "git_commit",
        ["repos", _, _, "raw", ..] => "raw",
        _ => "other",
    }
}

fn authorize(emulator: &Emulator, request: &Request<Incoming>) -> Result<(), Reply> {
    let Some(expected) = emulator.config.token.as_deref() else {
        return Ok(());
    };
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    // Like Forgejo: `token <t>` or `bearer <t>`, the scheme in any case.
    let given = header.and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
            .then(|| token.trim())
    });
    let path = request.uri().path();
    match (given, header) {
        (Some(token), _) if token == expected => Ok(()),
        (_, Some(_)) => Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            "user does not exist [uid: 0, name: ] or token is invalid",
            path,
        )),
        // Anonymous: a public repository can be read; a private one is not
        // there at all for the caller (404), as on Forgejo.
        (_, None) if path.starts_with("/api/v1/repos/") => {
            if emulator.config.public && request.method() == Method::GET {
                Ok(())
            } else if emulator.config.public {
                Err(Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "token is required",
                    path,
                ))
            } else {
                Err(Reply::not_found(path))
            }
        }
        (_, None) => Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            "token is required",
            path,
        )),
    }
}

struct Ctx<'a> {
    emulator: &'a Emulator,
    base: String,
    query: Vec<(String, String)>,
    path: String,
}

impl Ctx<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn q_usize(&self, name: &str) -> Option<usize> {
        self.q(name).and_then(|v| v.parse().ok())
    }

    fn repo_url(&self) -> String {
        let c = &self.emulator.config;
        format!("{}/api/v1/repos/{}/{}", self.base, c.owner, c.name)
    }

    fn html_url(&self) -> String {
        let c = &self.emulator.config;
        format!("{}/{}/{}", self.base, c.owner, c.name)
    }

    fn not_found(&self) -> Reply {
        Reply::not_found(&self.path)
    }
}

/// `/_emulator/...`: stats and faults over HTTP (no token needed).
async fn control(
    emulator: &Emulator,
    request: Request<Incoming>,
    rest: String,
) -> Response<ResponseBody> {
    let method = request.method().clone();
    let ok = |value: Value| Reply::json(StatusCode::OK, &value).into_response();
    match (method, rest.trim_end_matches('/')) {
        (Method::GET, "stats") => {
            ok(serde_json::to_value(emulator.control.stats()).expect("stats serialize"))
        }
        (Method::POST | Method::DELETE, "stats/reset") | (Method::DELETE, "stats") => {
            emulator.control.reset_stats();
            ok(json!({ "reset": true }))
        }
        (Method::GET, "faults") => {
            ok(serde_json::to_value(emulator.control.faults()).expect("faults serialize"))
        }
        (Method::DELETE, "faults") => {
            emulator.control.clear_faults();
            ok(json!({ "cleared": true }))
        }
        (Method::POST, "faults") => {
            let body = match Limited::new(request.into_body(), 1024 * 1024)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        &e.to_string(),
                        "/_emulator/faults",
                    )
                    .into_response();
                }
            };
            // One fault or a list of them.
            let parsed: Result<Vec<Fault>, _> = serde_json::from_slice::<Vec<Fault>>(&body)
                .or_else(|_| serde_json::from_slice::<Fault>(&body).map(|f| vec![f]));
            // All or nothing: a list with one bad fault installs none of them.
            if let Some(why) = parsed.iter().flatten().find_map(|f| f.check().err()) {
                return Reply::error(StatusCode::UNPROCESSABLE_ENTITY, &why, "/_emulator/faults")
                    .into_response();
            }
            match parsed {
                Ok(faults) => {
                    let n = faults.len();
                    for fault in faults {
                        emulator.control.add_fault(fault);
                    }
                    ok(json!({ "added": n }))
                }
                Err(e) => Reply::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!(
                        "invalid fault JSON ({e}); expected e.g. \
                         {{\"endpoint\":\"trees\",\"kind\":\"status\",\"status\":503,\"times\":2}}"
                    ),
                    "/_emulator/faults",
                )
                .into_response(),
            }
        }
        _ => Reply::not_found(&rest).into_response(),
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
