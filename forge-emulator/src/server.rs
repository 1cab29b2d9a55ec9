//! HTTP routing and the JSON shapes of the Forgejo API v1 subset.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use gix::ObjectId;
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

fn route(
    ctx: &Ctx<'_>,
    method: &Method,
    segments: &[String],
    body: &[u8],
) -> anyhow::Result<Reply> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let config = &ctx.emulator.config;
    if s.as_slice() == ["user"] && *method == Method::GET {
        return Ok(Reply::json(StatusCode::OK, &user_json(ctx)));
    }
    if s.as_slice() == ["version"] && *method == Method::GET {
        return Ok(Reply::json(
            StatusCode::OK,
            &json!({ "version": config.version }),
        ));
    }
    let ["repos", owner, name, rest @ ..] = s.as_slice() else {
        return Ok(ctx.not_found());
    };
    if *owner != config.owner || *name != config.name {
        return Ok(ctx.not_found());
    }
    let repo = &ctx.emulator.repo;
    match (method.clone(), rest) {
        (Method::GET, []) => Ok(Reply::json(StatusCode::OK, &repository_json(ctx)?)),
        (Method::GET, ["branches", branch @ ..]) => {
            let branch = branch.join("/");
            match repo.branch_head(&branch)? {
                None => Ok(ctx.not_found()),
                Some(head) => {
                    let info = repo
                        .commit_info(head)?
                        .ok_or_else(|| anyhow::anyhow!("branch {branch} is not a commit"))?;
                    Ok(Reply::json(
                        StatusCode::OK,
                        &json!({
                            "name": branch,
                            "commit": payload_commit_json(ctx, &info),
                            "protected": false,
                            "required_approvals": 0,
                            "enable_status_check": false,
                            "status_check_contexts": [],
                            "user_can_push": true,
                            "user_can_merge": true,
                            "effective_branch_protection_name": "",
                        }),
                    ))
                }
            }
        }
        (Method::GET, ["git", "trees", sha]) => git_tree(ctx, sha),
        (Method::GET, ["git", "blobs", sha]) => match blob_json(ctx, sha)? {
            Ok(blob) => Ok(Reply::json(StatusCode::OK, &blob)),
            Err(reply) => Ok(reply),
        },
        // Forgejo 12 and later: up to 50 blobs a call; one unknown sha fails the call.
        (Method::GET, ["git", "blobs"]) if config.serves_blob_batches() => {
            let shas: Vec<&str> = ctx
                .q("shas")
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .collect();
            if shas.is_empty() || shas.len() > MAX_BLOB_BATCH {
                return Ok(Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "shas must list 1 to {MAX_BLOB_BATCH} blob shas, got {}",
                        shas.len()
                    ),
                    &ctx.path,
                ));
            }
            let mut blobs = Vec::with_capacity(shas.len());
            for sha in shas {
                match blob_json(ctx, sha)? {
                    Ok(blob) => blobs.push(blob),
                    Err(reply) => return Ok(reply),
                }
            }
            Ok(Reply::json(StatusCode::OK, &Value::Array(blobs)))
        }
        (Method::GET, ["git", "commits", sha]) => match repo.resolve(sha)? {
            None => Ok(ctx.not_found()),
            Some(id) => match repo.commit_info(id)? {
                None => Ok(ctx.not_found()),
                Some(info) => Ok(Reply::json(StatusCode::OK, &commit_json(ctx, &info))),
            },
        },
        (Method::GET, ["commits"]) => commits(ctx),
        (Method::GET, ["raw", path @ ..]) => {
            let reference = ctx.q("ref").unwrap_or(&config.default_branch);
            let Some(root) = repo.resolve(reference)? else {
                return Ok(ctx.not_found());
            };
            match repo.entry_at(root, &path.join("/"))? {
                Some(entry) if entry.kind == "blob" => {
                    let bytes = repo.blob(entry.id)?.unwrap_or_default();
                    Ok(Reply {
                        status: StatusCode::OK,
                        content_type: "application/octet-stream",
                        body: Bytes::from(bytes),
                        headers: Vec::new(),
                    })
                }
                _ => Ok(ctx.not_found()),
            }
        }
        (Method::GET, ["contents", path @ ..]) => {
            let reference = ctx.q("ref").unwrap_or(&config.default_branch);
            let Some(root) = repo.resolve(reference)? else {
                return Ok(ctx.not_found());
            };
            let path = path.join("/");
            match repo.entry_at(root, &path)? {
                None => Ok(ctx.not_found()),
                Some(entry) if entry.kind == "tree" => {
                    let listing: Vec<Value> = repo
                        .tree_entries(entry.id, false)?
                        .iter()
                        .map(|child| {
                            let full = if path.is_empty() {
                                child.path.clone()
                            } else {
                                format!("{path}/{}", child.path)
                            };
                            contents_json(ctx, &full, child, None, reference)
                        })
                        .collect();
                    Ok(Reply::json(StatusCode::OK, &Value::Array(listing)))
                }
                Some(entry) => {
                    let bytes = repo.blob(entry.id)?.unwrap_or_default();
                    Ok(Reply::json(
                        StatusCode::OK,
                        &contents_json(ctx, &path, &entry, Some(&bytes), reference),
                    ))
                }
            }
        }
        (m, ["contents", path @ ..]) if m == Method::POST || m == Method::PUT => {
            write_file(ctx, m == Method::POST, &path.join("/"), body)
        }
        _ => Ok(ctx.not_found()),
    }
}

