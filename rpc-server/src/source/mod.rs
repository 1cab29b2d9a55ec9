//! Where usage files come from. The aggregator only needs four questions
//! answered, cheapest first: what is the branch head; which node directories
//! exist (with their tree ids); which usage files a changed node has (with blob
//! ids); and the bodies of the files whose blob ids are new.

pub mod forge;
pub mod git;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One node directory `nodes/<node_name>` at some commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTree {
    pub node_name: String,
    /// Object id (hex) of the directory's tree; unchanged id = unchanged files.
    pub tree_id: String,
}

/// One `nodes/<node>/usage_<YYYY-MM-DD-HH>.otoml` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Full repo path, e.g. `nodes/node-a/usage_2026-11-27-10.otoml`.
    pub path: String,
    /// Object id (hex) of the file's blob.
    pub blob_id: String,
    /// Size in bytes when the listing tells it.
    pub size: Option<u64>,
}

/// The body of a file, or why it was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileBody {
    Data(Vec<u8>),
    /// Over the size limit: not read at all.
    TooLarge {
        size: u64,
    },
}

/// A failure to read from the source, with a message for the operator.
#[derive(Debug, thiserror::Error)]
pub struct SourceError {
    pub message: String,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a source asked of its server, for the metrics: requests by status
/// class (`1xx`..`5xx` for HTTP answers, `ok` for a git fetch that worked,
/// `error` for a transport failure or a failed fetch) and retries.
#[derive(Debug, Default)]
pub struct RequestStats {
    classes: [AtomicU64; CLASSES.len()],
    retries: AtomicU64,
}

/// Every value of the `class` label, in a fixed order.
pub const CLASSES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "ok", "error"];

impl RequestStats {
    /// An HTTP answer with `status`.
    pub fn answered(&self, status: u16) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A request that got no answer (transport error, timeout), or a failed fetch.
    pub fn failed(&self) {
        self.classes[6].fetch_add(1, Ordering::Relaxed);
    }

    /// A fetch that worked.
    pub fn ok(&self) {
        self.classes[5].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// `(class, requests)` for every class, and the retries.
    pub fn snapshot(&self) -> (Vec<(&'static str, u64)>, u64) {
        let classes = CLASSES
            .iter()
            .zip(&self.classes)
            .map(|(class, n)| (*class, n.load(Ordering::Relaxed)))
            .collect();
        (classes, self.retries.load(Ordering::Relaxed))
    }
}

/// The configured billing repo.
pub enum Source {
    Git(git::GitSource),
    Forge(forge::ForgeSource),
}

impl Source {
    /// A one-line description for logs and errors (never contains secrets).
    pub fn describe(&self) -> String {
        match self {
            Source::Git(s) => s.describe(),
            Source::Forge(s) => s.describe(),
        }
    }

    /// `git` or `forge`, for the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Git(_) => "git",
            Source::Forge(_) => "forge",
        }
    }

    /// Requests sent so far (a local git repo sends none).
    pub fn request_stats(&self) -> &RequestStats {
        match self {
            Source::Git(s) => s.request_stats(),
            Source::Forge(s) => s.request_stats(),
        }
    }

    /// Brings the source up to date (fetches a mirrored remote) and returns
    /// the commit id of the branch head, or `None` when the branch has no commit yet.
    pub async fn head(&self) -> Result<Option<String>, SourceError> {
        match self {
            Source::Git(s) => s.head().await,
            Source::Forge(s) => s.head().await,
        }
    }

    /// Valid node directories under `nodes/` at `head`, sorted by name.
    /// Entries with invalid names are left out (and logged).
    pub async fn nodes(&self, head: &str) -> Result<Vec<NodeTree>, SourceError> {
        match self {
            Source::Git(s) => s.nodes(head).await,
            Source::Forge(s) => s.nodes(head).await,
        }
    }

    /// Usage files of one node directory, sorted by path. Other files are left out.
    pub async fn files(&self, node: &NodeTree) -> Result<Vec<FileEntry>, SourceError> {
        match self {
            Source::Git(s) => s.files(node).await,
            Source::Forge(s) => s.files(node).await,
        }
    }

    /// Fills in the sizes the listing did not tell (object headers only, no
    /// body is read), so that reads can be sized before they are made.
    pub async fn fill_sizes(&self, files: Vec<FileEntry>) -> Result<Vec<FileEntry>, SourceError> {
        match self {
            Source::Git(s) if files.iter().any(|f| f.size.is_none()) => s.fill_sizes(files).await,
            _ => Ok(files),
        }
    }

    /// Whether one `read` of many files costs fewer requests than a `read` per
    /// node: a forge that serves batch blob reads (asked once). A local git
    /// repo sends no requests, so it answers no.
    pub async fn reads_in_batches(&self) -> bool {
        match self {
            Source::Git(_) => false,
            Source::Forge(s) => s.reads_in_batches().await,
        }
    }

    /// Reads the bodies of `files`, listed at commit `head`, in the same order.
    /// A file over `max_bytes` is returned as `TooLarge` without being read.
    pub async fn read(
        &self,
        head: &str,
        files: &[FileEntry],
        max_bytes: u64,
    ) -> Result<Vec<FileBody>, SourceError> {
        match self {
            Source::Git(s) => s.read(files, max_bytes).await,
            Source::Forge(s) => s.read(head, files, max_bytes).await,
        }
    }
}
