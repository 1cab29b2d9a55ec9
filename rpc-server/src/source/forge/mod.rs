//! The billing repo on a Forgejo (or Gitea) forge, read through its REST API v1.
//!
//! Request plan (see `docs/forge.md` for the cost formula):
//! - `head`: `GET branches/{branch}`: one request when nothing is new;
//! - `nodes`: `GET git/trees/{head}` (root), then `GET git/trees/{nodes_tree}`,
//!   each paged with `page`/`per_page` while `truncated` is true;
//! - `files`: `GET git/trees/{node_tree}` (paged) for a node whose tree id changed;
//! - `read`: `GET git/blobs/{sha}` for each file whose blob id is new, a few at a time; a blob
//!   over the forge's size cap (sent without content) as `GET raw/{path}?ref=<head>`.
//!
//! Every request has a timeout and is retried with exponential backoff and
//! jitter on 429, 5xx, timeouts and connection errors, honouring `Retry-After`.
//! A body that is cut or not JSON is an error, never an empty listing. The
//! token is sent as `Authorization: token <t>` and never shown.

mod blobs;
mod http;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderValue;

use super::{FileEntry, NodeTree, SourceError};
use wire::{Branch, Repository, TreeItem, TreePage, check_object_id, entry_sha};

/// Timeouts, retries and concurrency of the forge client.
#[derive(Debug, Clone)]
pub struct ForgeOptions {
    /// Whole-request timeout (connect, headers and body).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubles per retry, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured; a longer one fails the request instead.
    pub retry_after_max: Duration,
    /// Blob downloads in flight at once for one `read`.
    pub blob_concurrency: usize,
    /// `per_page` asked of `git/trees` (Forgejo's default cap is 1000).
    pub tree_page_size: usize,
}

impl Default for ForgeOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(300),
            blob_concurrency: 8,
            tree_page_size: 1000,
        }
    }
}

/// A billing repo `OWNER/NAME` on one branch of a forge.
pub struct ForgeSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `<base>/api/v1`, credentials stripped.
    api: Url,
    /// The base URL as shown in messages (no credentials).
    shown: String,
    owner: String,
    name: String,
    branch: String,
    /// `token <t>`, marked sensitive so it is never printed by the HTTP stack.
    auth: Option<HeaderValue>,
    options: ForgeOptions,
    /// The same requests by status class, and the retries among them.
    stats: crate::source::RequestStats,
    /// Whether the forge serves batch blob reads (Forgejo 12+), once asked.
    blob_batches: std::sync::OnceLock<bool>,
    /// Set when the batch endpoint answered 404 or 405 although the version
    /// claims it: batch reads are then off for good on this source.
    batches_refused: std::sync::atomic::AtomicBool,
}

impl ForgeSource {
    /// A source for `repo` (`OWNER/NAME`) on the forge at `base_url`
    /// (`https://forge.example` or `https://forge.example/api/v1`).
    pub fn open(
        base_url: &str,
        repo: &str,
        branch: &str,
        token: Option<String>,
    ) -> Result<ForgeSource, SourceError> {
        Self::open_with(base_url, repo, branch, token, ForgeOptions::default())
    }

