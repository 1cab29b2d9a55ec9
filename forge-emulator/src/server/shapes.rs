//! The JSON shapes of commits, users, repositories and contents entries.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gix::ObjectId;
use serde_json::{Value, json};

use super::*;

pub(super) fn contents_json(
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

pub(super) fn rfc3339(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

pub(super) fn unsigned() -> Value {
    json!({
        "verified": false,
        "reason": "gpg.error.not_signed_commit",
        "signature": "",
        "signer": null,
        "payload": "",
    })
}

pub(super) fn commit_user(name: &str, email: &str, seconds: i64) -> Value {
    json!({ "name": name, "email": email, "date": rfc3339(seconds) })
}

pub(super) fn commit_meta(ctx: &Ctx<'_>, id: &ObjectId, seconds: i64) -> Value {
    json!({
        "url": format!("{}/git/commits/{id}", ctx.repo_url()),
        "sha": id.to_string(),
        "created": rfc3339(seconds),
    })
}

pub(super) fn payload_commit_json(ctx: &Ctx<'_>, info: &CommitInfo) -> Value {
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

pub(super) fn commit_json(ctx: &Ctx<'_>, info: &CommitInfo) -> Value {
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

pub(super) fn user_json(ctx: &Ctx<'_>) -> Value {
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

pub(super) fn repository_json(ctx: &Ctx<'_>) -> anyhow::Result<Value> {
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
