//! The git repository behind the emulator, read and written with gix.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

/// One entry of a tree, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Name (non-recursive listing) or path relative to the listed tree (recursive).
    pub path: String,
    /// `100644`, `100755`, `040000`, `120000` or `160000`.
    pub mode: String,
    /// `blob`, `tree` or `commit`.
    pub kind: &'static str,
    pub id: ObjectId,
    /// Blob size; `None` for trees and submodules.
    pub size: Option<u64>,
}

/// What the API needs to know about one commit.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub author_seconds: i64,
    pub committer_name: String,
    pub committer_email: String,
    pub committer_seconds: i64,
}

/// A change to commit: `Some(bytes)` writes the file, `None` deletes it.
pub type FileChange = (String, Option<Vec<u8>>);

/// A bare git repository served by the emulator. Reads are lock-free; writes
/// are serialized so two API commits never race on the branch ref.
pub struct ForgeRepo {
    repo: gix::ThreadSafeRepository,
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl ForgeRepo {
    /// Opens an existing repository (bare or not).
    pub fn open(path: &Path) -> Result<Self> {
        let repo = gix::open(path)
            .with_context(|| format!("cannot open git repository {}", path.display()))?;
        Ok(Self::from_repo(repo, path))
    }

    /// Opens the repository at `path`, creating an empty bare one when the
    /// directory does not exist or is empty.
    pub fn open_or_init(path: &Path) -> Result<Self> {
        let empty = !path.exists()
            || path
                .read_dir()
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if empty {
            let repo = gix::init_bare(path).with_context(|| {
                format!("cannot create a bare git repository at {}", path.display())
            })?;
            return Ok(Self::from_repo(repo, path));
        }
        Self::open(path)
    }

    fn from_repo(repo: gix::Repository, path: &Path) -> Self {
        Self {
            repo: repo.into_sync(),
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn local(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        repo
    }

    /// The commit the branch points to, or `None` when the branch does not exist.
    pub fn branch_head(&self, branch: &str) -> Result<Option<ObjectId>> {
        let repo = self.local();
        let name = format!("refs/heads/{branch}");
        match repo.try_find_reference(name.as_str())? {
            None => Ok(None),
            Some(mut reference) => {
                let id = reference.peel_to_id()?;
                Ok(Some(id.detach()))
            }
        }
    }

    /// Names of all branches.
    pub fn has_any_branch(&self) -> Result<bool> {
        let repo = self.local();
        let platform = repo.references()?;
        let mut branches = platform.local_branches()?;
        Ok(branches.next().is_some())
    }

    /// Resolves a ref name (branch) or a full hex id to an object id.
    pub fn resolve(&self, spec: &str) -> Result<Option<ObjectId>> {
        if let Some(id) = (spec.len() == 40)
            .then(|| ObjectId::from_hex(spec.as_bytes()).ok())
            .flatten()
        {
            let repo = self.local();
            return Ok(repo.has_object(id).then_some(id));
        }
        self.branch_head(spec)
    }

    pub fn commit_info(&self, id: ObjectId) -> Result<Option<CommitInfo>> {
        let repo = self.local();
        let Some(object) = repo.try_find_object(id)? else {
            return Ok(None);
        };
        if object.kind != gix::object::Kind::Commit {
            return Ok(None);
        }
        let commit = object.into_commit();
        let decoded = commit.decode()?;
        let author = decoded.author()?;
        let committer = decoded.committer()?;
        Ok(Some(CommitInfo {
            id,
            tree: decoded.tree(),
            parents: decoded.parents().collect(),
            message: decoded.message.to_str_lossy().into_owned(),
            author_name: author.name.to_str_lossy().into_owned(),
            author_email: author.email.to_str_lossy().into_owned(),
            author_seconds: author.time()?.seconds,
            committer_name: committer.name.to_str_lossy().into_owned(),
            committer_email: committer.email.to_str_lossy().into_owned(),
            committer_seconds: committer.time()?.seconds,
        }))
    }

    /// The tree id behind `id`: the id itself for a tree, the root tree for a commit.
    pub fn tree_of(&self, id: ObjectId) -> Result<Option<ObjectId>> {
        let repo = self.local();
        let Some(header) = repo.try_find_header(id)? else {
            return Ok(None);
        };
        match header.kind() {
            gix::object::Kind::Tree => Ok(Some(id)),
            gix::object::Kind::Commit => Ok(self.commit_info(id)?.map(|c| c.tree)),
            _ => Ok(None),
        }
    }

    /// Entries of the tree `tree_id`, sub-trees walked when `recursive`.
    pub fn tree_entries(&self, tree_id: ObjectId, recursive: bool) -> Result<Vec<TreeEntry>> {
        let repo = self.local();
        let mut out = Vec::new();
        Self::walk(&repo, tree_id, "", recursive, &mut out)?;
        Ok(out)
    }

    fn walk(
        repo: &gix::Repository,
        tree_id: ObjectId,
        prefix: &str,
        recursive: bool,
        out: &mut Vec<TreeEntry>,
    ) -> Result<()> {
        let tree = repo.find_tree(tree_id)?;
        let decoded = tree.decode()?;
        for entry in &decoded.entries {
            let name = entry.filename.to_str_lossy();
            let path = format!("{prefix}{name}");
            let id = entry.oid.to_owned();
            let (kind, mode, size) = match entry.mode.kind() {
                EntryKind::Tree => ("tree", "040000", None),
                EntryKind::Blob => ("blob", "100644", Some(Self::size(repo, id)?)),
                EntryKind::BlobExecutable => ("blob", "100755", Some(Self::size(repo, id)?)),
                EntryKind::Link => ("blob", "120000", Some(Self::size(repo, id)?)),
                EntryKind::Commit => ("commit", "160000", None),
            };
            out.push(TreeEntry {
                path: path.clone(),
                mode: mode.to_string(),
                kind,
                id,
                size,
            });
            if recursive && kind == "tree" {
                Self::walk(repo, id, &format!("{path}/"), true, out)?;
            }
        }
        Ok(())
    }

    fn size(repo: &gix::Repository, id: ObjectId) -> Result<u64> {
        Ok(repo.find_header(id)?.size())
    }

    /// The bytes of blob `id`, or `None` when there is no such blob.
    pub fn blob(&self, id: ObjectId) -> Result<Option<Vec<u8>>> {
        let repo = self.local();
        let Some(object) = repo.try_find_object(id)? else {
            return Ok(None);
        };
        if object.kind != gix::object::Kind::Blob {
            return Ok(None);
        }
        Ok(Some(object.detach().data))
    }

    /// The entry at `path` (slash-separated) in the tree of commit or tree `root`.
    pub fn entry_at(&self, root: ObjectId, path: &str) -> Result<Option<TreeEntry>> {
        let Some(tree_id) = self.tree_of(root)? else {
            return Ok(None);
        };
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Ok(Some(TreeEntry {
                path: String::new(),
                mode: "040000".into(),
                kind: "tree",
                id: tree_id,
                size: None,
            }));
        }
        let repo = self.local();
        let tree = repo.find_tree(tree_id)?;
        let Some(entry) = tree.lookup_entry_by_path(path)? else {
            return Ok(None);
        };
        let id = entry.object_id();
        let (kind, mode, size) = match entry.mode().kind() {
            EntryKind::Tree => ("tree", "040000", None),
            EntryKind::Blob => ("blob", "100644", Some(Self::size(&repo, id)?)),
            EntryKind::BlobExecutable => ("blob", "100755", Some(Self::size(&repo, id)?)),
            EntryKind::Link => ("blob", "120000", Some(Self::size(&repo, id)?)),
            EntryKind::Commit => ("commit", "160000", None),
        };
        Ok(Some(TreeEntry {
            path: path.to_string(),
            mode: mode.into(),
            kind,
            id,
            size,
        }))
    }

    /// Commits reachable from `start` (first-parent walk, newest first) whose
    /// change touches `path` (any commit when `path` is empty).
    pub fn commits_touching(
        &self,
        start: ObjectId,
        path: &str,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<ObjectId>, usize)> {
        let mut matched = Vec::new();
        let mut total = 0usize;
        let mut current = Some(start);
        while let Some(id) = current {
            let info = self
                .commit_info(id)?
                .ok_or_else(|| anyhow!("commit {id} is missing from the repository"))?;
            let parent = info.parents.first().copied();
            let touches = if path.is_empty() {
                true
            } else {
                let here = self.entry_at(id, path)?.map(|e| e.id);
                let before = match parent {
                    Some(p) => self.entry_at(p, path)?.map(|e| e.id),
                    None => None,
                };
                here != before
            };
            if touches {
                if total >= skip && matched.len() < limit {
                    matched.push(id);
                }
                total += 1;
            }
            current = parent;
        }
        Ok((matched, total))
    }

    /// Commits `changes` on top of `branch` (creating the branch when it has
    /// no commit yet) and returns the new commit id.
    pub fn commit_files(
        &self,
        branch: &str,
        changes: &[FileChange],
        message: &str,
    ) -> Result<ObjectId> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let repo = self.local();
        let parent = self.branch_head(branch)?;
        let base_tree = match parent {
            Some(p) => self
                .tree_of(p)?
                .ok_or_else(|| anyhow!("branch {branch} points to a non-commit"))?,
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        let mut editor = repo.edit_tree(base_tree)?;
        for (path, content) in changes {
            let path = path.trim_matches('/');
            if path.is_empty()
                || path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                bail!("invalid file path {path:?}");
            }
            match content {
                Some(bytes) => {
                    let blob = repo.write_blob(bytes)?.detach();
                    editor.upsert(path, EntryKind::Blob, blob)?;
                }
                None => {
                    editor.remove(path)?;
                }
            }
        }
        let tree = editor.write()?.detach();
        let time = gix::date::Time::now_utc();
        let signature = gix::actor::Signature {
            name: "forge-emulator".into(),
            email: "emulator@localhost".into(),
            time,
        };
        let mut buf = gix::date::parse::TimeBuf::default();
        let sig = signature.to_ref(&mut buf);
        let reference = format!("refs/heads/{branch}");
        let id = repo
            .commit_as(sig, sig, reference.as_str(), message, tree, parent)?
            .detach();
        Ok(id)
    }

    /// Points `branch` at `commit` whatever it pointed to before (a force-push).
    pub fn force_branch(&self, branch: &str, commit: ObjectId) -> Result<()> {
        use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit};
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let repo = self.local();
        repo.edit_reference(RefEdit {
            change: Change::Update {
                log: LogChange::default(),
                expected: PreviousValue::Any,
                new: gix::refs::Target::Object(commit),
            },
            name: format!("refs/heads/{branch}").try_into()?,
            deref: false,
        })?;
        Ok(())
    }
}

/// Git's blob id of `bytes` (what a client can check a download against).
pub fn blob_id(bytes: &[u8]) -> ObjectId {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::object::Kind::Blob, bytes)
        .expect("sha1 hashing of a blob does not fail")
}
