//! The JSON shapes of the forge's answers that the source reads, and what
//! the source takes from them: the checked object ids, the node directories
//! and usage files of a tree listing, the bytes of a blob. Pure functions of
//! the answer, so that they can be fuzzed without a forge (`crate::fuzzing`).

use base64::Engine as _;
use billing_api::otoml::{is_usage_file_name, is_valid_node_name};
use serde::Deserialize;

use crate::source::{FileEntry, NodeTree};

#[derive(Deserialize)]
pub(crate) struct Branch {
    pub(crate) commit: Option<BranchCommit>,
}

#[derive(Deserialize)]
pub(crate) struct BranchCommit {
    pub(crate) id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Repository {
    pub(crate) empty: Option<bool>,
    pub(crate) default_branch: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct TreePage {
    pub(crate) tree: Option<Vec<TreeItem>>,
    pub(crate) truncated: Option<bool>,
    pub(crate) page: Option<u64>,
    pub(crate) total_count: Option<u64>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct TreeItem {
    pub(crate) path: Option<String>,
    pub(crate) mode: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) sha: Option<String>,
    pub(crate) size: Option<u64>,
}

pub(crate) fn check_object_id(id: &str) -> Result<(), String> {
    if (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{id:?} is not a git object id"))
    }
}

pub(crate) fn entry_sha(entry: &TreeItem) -> Result<String, String> {
    let sha = entry.sha.clone().ok_or("the entry has no sha")?;
    check_object_id(&sha)?;
    Ok(sha.to_ascii_lowercase())
}

/// A blob answer of `git/blobs/{sha}` or `git/blobs?shas=`.
#[derive(Deserialize)]
pub(crate) struct Blob {
    pub(crate) content: Option<String>,
    pub(crate) encoding: Option<String>,
    pub(crate) sha: Option<String>,
    pub(crate) size: Option<u64>,
}

/// What a blob answer holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlobContent {
    /// The content, decoded (not yet checked against the blob id).
    Bytes(Vec<u8>),
    /// No content but a size: the blob is over the forge's size cap
    /// (`[api] DEFAULT_MAX_BLOB_SIZE`) and must be read as a file.
    OverCap,
}

/// The commit id a branch answer names.
pub(crate) fn branch_head(branch: Branch) -> Result<String, String> {
    let id = branch
        .commit
        .and_then(|c| c.id)
        .ok_or("the answer has no commit id")?;
    check_object_id(&id)?;
    Ok(id)
}

/// The node directories among the entries of `nodes/`, sorted by name, and
/// the names of directories skipped because they are not valid node names.
pub(crate) fn node_trees(entries: &[TreeItem]) -> Result<(Vec<NodeTree>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        if entry.kind.as_deref() != Some("tree") {
            continue;
        }
        let name = entry.path.clone().unwrap_or_default();
        if !is_valid_node_name(&name) {
            skipped.push(name);
            continue;
        }
        let tree_id = entry_sha(entry).map_err(|e| format!("entry nodes/{name}: {e}"))?;
        out.push(NodeTree {
            node_name: name,
            tree_id,
        });
    }
    out.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    Ok((out, skipped))
}

/// The usage files among the entries of node `node`'s directory (`what`, in
/// messages), sorted by path.
pub(crate) fn usage_files(
    node: &str,
    entries: &[TreeItem],
    what: &str,
) -> Result<Vec<FileEntry>, String> {
    let mut out = Vec::new();
    for entry in entries {
        // Regular files only: symlinks (120000) and submodules are not usage files.
        let is_file = entry.kind.as_deref() == Some("blob")
            && matches!(entry.mode.as_deref(), Some("100644" | "100755") | None);
        let name = entry.path.as_deref().unwrap_or_default();
        if !is_file || name.contains('/') || !is_usage_file_name(name) {
            continue;
        }
        let blob_id = entry_sha(entry).map_err(|e| format!("entry {name} in {what}: {e}"))?;
        out.push(FileEntry {
            path: format!("nodes/{node}/{name}"),
            blob_id,
            size: entry.size,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The content of a blob answer for blob `blob_id`.
pub(crate) fn blob_content(blob: Blob, blob_id: &str) -> Result<BlobContent, String> {
    if let Some(sha) = blob.sha.as_deref()
        && !sha.eq_ignore_ascii_case(blob_id)
    {
        return Err(format!("the forge answered with blob {sha}"));
    }
    match blob.encoding.as_deref() {
        Some("base64") => {}
        other => {
            let found = other.map_or("no encoding".to_string(), |e| format!("encoding {e}"));
            return Err(format!(
                "the forge answered with {found}, expected base64; check that --forge-url \
                 points at a Forgejo or Gitea server (API v1)"
            ));
        }
    }
    let content = blob.content.unwrap_or_default();
    // Forgejo sends a blob over its `[api] DEFAULT_MAX_BLOB_SIZE` (10 MiB by
    // default) with empty content and its real size.
    if content.is_empty() && blob.size.is_some_and(|s| s > 0) {
        return Ok(BlobContent::OverCap);
    }
    let compact: String = content
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(BlobContent::Bytes)
        .map_err(|e| format!("content is not valid base64 ({e})"))
}