/// Most blobs of one batch call (Forgejo 12).
const MAX_BLOB_BATCH: usize = 50;

/// Blob `sha` as `git/blobs` answers it, or the error reply for an invalid or
/// unknown sha.
fn blob_json(ctx: &Ctx<'_>, sha: &str) -> anyhow::Result<Result<Value, Reply>> {
    let config = &ctx.emulator.config;
    let Ok(id) = ObjectId::from_hex(sha.as_bytes()) else {
        return Ok(Err(Reply::error(
            StatusCode::BAD_REQUEST,
            &format!("invalid sha {sha:?}"),
            &ctx.path,
        )));
    };
    Ok(match ctx.emulator.repo.blob(id)? {
        // Like Forgejo: an unknown sha is a bad request.
        None => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            &format!("object does not exist [id: {id}, rel_path: ]"),
            &ctx.path,
        )),
        Some(bytes) => Ok(json!({
            // Like Forgejo: over the cap the content is empty, the size real.
            "content": if bytes.len() as u64 > config.max_blob_size {
                String::new()
            } else {
                BASE64.encode(&bytes)
            },
            "encoding": "base64",
            "url": format!("{}/git/blobs/{id}", ctx.repo_url()),
            "sha": id.to_string(),
            "size": bytes.len(),
        })),
    })
}

fn git_tree(ctx: &Ctx<'_>, sha: &str) -> anyhow::Result<Reply> {
    let repo = &ctx.emulator.repo;
    // Like Forgejo: an unknown sha is a bad request, not a missing route.
    let Some(id) = repo.resolve(sha)? else {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            &format!("sha not found [{sha}]"),
            &ctx.path,
        ));
    };
    let Some(tree_id) = repo.tree_of(id)? else {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            &format!("sha {sha} is not a tree or commit"),
            &ctx.path,
        ));
    };
    let recursive = matches!(ctx.q("recursive"), Some("true" | "1"));
    let max = ctx.emulator.config.tree_page_max;
    let per_page = match ctx.q_usize("per_page") {
        Some(n) if n > 0 && n <= max => n,
        _ => max,
    };
    let page = ctx.q_usize("page").filter(|p| *p > 0).unwrap_or(1);
    let entries = repo.tree_entries(tree_id, recursive)?;
    let start = per_page.saturating_mul(page - 1);
    // As Forgejo's services/repository/files/tree.go: `truncated` is true on every
    // page (the last one included) of a listing longer than one page, and a page
    // past the end answers `truncated: false` with `"tree": null`.
    let past_end = start >= entries.len() && !entries.is_empty();
    let truncated = entries.len() > per_page && !past_end;
    let slice = &entries[start.min(entries.len())..(start + per_page).min(entries.len())];
    let tree: Vec<Value> = slice
        .iter()
        .map(|e| {
            let kind = if e.kind == "tree" { "trees" } else { "blobs" };
            json!({
                "path": e.path,
                "mode": e.mode,
                "type": e.kind,
                "size": e.size.unwrap_or(0),
                "sha": e.id.to_string(),
                "url": format!("{}/git/{kind}/{}", ctx.repo_url(), e.id),
            })
        })
        .collect();
    let mut reply = Reply::json(
        StatusCode::OK,
        &json!({
            "sha": tree_id.to_string(),
            "url": format!("{}/git/trees/{tree_id}", ctx.repo_url()),
            "tree": if past_end { Value::Null } else { Value::Array(tree) },
            "truncated": truncated,
            "page": page,
            "total_count": entries.len(),
        }),
    );
    reply
        .headers
        .push(("x-total-count", entries.len().to_string()));
    Ok(reply)
}

