//! The simulated billing repo: a real bare git repository written in
//! process (the forge emulator's `ForgeRepo`), with what each file was meant
//! to say kept beside its bytes for the model.

use std::collections::BTreeMap;
use std::path::Path;

use forge_emulator::{FileChange, ForgeRepo, blob_id};

/// One record as a node writes it; `user: None` leaves `user_sid` out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRec {
    pub key: String,
    pub user: Option<String>,
    pub node: String,
    pub cost: i64,
}

/// What a file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileBody {
    Records(Vec<FileRec>),
    /// Not TOML (an unclosed table header).
    Malformed,
    /// `version = 2`.
    BadVersion,
    /// A Git LFS pointer in place of the file.
    Lfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub body: FileBody,
    /// Bytes of comment appended (to make a file oversize).
    pub pad: usize,
}

/// A file in the tree: its bytes, git blob id and meaning.
#[derive(Debug, Clone)]
pub struct WorldFile {
    pub bytes: Vec<u8>,
    pub blob: String,
    pub spec: FileSpec,
}

/// Path -> file, for every file of a commit.
pub type Tree = BTreeMap<String, WorldFile>;

impl WorldFile {
    pub fn new(spec: FileSpec) -> Self {
        let bytes = encode(&spec);
        let blob = blob_id(&bytes).to_string();
        Self { bytes, blob, spec }
    }
}

/// OTOML text of `spec` (invalid records included, as a faulty node writes them).
pub fn encode(spec: &FileSpec) -> Vec<u8> {
    let mut out = String::new();
    match &spec.body {
        FileBody::Records(recs) => {
            out.push_str("version = 1\n");
            for r in recs {
                out.push_str("\n[[records]]\n");
                out.push_str(&format!("idempotency_key = {}\n", quote(&r.key)));
                if let Some(user) = &r.user {
                    out.push_str(&format!("user_sid = {}\n", quote(user)));
                }
                out.push_str(&format!("node_name = {}\n", quote(&r.node)));
                out.push_str(&format!("cost_cents = {}\n", r.cost));
            }
        }
        FileBody::Malformed => out.push_str("version = 1\n[[records]\nidempotency_key = \"x\"\n"),
        FileBody::BadVersion => out.push_str("version = 2\n"),
        FileBody::Lfs => out.push_str(
            "version https://git-lfs.github.com/spec/v1\noid sha256:\
             4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n",
        ),
    }
    if spec.pad > 0 {
        out.push_str("# ");
        out.push_str(&"-".repeat(spec.pad));
        out.push('\n');
    }
    out.into_bytes()
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The repo, its branch `main`, and every commit made, for force-pushes.
pub struct World {
    pub repo: ForgeRepo,
    pub tree: Tree,
    pub head: Option<String>,
    /// Every commit made so far, with its tree.
    pub history: Vec<(String, Tree)>,
}

impl World {
    pub fn create(dir: &Path) -> anyhow::Result<World> {
        Ok(World {
            repo: ForgeRepo::open_or_init(dir)?,
            tree: Tree::new(),
            head: None,
            history: Vec::new(),
        })
    }

    /// Commits `changes` (a file, or `None` to delete it) on `main`.
    pub fn commit(&mut self, changes: Vec<(String, Option<WorldFile>)>) -> anyhow::Result<()> {
        let wire: Vec<FileChange> = changes
            .iter()
            .map(|(path, file)| (path.clone(), file.as_ref().map(|f| f.bytes.clone())))
            .collect();
        let id = self.repo.commit_files("main", &wire, "usage")?.to_string();
        for (path, file) in changes {
            match file {
                Some(file) => self.tree.insert(path, file),
                None => self.tree.remove(&path),
            };
        }
        self.head = Some(id.clone());
        self.history.push((id, self.tree.clone()));
        Ok(())
    }

    /// Points `main` at the earlier commit `index` of the history (a force-push).
    pub fn force_to(&mut self, index: usize) -> anyhow::Result<()> {
        let (id, tree) = self.history[index].clone();
        let oid = self
            .repo
            .resolve(&id)?
            .ok_or_else(|| anyhow::anyhow!("commit {id} is missing from the simulated repo"))?;
        self.repo.force_branch("main", oid)?;
        self.tree = tree;
        self.head = Some(id);
        Ok(())
    }
}