    /// Like [`ForgeSource::open`], with explicit timeouts and retry settings.
    pub fn open_with(
        base_url: &str,
        repo: &str,
        branch: &str,
        token: Option<String>,
        options: ForgeOptions,
    ) -> Result<ForgeSource, SourceError> {
        let mut url = Url::parse(base_url.trim()).map_err(|e| {
            SourceError::new(format!(
                "forge URL {:?} is not a valid URL ({e}); check --forge-url (e.g. https://forge.example)",
                redact(base_url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(SourceError::new(format!(
                "forge URL {} must be http:// or https://; check --forge-url",
                redact(base_url)
            )));
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        let trimmed = url.path().trim_end_matches('/');
        let trimmed = trimmed
            .strip_suffix("/api/v1")
            .unwrap_or(trimmed)
            .to_string();
        url.set_path(&trimmed);
        let shown = url.as_str().trim_end_matches('/').to_string();
        url.set_path(&format!("{trimmed}/api/v1"));

        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                SourceError::new(format!(
                    "forge repo {repo:?} must be OWNER/NAME; check --forge-repo"
                ))
            })?;
        if branch.trim().is_empty() {
            return Err(SourceError::new("branch name is empty; check --branch"));
        }
        let auth = match token {
            None => None,
            Some(token) => {
                let token = token.trim();
                if token.is_empty() {
                    return Err(SourceError::new(
                        "the forge token is empty; check --forge-token-file or BILLING_FORGE_TOKEN",
                    ));
                }
                let mut value = HeaderValue::from_str(&format!("token {token}")).map_err(|_| {
                    SourceError::new(
                        "the forge token contains characters not allowed in an HTTP header; \
                         check --forge-token-file or BILLING_FORGE_TOKEN",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("billing-aggregator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(ForgeSource {
            inner: Arc::new(Inner {
                client,
                api: url,
                shown,
                owner: owner.to_string(),
                name: name.to_string(),
                branch: branch.to_string(),
                auth,
                options,
                stats: crate::source::RequestStats::default(),
                blob_batches: std::sync::OnceLock::new(),
                batches_refused: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The forge, repo and branch; never the token.
    pub fn describe(&self) -> String {
        let i = &self.inner;
        format!(
            "forge repo {}/{} at {} (branch {})",
            i.owner, i.name, i.shown, i.branch
        )
    }

    /// Requests by status class, and retries.
    pub fn request_stats(&self) -> &crate::source::RequestStats {
        &self.inner.stats
    }

    /// The branch head commit id; `None` when the repo has no commit yet.
    pub async fn head(&self) -> Result<Option<String>, SourceError> {
        let i = &self.inner;
        let mut segments = vec!["branches"];
        segments.extend(i.branch.split('/'));
        let what = format!("branch {}", i.branch);
        match i.get_json::<Branch>(&segments, &[], &what).await? {
            Some(branch) => wire::branch_head(branch)
                .map(Some)
                .map_err(|e| i.error(format!("branch {}: {e}", i.branch))),
            None => {
                // A missing branch is normal only in a repo nothing was pushed to yet.
                let repo = i
                    .get_json::<Repository>(&[], &[], "the repository")
                    .await?
                    .ok_or_else(|| {
                        i.error(format!(
                            "repository {}/{} was not found (404); check --forge-repo and that {}",
                            i.owner,
                            i.name,
                            if i.auth.is_some() {
                                "the token's user can read it"
                            } else {
                                "it is public: no token is configured, and a private repository \
                                 answers 404 to anonymous requests; set --forge-token-file or \
                                 BILLING_FORGE_TOKEN"
                            }
                        ))
                    })?;
                if repo.empty == Some(true) {
                    return Ok(None);
                }
                Err(i.error(format!(
                    "branch {} does not exist (404){}; check --branch",
                    i.branch,
                    repo.default_branch
                        .map(|d| format!("; the default branch is {d}"))
                        .unwrap_or_default()
                )))
            }
        }
    }

    /// Valid node directories under `nodes/` at commit `head`, sorted by name.
    pub async fn nodes(&self, head: &str) -> Result<Vec<NodeTree>, SourceError> {
        let i = &self.inner;
        check_object_id(head).map_err(|e| i.error(format!("head {head:?}: {e}")))?;
        let root = i
            .list_tree(head, &format!("the root tree of commit {head}"))
            .await?;
        let Some(nodes) = root.iter().find(|e| e.path.as_deref() == Some("nodes")) else {
            return Ok(Vec::new());
        };
        if nodes.kind.as_deref() != Some("tree") {
            tracing::warn!(commit = %head, "`nodes` is a file, not a directory; no node is read");
            return Ok(Vec::new());
        }
        let nodes_sha = entry_sha(nodes).map_err(|e| i.error(format!("entry nodes/: {e}")))?;
        let entries = i
            .list_tree(&nodes_sha, &format!("tree nodes/ ({nodes_sha})"))
            .await?;
        let (nodes, skipped) = wire::node_trees(&entries).map_err(|e| i.error(e))?;
        for name in skipped {
            tracing::warn!(
                commit = %head,
                dir = %name,
                "skipping nodes/ entry: node names must match [A-Za-z0-9._-]{{1,128}}"
            );
        }
        Ok(nodes)
    }

    /// Usage files directly in one node directory, sorted by path.
    pub async fn files(&self, node: &NodeTree) -> Result<Vec<FileEntry>, SourceError> {
        let i = &self.inner;
        check_object_id(&node.tree_id)
            .map_err(|e| i.error(format!("tree of nodes/{}: {e}", node.node_name)))?;
        let what = format!("tree nodes/{} ({})", node.node_name, node.tree_id);
        let entries = i.list_tree(&node.tree_id, &what).await?;
        wire::usage_files(&node.node_name, &entries, &what).map_err(|e| i.error(e))
    }
}

impl Inner {
    fn error(&self, message: String) -> SourceError {
        SourceError::new(format!(
            "{message} (forge repo {}/{} at {})",
            self.owner, self.name, self.shown
        ))
    }

    /// `<api>/repos/{owner}/{repo}/<segments...>?<query>`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.api.clone();
        {
            let mut path = url.path_segments_mut().expect("http(s) URLs can be a base");
            path.pop_if_empty();
            path.extend(["repos", self.owner.as_str(), self.name.as_str()]);
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Every page of tree `sha`, checked for completeness.
    async fn list_tree(&self, sha: &str, what: &str) -> Result<Vec<TreeItem>, SourceError> {
        let per_page = self.options.tree_page_size.max(1);
        let mut entries: Vec<TreeItem> = Vec::new();
        let mut page: u64 = 1;
        loop {
            let query = [
                ("page", page.to_string()),
                ("per_page", per_page.to_string()),
            ];
            let listing = self
                .get_json::<TreePage>(&["git", "trees", sha], &query, what)
                .await?
                .ok_or_else(|| {
                    self.error(format!(
                        "{what} was not found; the branch was probably force-pushed \
                         meanwhile, the next pass reads the new head"
                    ))
                })?;
            if let Some(answered) = listing.page.filter(|p| *p != page) {
                return Err(self.error(format!(
                    "{what}: asked for page {page}, got page {answered}"
                )));
            }
            let items = listing.tree.unwrap_or_default();
            // Forgejo marks every page of a listing longer than one page
            // `truncated`, the last one included, and answers a page past the end
            // with no entries: stop once `total_count` entries are in.
            let more = listing.truncated == Some(true);
            if more && items.is_empty() {
                return Err(self.error(format!(
                    "{what}: page {page} is empty but marked truncated; the listing cannot be completed"
                )));
            }
            let last = items.is_empty();
            entries.extend(items);
            match listing.total_count {
                Some(total) => {
                    let got = entries.len() as u64;
                    if got > total {
                        return Err(self.error(format!(
                            "{what}: got {got} entries but the forge says the tree has {total}"
                        )));
                    }
                    if got == total {
                        return Ok(entries);
                    }
                    if last || !more {
                        return Err(self.error(format!(
                            "{what}: listing ended after {got} of {total} entries (truncated answer)"
                        )));
                    }
                }
                // No count (not Forgejo or Gitea): follow `truncated`.
                None if last || !more => return Ok(entries),
                None => {}
            }
            page += 1;
        }
    }
}

/// The URL without user info, for messages.
fn redact(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(unparseable URL)".to_string(),
    }
}
