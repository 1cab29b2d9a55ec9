//! The git billing repo: a local repository read in place, or a remote one
//! mirrored (bare) into the data dir and fetched before every `head()`.
//!
//! All gix work runs on the blocking pool; the shared `ThreadSafeRepository`
//! is turned into a cheap thread-local handle per call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use billing_api::otoml::{is_usage_file_name, is_valid_node_name};
use billing_api::text::error_chain;
use gix::bstr::ByteSlice;
use reqwest::Url;

use super::{FileBody, FileEntry, NodeTree, SourceError};

/// A billing repo on one branch. Cloning is cheap (shared handle).
#[derive(Clone)]
pub struct GitSource {
    inner: Arc<Inner>,
}

struct Inner {
    repo: gix::ThreadSafeRepository,
    branch: String,
    /// `refs/heads/<branch>`.
    branch_ref: String,
    origin: Origin,
    /// Fetches of a mirrored remote.
    stats: super::RequestStats,
}

enum Origin {
    /// Read in place.
    Local(PathBuf),
    /// Mirrored into `mirror`; `url` may hold credentials and is never shown.
    Remote {
        url: String,
        redacted: String,
        mirror: PathBuf,
    },
}

impl GitSource {
    /// Opens `repo` (a local path, or a `file://`, `http://` or `https://`
    /// URL mirrored into `mirror_dir`) to read branch `branch`.
    pub fn open(repo: &str, branch: &str, mirror_dir: &Path) -> Result<GitSource, SourceError> {
        let branch_ref = format!("refs/heads/{branch}");
        if branch.is_empty() || gix::refs::FullName::try_from(branch_ref.as_str()).is_err() {
            return Err(SourceError::new(format!(
                "{branch:?} is not a valid branch name; check --branch"
            )));
        }
        let (handle, origin) = if is_url(repo) {
            let redacted = redact_url(repo);
            (
                open_mirror(mirror_dir, &redacted)?,
                Origin::Remote {
                    url: repo.to_string(),
                    redacted,
                    mirror: mirror_dir.to_path_buf(),
                },
            )
        } else {
            let path = PathBuf::from(repo);
            (open_local(&path)?, Origin::Local(path))
        };
        Ok(GitSource {
            inner: Arc::new(Inner {
                repo: handle,
                branch: branch.to_string(),
                branch_ref,
                origin,
                stats: super::RequestStats::default(),
            }),
        })
    }

    /// Fetches of a mirrored remote so far.
    pub fn request_stats(&self) -> &super::RequestStats {
        &self.inner.stats
    }

    /// The repo path or URL (credentials redacted) and the branch.
    pub fn describe(&self) -> String {
        let inner = &self.inner;
        match &inner.origin {
            Origin::Local(path) => format!("git repo {} (branch {})", path.display(), inner.branch),
            Origin::Remote {
                redacted, mirror, ..
            } => format!(
                "git repo {redacted} (branch {}, mirrored in {})",
                inner.branch,
                mirror.display()
            ),
        }
    }

    /// Fetches a mirrored remote, then returns the branch head commit id, or
    /// `None` when the repo has no commit at all yet.
    pub async fn head(&self) -> Result<Option<String>, SourceError> {
        self.blocking(|inner| {
            let repo = inner.local();
            if let Origin::Remote { url, redacted, .. } = &inner.origin {
                let fetched = inner.fetch(&repo, url, redacted);
                match &fetched {
                    Ok(_) => inner.stats.ok(),
                    Err(_) => inner.stats.failed(),
                }
                if !fetched? {
                    return Ok(None);
                }
            }
            inner.resolve_head(&repo)
        })
        .await
    }