fn commits(ctx: &Ctx<'_>) -> anyhow::Result<Reply> {
    let repo = &ctx.emulator.repo;
    let reference = ctx.q("sha").unwrap_or(&ctx.emulator.config.default_branch);
    let Some(start) = repo.resolve(reference)? else {
        if !repo.has_any_branch()? {
            return Ok(Reply::error(
                StatusCode::CONFLICT,
                "Git Repository is empty.",
                &ctx.path,
            ));
        }
        return Ok(ctx.not_found());
    };
    let path = ctx.q("path").unwrap_or("").trim_matches('/').to_string();
    // Like Gitea: `limit` is ignored when `path` is given.
    let limit = if path.is_empty() {
        ctx.q_usize("limit")
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .min(MAX_PAGE_SIZE)
    } else {
        DEFAULT_PAGE_SIZE
    };
    let page = ctx.q_usize("page").filter(|p| *p > 0).unwrap_or(1);
    let (ids, total) = repo.commits_touching(start, &path, limit * (page - 1), limit)?;
    let mut list = Vec::new();
    for id in ids {
        if let Some(info) = repo.commit_info(id)? {
            list.push(commit_json(ctx, &info));
        }
    }
    let page_count = total.div_ceil(limit);
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(list));
    reply.headers = vec![
        ("x-total", total.to_string()),
        ("x-page", page.to_string()),
        ("x-perpage", limit.to_string()),
        ("x-pagecount", page_count.to_string()),
        ("x-hasmore", (page < page_count).to_string()),
    ];
    Ok(reply)
}

#[derive(serde::Deserialize)]
struct FileOptions {
    content: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    sha: Option<String>,
}

