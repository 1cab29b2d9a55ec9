//! The API routes: repository, branches, commits, contents, trees, blobs, raw files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gix::ObjectId;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::shapes::*;
use super::*;

pub(super) fn route(
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
            // Forgejo gives a submodule (a commit entry) an empty url.
            let url = match e.kind {
                "commit" => String::new(),
                "tree" => format!("{}/git/trees/{}", ctx.repo_url(), e.id),
                _ => format!("{}/git/blobs/{}", ctx.repo_url(), e.id),
            };
            json!({
                "path": e.path,
                "mode": e.mode,
                "type": e.kind,
                "size": e.size.unwrap_or(0),
                "sha": e.id.to_string(),
                "url": url,
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