    /// Node directories under `nodes/` at commit `head`, sorted by name.
    pub async fn nodes(&self, head: &str) -> Result<Vec<NodeTree>, SourceError> {
        let head = head.to_string();
        self.blocking(move |inner| {
            let repo = inner.local();
            let commit_id = parse_id(&head, "commit")?;
            let commit = repo
                .find_commit(commit_id)
                .map_err(|e| inner.error(format!("cannot read commit {head}"), e))?;
            let root = commit
                .tree()
                .map_err(|e| inner.error(format!("cannot read the tree of commit {head}"), e))?;
            let Some(nodes_entry) = root.find_entry("nodes") else {
                return Ok(Vec::new());
            };
            if !nodes_entry.mode().is_tree() {
                tracing::warn!(commit = %head, "`nodes` is a file, not a directory; no node is read");
                return Ok(Vec::new());
            }
            let nodes_id = nodes_entry.object_id();
            let nodes = repo
                .find_tree(nodes_id)
                .map_err(|e| inner.error(format!("cannot read tree nodes/ ({nodes_id})"), e))?;
            let mut out = Vec::new();
            for entry in nodes.iter() {
                let entry = entry
                    .map_err(|e| inner.error(format!("corrupt tree nodes/ ({nodes_id})"), e))?;
                if !entry.mode().is_tree() {
                    continue;
                }
                let name = entry.filename();
                match name.to_str() {
                    Ok(name) if is_valid_node_name(name) => out.push(NodeTree {
                        node_name: name.to_string(),
                        tree_id: entry.object_id().to_string(),
                    }),
                    _ => tracing::warn!(
                        commit = %head,
                        dir = %name,
                        "skipping nodes/ entry: node names must match [A-Za-z0-9._-]{{1,128}}"
                    ),
                }
            }
            out.sort_by(|a, b| a.node_name.cmp(&b.node_name));
            Ok(out)
        })
        .await
    }

    /// Usage files directly in one node directory, sorted by path.
    pub async fn files(&self, node: &NodeTree) -> Result<Vec<FileEntry>, SourceError> {
        let node = node.clone();
        self.blocking(move |inner| {
            let repo = inner.local();
            let tree_id = parse_id(&node.tree_id, "tree")?;
            let what = || format!("tree nodes/{} ({})", node.node_name, node.tree_id);
            let tree = repo
                .find_tree(tree_id)
                .map_err(|e| inner.error(format!("cannot read {}", what()), e))?;
            let mut out = Vec::new();
            for entry in tree.iter() {
                let entry = entry.map_err(|e| inner.error(format!("corrupt {}", what()), e))?;
                if !entry.mode().is_blob() {
                    continue;
                }
                let Ok(name) = entry.filename().to_str() else {
                    continue;
                };
                if is_usage_file_name(name) {
                    out.push(FileEntry {
                        path: format!("nodes/{}/{name}", node.node_name),
                        blob_id: entry.object_id().to_string(),
                        // Sizes are checked in `read`, where the header is needed anyway.
                        size: None,
                    });
                }
            }
            out.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(out)
        })
        .await
    }

    /// `files` with the size of each blob, from its object header.
    pub async fn fill_sizes(
        &self,
        mut files: Vec<FileEntry>,
    ) -> Result<Vec<FileEntry>, SourceError> {
        self.blocking(move |inner| {
            let repo = inner.local();
            for file in files.iter_mut().filter(|f| f.size.is_none()) {
                let id = parse_id(&file.blob_id, "blob")?;
                let header = repo.find_header(id).map_err(|e| {
                    inner.error(
                        format!("cannot find {} (blob {})", file.path, file.blob_id),
                        e,
                    )
                })?;
                file.size = Some(header.size());
            }
            Ok(files)
        })
        .await
    }

    /// Bodies of `files` in order; blobs over `max_bytes` are not loaded.
    pub async fn read(
        &self,
        files: &[FileEntry],
        max_bytes: u64,
    ) -> Result<Vec<FileBody>, SourceError> {
        let files = files.to_vec();
        self.blocking(move |inner| {
            let repo = inner.local();
            files
                .iter()
                .map(|file| {
                    let id = parse_id(&file.blob_id, "blob")?;
                    let what = || format!("{} (blob {})", file.path, file.blob_id);
                    let header = repo
                        .find_header(id)
                        .map_err(|e| inner.error(format!("cannot find {}", what()), e))?;
                    if header.kind() != gix::objs::Kind::Blob {
                        return Err(SourceError::new(format!(
                            "{} is a {}, not a file, in {}",
                            what(),
                            header.kind(),
                            inner.describe_repo()
                        )));
                    }
                    if header.size() > max_bytes {
                        return Ok(FileBody::TooLarge {
                            size: header.size(),
                        });
                    }
                    let mut blob = repo
                        .find_blob(id)
                        .map_err(|e| inner.error(format!("cannot read {}", what()), e))?;
                    Ok(FileBody::Data(blob.take_data()))
                })
                .collect()
        })
        .await
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SourceError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| SourceError::new(format!("git source task failed: {e}")))?
    }
}

