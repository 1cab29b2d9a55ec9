//! The JSON shapes of the forge's answers that the source reads, and the
//! checks of the object ids in them.

use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct Branch {
    pub(super) commit: Option<BranchCommit>,
}

#[derive(Deserialize)]
pub(super) struct BranchCommit {
    pub(super) id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Repository {
    pub(super) empty: Option<bool>,
    pub(super) default_branch: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TreePage {
    pub(super) tree: Option<Vec<TreeItem>>,
    pub(super) truncated: Option<bool>,
    pub(super) page: Option<u64>,
    pub(super) total_count: Option<u64>,
}

#[derive(Deserialize, Clone)]
pub(super) struct TreeItem {
    pub(super) path: Option<String>,
    pub(super) mode: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) sha: Option<String>,
    pub(super) size: Option<u64>,
}

pub(super) fn check_id(id: &str) -> Result<(), String> {
    if (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{id:?} is not a git object id"))
    }
}

pub(super) fn entry_sha(entry: &TreeItem) -> Result<String, String> {
    let sha = entry.sha.clone().ok_or("the entry has no sha")?;
    check_id(&sha)?;
    Ok(sha.to_ascii_lowercase())
}