fn write_file(ctx: &Ctx<'_>, create: bool, path: &str, body: &[u8]) -> anyhow::Result<Reply> {
    let repo = &ctx.emulator.repo;
    let options: FileOptions = match serde_json::from_slice(body) {
        Ok(o) => o,
        Err(e) => {
            return Ok(Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("invalid JSON body: {e}"),
                &ctx.path,
            ));
        }
    };
    let Some(content) = options.content else {
        return Ok(Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "content is required (base64)",
            &ctx.path,
        ));
    };
    let Ok(bytes) = BASE64.decode(content.trim()) else {
        return Ok(Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "content is not valid base64",
            &ctx.path,
        ));
    };
    let branch = options
        .branch
        .unwrap_or_else(|| ctx.emulator.config.default_branch.clone());
    let existing = match repo.branch_head(&branch)? {
        Some(head) => repo.entry_at(head, path)?,
        None => None,
    };
    if create && existing.is_some() {
        return Ok(Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("repository file already exists [path: {path}]"),
            &ctx.path,
        ));
    }
    if !create {
        match (&existing, options.sha.as_deref()) {
            (_, None) => {
                return Ok(Reply::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "sha is required to update a file",
                    &ctx.path,
                ));
            }
            (None, Some(_)) => return Ok(ctx.not_found()),
            (Some(entry), Some(sha))
                if ObjectId::from_hex(sha.as_bytes()).ok() != Some(entry.id) =>
            {
                return Ok(Reply::error(
                    StatusCode::CONFLICT,
                    &format!("sha does not match [given: {sha}, expected: {}]", entry.id),
                    &ctx.path,
                ));
            }
            _ => {}
        }
    }
    let message = options.message.unwrap_or_else(|| {
        if create {
            format!("Add {path}")
        } else {
            format!("Update {path}")
        }
    });
    let commit = repo.commit_files(
        &branch,
        &[(path.to_string(), Some(bytes.clone()))],
        &message,
    )?;
    let info = repo
        .commit_info(commit)?
        .ok_or_else(|| anyhow::anyhow!("new commit {commit} cannot be read back"))?;
    let entry = repo
        .entry_at(commit, path)?
        .ok_or_else(|| anyhow::anyhow!("new file {path} cannot be read back"))?;
    let status = if create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(
        status,
        &json!({
            "content": contents_json(ctx, path, &entry, Some(&bytes), &branch),
            "commit": {
                "url": format!("{}/git/commits/{commit}", ctx.repo_url()),
                "html_url": format!("{}/commit/{commit}", ctx.html_url()),
                "sha": commit.to_string(),
                "created": rfc3339(info.committer_seconds),
                "author": commit_user(&info.author_name, &info.author_email, info.author_seconds),
                "committer": commit_user(&info.committer_name, &info.committer_email, info.committer_seconds),
                "parents": info.parents.iter().map(|p| commit_meta(ctx, p, info.committer_seconds)).collect::<Vec<_>>(),
                "message": info.message,
                "tree": {
                    "url": format!("{}/git/trees/{}", ctx.repo_url(), info.tree),
                    "sha": info.tree.to_string(),
                    "created": rfc3339(info.committer_seconds),
                },
            },
            "verification": unsigned(),
        }),
    ))
}

fn contents_json(
    ctx: &Ctx<'_>,
    path: &str,
    entry: &TreeEntry,
    bytes: Option<&[u8]>,
    reference: &str,
) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (kind, git_kind) = match entry.kind {
        "tree" => ("dir", "trees"),
        "commit" => ("submodule", "commits"),
        _ if entry.mode == "120000" => ("symlink", "blobs"),
        _ => ("file", "blobs"),
    };
    let self_url = format!("{}/contents/{path}?ref={reference}", ctx.repo_url());
    let git_url = format!("{}/git/{git_kind}/{}", ctx.repo_url(), entry.id);
    let html_url = format!("{}/src/branch/{reference}/{path}", ctx.html_url());
    let download_url =
        (kind == "file").then(|| format!("{}/raw/branch/{reference}/{path}", ctx.html_url()));
    json!({
        "name": name,
        "path": path,
        "sha": entry.id.to_string(),
        "last_commit_sha": null,
        "type": kind,
        "size": entry.size.unwrap_or(0),
        "encoding": bytes.map(|_| "base64"),
        "content": bytes.map(|b| BASE64.encode(b)),
        "target": null,
        "url": self_url,
        "html_url": html_url,
        "git_url": git_url,
        "download_url": download_url,
        "submodule_git_url": null,
        "_links": { "self": self_url, "git": git_url, "html": html_url },
    })
}