impl Inner {
    /// A thread-local handle. No object cache: every object is read once per
    /// pass; packed deltas use gix's small static pack cache.
    fn local(&self) -> gix::Repository {
        self.repo.to_thread_local()
    }

    fn describe_repo(&self) -> String {
        match &self.origin {
            Origin::Local(path) => path.display().to_string(),
            Origin::Remote { redacted, .. } => redacted.clone(),
        }
    }

    fn error(&self, what: String, e: impl std::error::Error) -> SourceError {
        SourceError::new(format!(
            "{what} in {}: {}",
            self.describe_repo(),
            error_chain(&e)
        ))
    }

    /// Updates the mirror's branch from the remote (forced, so rewritten
    /// history is mirrored as is). Returns `false` when the remote has no
    /// refs at all, i.e. nothing was ever pushed.
    fn fetch(
        &self,
        repo: &gix::Repository,
        url: &str,
        redacted: &str,
    ) -> Result<bool, SourceError> {
        use gix::remote::Direction;
        let fail = |step: &str, e: &dyn std::error::Error| {
            let detail = scrub_credentials(&error_chain(e), url, redacted);
            SourceError::new(format!(
                "fetching branch {} from {redacted} failed ({step}): {detail}; check that the URL is reachable and the credentials are valid",
                self.branch
            ))
        };
        let spec = format!("+{0}:{0}", self.branch_ref);
        let remote = repo
            .remote_at(url)
            .map_err(|e| fail("invalid URL", &e))?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs([spec.as_str()], Direction::Fetch)
            .map_err(|e| fail("refspec", &e))?;
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| fail("connect", &e))?;
        let options = gix::remote::ref_map::Options {
            // List every ref, so a missing branch can be reported with the ones that exist.
            prefix_from_spec_as_filter_on_remote: false,
            ..Default::default()
        };
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, options)
            .map_err(|e| fail("listing refs", &e))?;
        let remote_refs = &prepare.ref_map().remote_refs;
        let has_branch = remote_refs
            .iter()
            .any(|r| r.unpack().0 == self.branch_ref.as_bytes());
        if !has_branch {
            if remote_refs.iter().all(|r| r.unpack().1.is_none()) {
                return Ok(false);
            }
            let branches: Vec<String> = remote_refs
                .iter()
                .filter_map(|r| {
                    let name = r.unpack().0.to_str_lossy();
                    name.strip_prefix("refs/heads/").map(str::to_string)
                })
                .collect();
            return Err(self.missing_branch(&branches));
        }
        prepare
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| fail("receiving objects", &e))?;
        Ok(true)
    }

    fn resolve_head(&self, repo: &gix::Repository) -> Result<Option<String>, SourceError> {
        // A repo moved or deleted after start reads as "no refs"; that must not pass for an empty repo.
        if !repo.git_dir().join("objects").is_dir() {
            return Err(SourceError::new(format!(
                "{} is no longer a git repository (no {}); check that --repo still points at it",
                self.describe_repo(),
                repo.git_dir().join("objects").display()
            )));
        }
        let found = repo
            .try_find_reference(self.branch_ref.as_str())
            .map_err(|e| self.error(format!("cannot read ref {}", self.branch_ref), e))?;
        if let Some(mut reference) = found {
            let id = reference
                .peel_to_id()
                .map_err(|e| self.error(format!("cannot resolve branch {}", self.branch), e))?;
            return Ok(Some(id.to_string()));
        }
        let platform = repo
            .references()
            .map_err(|e| self.error("cannot list refs".into(), e))?;
        let branches: Vec<String> = platform
            .local_branches()
            .map_err(|e| self.error("cannot list branches".into(), e))?
            .filter_map(Result::ok)
            .map(|r| r.name().shorten().to_string())
            .collect();
        let any_ref = platform
            .all()
            .map_err(|e| self.error("cannot list refs".into(), e))?
            .filter_map(Result::ok)
            .next()
            .is_some();
        if branches.is_empty() && !any_ref {
            return Ok(None);
        }
        Err(self.missing_branch(&branches))
    }

    fn missing_branch(&self, branches: &[String]) -> SourceError {
        let list = if branches.is_empty() {
            "none".to_string()
        } else {
            branches.join(", ")
        };
        SourceError::new(format!(
            "branch {} not found in {} (its branches: {list}); check --branch",
            self.branch,
            self.describe_repo()
        ))
    }
}

fn is_url(repo: &str) -> bool {
    repo.contains("://")
}

/// Replaces `user:password@` in a URL's authority with `***@`; anything that
/// does not parse as a URL with credentials is returned as it is.
fn redact_url(text: &str) -> String {
    let Ok(mut url) = Url::parse(text) else {
        return text.to_string();
    };
    if url.username().is_empty() && url.password().is_none() {
        return text.to_string();
    }
    // A URL with credentials has a host, so neither setter can fail.
    let _ = url.set_password(None);
    let _ = url.set_username("***");
    url.to_string()
}

/// The password (or token) in a URL's userinfo, if any.
fn url_secret(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    let secret = url.password().unwrap_or(url.username());
    (!secret.is_empty()).then(|| secret.to_string())
}

/// Errors from the transport may echo the URL; keep credentials out of them.
fn scrub_credentials(text: &str, url: &str, redacted: &str) -> String {
    let text = text.replace(url, redacted);
    match url_secret(url) {
        Some(secret) => text.replace(&secret, "***"),
        None => text,
    }
}

fn parse_id(hex: &str, kind: &str) -> Result<gix::ObjectId, SourceError> {
    gix::ObjectId::from_hex(hex.as_bytes())
        .map_err(|e| SourceError::new(format!("{hex:?} is not a {kind} id: {e}")))
}

fn open_local(path: &Path) -> Result<gix::ThreadSafeRepository, SourceError> {
    if !path.exists() {
        return Err(SourceError::new(format!(
            "billing repo {} does not exist; check --repo (a local path to a bare or working git repo, or a URL)",
            path.display()
        )));
    }
    gix::ThreadSafeRepository::open(path).map_err(|e| {
        SourceError::new(format!(
            "{} is not a readable git repository ({}); check --repo points at a bare repo or a working copy",
            path.display(),
            error_chain(&e)
        ))
    })
}

/// Opens the bare mirror in `dir`, creating it when `dir` is missing or empty.
fn open_mirror(dir: &Path, redacted: &str) -> Result<gix::ThreadSafeRepository, SourceError> {
    let is_empty_dir = std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false);
    if !dir.exists() || is_empty_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            SourceError::new(format!(
                "cannot create the mirror directory {} for {redacted}: {e}; check the data dir is writable",
                dir.display()
            ))
        })?;
        return gix::ThreadSafeRepository::init(
            dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
        )
        .map_err(|e| {
            SourceError::new(format!(
                "cannot create a bare mirror repo in {} for {redacted}: {}",
                dir.display(),
                error_chain(&e)
            ))
        });
    }
    gix::ThreadSafeRepository::open(dir).map_err(|e| {
        SourceError::new(format!(
            "mirror directory {} is not a git repository ({}); remove it (it is re-created from {redacted})",
            dir.display(),
            error_chain(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_only() {
        assert_eq!(
            redact_url("https://bob:s3cret@git.example.com/billing.git"),
            "https://***@git.example.com/billing.git"
        );
        assert_eq!(
            redact_url("https://token@git.example.com/a@b"),
            "https://***@git.example.com/a@b"
        );
        assert_eq!(
            redact_url("file:///srv/billing.git"),
            "file:///srv/billing.git"
        );
        let url = "https://bob:s3cret@h/x";
        assert_eq!(
            scrub_credentials(
                "auth for s3cret at https://bob:s3cret@h/x",
                url,
                &redact_url(url)
            ),
            "auth for *** at https://***@h/x"
        );
        assert_eq!(url_secret("https://tok@h/x").as_deref(), Some("tok"));
        assert_eq!(url_secret("https://h/a@b"), None);
        // A password as written in the URL (percent-encoded) is what errors echo.
        let encoded = "https://bob:p%40ss@h/x";
        assert_eq!(url_secret(encoded).as_deref(), Some("p%40ss"));
        assert_eq!(redact_url(encoded), "https://***@h/x");
        // scp-like and plain paths carry nothing to redact.
        assert_eq!(redact_url("git@h:billing.git"), "git@h:billing.git");
        assert_eq!(redact_url("/srv/billing.git"), "/srv/billing.git");
    }
}