fn rfc3339(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn unsigned() -> Value {
    json!({
        "verified": false,
        "reason": "gpg.error.not_signed_commit",
        "signature": "",
        "signer": null,
        "payload": "",
    })
}

fn commit_user(name: &str, email: &str, seconds: i64) -> Value {
    json!({ "name": name, "email": email, "date": rfc3339(seconds) })
}

fn commit_meta(ctx: &Ctx<'_>, id: &ObjectId, seconds: i64) -> Value {
    json!({
        "url": format!("{}/git/commits/{id}", ctx.repo_url()),
        "sha": id.to_string(),
        "created": rfc3339(seconds),
    })
}

fn payload_commit_json(ctx: &Ctx<'_>, info: &CommitInfo) -> Value {
    let user = |name: &str, email: &str| json!({ "name": name, "email": email, "username": "" });
    json!({
        "id": info.id.to_string(),
        "message": info.message,
        "url": format!("{}/commit/{}", ctx.html_url(), info.id),
        "author": user(&info.author_name, &info.author_email),
        "committer": user(&info.committer_name, &info.committer_email),
        "verification": unsigned(),
        "timestamp": rfc3339(info.committer_seconds),
        "added": null,
        "removed": null,
        "modified": null,
    })
}

fn commit_json(ctx: &Ctx<'_>, info: &CommitInfo) -> Value {
    json!({
        "url": format!("{}/git/commits/{}", ctx.repo_url(), info.id),
        "sha": info.id.to_string(),
        "created": rfc3339(info.committer_seconds),
        "html_url": format!("{}/commit/{}", ctx.html_url(), info.id),
        "commit": {
            "url": format!("{}/git/commits/{}", ctx.repo_url(), info.id),
            "author": commit_user(&info.author_name, &info.author_email, info.author_seconds),
            "committer": commit_user(&info.committer_name, &info.committer_email, info.committer_seconds),
            "message": info.message,
            "tree": commit_meta(ctx, &info.tree, info.committer_seconds),
            "verification": unsigned(),
        },
        // The committer has no forge account: Gitea sends null.
        "author": null,
        "committer": null,
        "parents": info.parents.iter().map(|p| commit_meta(ctx, p, info.committer_seconds)).collect::<Vec<_>>(),
        "files": null,
        "stats": null,
    })
}

fn user_json(ctx: &Ctx<'_>) -> Value {
    json!({
        "id": 1,
        "login": ctx.emulator.config.owner,
        "login_name": "",
        "source_id": 0,
        "full_name": "",
        "email": "owner@localhost",
        "avatar_url": format!("{}/avatars/1", ctx.base),
        "language": "",
        "is_admin": false,
        "last_login": rfc3339(0),
        "created": rfc3339(0),
        "restricted": false,
        "active": true,
        "prohibit_login": false,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
    })
}

fn repository_json(ctx: &Ctx<'_>) -> anyhow::Result<Value> {
    let config = &ctx.emulator.config;
    let empty = !ctx.emulator.repo.has_any_branch()?;
    Ok(json!({
        "id": 1,
        "owner": user_json(ctx),
        "name": config.name,
        "full_name": format!("{}/{}", config.owner, config.name),
        "description": "billing repo (emulated)",
        "empty": empty,
        "private": !config.public,
        "fork": false,
        "template": false,
        "parent": null,
        "mirror": false,
        "size": 0,
        "language": "",
        "languages_url": format!("{}/languages", ctx.repo_url()),
        "html_url": ctx.html_url(),
        "url": ctx.repo_url(),
        "link": "",
        "ssh_url": "",
        "clone_url": format!("{}.git", ctx.html_url()),
        "original_url": "",
        "website": "",
        "stars_count": 0,
        "forks_count": 0,
        "watchers_count": 0,
        "open_issues_count": 0,
        "open_pr_counter": 0,
        "release_counter": 0,
        "default_branch": config.default_branch,
        "archived": false,
        "created_at": rfc3339(0),
        "updated_at": rfc3339(0),
        "archived_at": rfc3339(0),
        "permissions": { "admin": true, "push": true, "pull": true },
        "has_issues": false,
        "internal_tracker": null,
        "external_tracker": null,
        "has_wiki": false,
        "external_wiki": null,
        "has_pull_requests": false,
        "has_projects": false,
        "has_releases": false,
        "has_packages": false,
        "has_actions": false,
        "ignore_whitespace_conflicts": false,
        "allow_merge_commits": true,
        "allow_rebase": true,
        "allow_rebase_explicit": true,
        "allow_squash_merge": true,
        "allow_fast_forward_only_merge": true,
        "allow_rebase_update": true,
        "default_delete_branch_after_merge": false,
        "default_merge_style": "merge",
        "default_allow_maintainer_edit": false,
        "avatar_url": "",
        "internal": false,
        "mirror_interval": "",
        "object_format_name": "sha1",
        "mirror_updated": rfc3339(0),
        "repo_transfer": null,
    }))
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
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
