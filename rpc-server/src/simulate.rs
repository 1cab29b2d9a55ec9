//! The node side of the billing repo, simulated: writes realistic hourly usage
//! batches into a git repo, one commit per hour, deterministic for a seed.
//! Used by `rpc-server simulate`, the demo, tests and benchmarks.
//!
//! Objects (as pack files) and the branch ref are written with gix directly
//! (no `git` process), so a million records take seconds. In a working (non-bare) repo
//! only the branch ref moves: the index and the checked-out files are left as
//! they were, so `git status` there shows the new commits' files as deleted
//! until `git reset --hard` (or a checkout) is run.
//!
//! Every file's content depends only on the seed, the node, the hour, and the
//! record and user counts, so running 2 × 50 hours yields the same commits as
//! one run of 100 hours.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use billing_api::otoml::{self, UsageBatch, UsageRecord};
use gix::bstr::ByteSlice;
use gix::objs::tree::{Entry, EntryKind};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};

/// What to simulate; also the options of `rpc-server simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateOptions {
    /// Repo to create (bare) or extend.
    #[arg(long, value_name = "PATH")]
    pub repo: PathBuf,
    /// Number of nodes (node-000, node-001, ...).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Hours to add: one commit per hour, one file per node per hour.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Records per file.
    #[arg(long, default_value_t = 10)]
    pub records: u32,
    /// Number of distinct users charged (u-0000, u-0001, ...).
    #[arg(long, default_value_t = 10)]
    pub users: u32,
    /// Seed; the same seed and options give the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Branch to commit to.
    #[arg(long, default_value = crate::config::DEFAULT_BRANCH)]
    pub branch: String,
}

/// What a simulation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateReport {
    pub commits: u32,
    pub files: u64,
    pub records: u64,
    pub total_cost_cents: i64,
    /// Cost charged per user by this run (users with no record are absent).
    pub per_user_cost_cents: BTreeMap<String, i64>,
    /// First hour written, `YYYY-MM-DD-HH` (empty when `hours` is 0).
    pub first_hour: String,
    /// Last hour written, `YYYY-MM-DD-HH` (empty when `hours` is 0).
    pub last_hour: String,
    /// Branch head after the run (empty when the branch has no commit).
    pub head: String,
}

/// The `i`-th simulated user.
pub fn user_sid(i: u32) -> String {
    format!("u-{i:04}")
}

/// The `i`-th simulated node.
pub fn node_name(i: u32) -> String {
    format!("node-{i:03}")
}

/// First hour of a new repo: 2026-01-01-00.
const START_STAMP: &str = "2026-01-01-00";
const SIGNATURE_NAME: &str = "billing-simulator";
const SIGNATURE_EMAIL: &str = "simulator@billing.invalid";

/// Creates or extends the billing repo at `opts.repo`; see the module docs.
pub fn simulate(opts: &SimulateOptions) -> anyhow::Result<SimulateReport> {
    if opts.users == 0 && opts.records > 0 {
        bail!("--users must be at least 1 to write records");
    }
    let branch_ref: FullName = format!("refs/heads/{}", opts.branch)
        .try_into()
        .with_context(|| format!("{:?} is not a valid branch name", opts.branch))?;
    let repo = open_or_create(&opts.repo, &branch_ref)?;
    let repo_name = opts.repo.display();

    let mut state = TreeState::at_branch(&repo, &branch_ref)
        .with_context(|| format!("reading branch {} of {repo_name}", opts.branch))?;
    let first_hour = match state.latest_hour()? {
        Some(h) => h + 1,
        None => hour_from_stamp(START_STAMP).expect("valid start stamp"),
    };

    let mut report = SimulateReport {
        commits: 0,
        files: 0,
        records: 0,
        total_cost_cents: 0,
        per_user_cost_cents: BTreeMap::new(),
        first_hour: String::new(),
        last_hour: String::new(),
        head: state.head.map(|h| h.to_string()).unwrap_or_default(),
    };
    let node_names: Vec<String> = (0..opts.nodes).map(node_name).collect();
    let mut pack = PackBuffer::default();
    let mut branch_at = state.head;
    for h in 0..opts.hours {
        let hour = first_hour + i64::from(h);
        let stamp = stamp_from_hour(hour);
        for (i, node) in node_names.iter().enumerate() {
            let batch = make_batch(opts, i as u32, node, hour, &mut report);
            let body = otoml::encode_batch(&batch);
            let blob = pack.add(&repo, gix::objs::Kind::Blob, body.as_bytes())?;
            state.add_file(&repo, node, &format!("usage_{stamp}.otoml"), blob)?;
            report.files += 1;
        }
        let commit = state.commit(&repo, &mut pack, hour, &stamp, opts.nodes, opts.records)?;
        report.commits += 1;
        report.head = commit.to_string();
        if report.first_hour.is_empty() {
            report.first_hour = stamp.clone();
        }
        if pack.pending_bytes >= PACK_FLUSH_BYTES || h + 1 == opts.hours {
            pack.flush(&repo)
                .with_context(|| format!("writing a pack into {repo_name}"))?;
            move_branch(&repo, &branch_ref, branch_at, commit, &stamp)
                .with_context(|| format!("moving {branch_ref} of {repo_name} to {commit}"))?;
            branch_at = Some(commit);
        }
        report.last_hour = stamp;
    }
    Ok(report)
}

fn open_or_create(path: &Path, branch_ref: &FullName) -> anyhow::Result<gix::Repository> {
    let is_empty_dir = std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none());
    if path.exists() && !is_empty_dir {
        return gix::open(path).with_context(|| {
            format!(
                "{} exists but is not a git repository; pass a new path or an existing billing repo",
                path.display()
            )
        });
    }
    let repo = gix::init_bare(path)
        .with_context(|| format!("creating a bare git repository at {}", path.display()))?;
    // HEAD names the simulated branch so that `git log` there shows it.
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange::default(),
            expected: PreviousValue::Any,
            new: Target::Symbolic(branch_ref.clone()),
        },
        name: "HEAD".try_into().expect("valid ref name"),
        deref: false,
    })
    .with_context(|| format!("pointing HEAD of {} at {branch_ref}", path.display()))?;
    Ok(repo)
}

/// The trees of the branch head, held in memory and edited hour by hour so that
/// nothing is read back from the object database while writing.
struct TreeState {
    head: Option<gix::ObjectId>,
    root: gix::objs::Tree,
    nodes: gix::objs::Tree,
    /// Node directories by name (those under `nodes/` that are trees).
    node_trees: HashMap<String, gix::objs::Tree>,
}

impl TreeState {
    fn at_branch(repo: &gix::Repository, branch_ref: &FullName) -> anyhow::Result<Self> {
        let mut state = TreeState {
            head: None,
            root: gix::objs::Tree::empty(),
            nodes: gix::objs::Tree::empty(),
            node_trees: HashMap::new(),
        };
        let Some(mut reference) = repo.try_find_reference(branch_ref.as_ref())? else {
            return Ok(state);
        };
        let commit = reference.peel_to_commit()?;
        state.head = Some(commit.id);
        state.root = commit.tree()?.decode()?.into();
        let Some(nodes) = state.root.entries.iter().find(|e| e.filename == "nodes") else {
            return Ok(state);
        };
        if !nodes.mode.is_tree() {
            bail!(
                "`nodes` at the branch head is a file, not a directory; the repo is not a billing repo"
            );
        }
        state.nodes = repo.find_tree(nodes.oid)?.decode()?.into();
        for entry in state.nodes.entries.iter().filter(|e| e.mode.is_tree()) {
            let tree = repo.find_tree(entry.oid)?.decode()?.into();
            state
                .node_trees
                .insert(entry.filename.to_str_lossy().into_owned(), tree);
        }
        Ok(state)
    }

    /// The latest hour of any usage file at the head.
    fn latest_hour(&self) -> anyhow::Result<Option<i64>> {
        let mut latest = None;
        for (node, tree) in &self.node_trees {
            if !otoml::is_valid_node_name(node) {
                continue;
            }
            for entry in &tree.entries {
                let Ok(name) = entry.filename.to_str() else {
                    continue;
                };
                if !otoml::is_usage_file_name(name) {
                    continue;
                }
                let stamp = &name["usage_".len()..name.len() - ".otoml".len()];
                if let Some(hour) = hour_from_stamp(stamp) {
                    latest = latest.max(Some(hour));
                }
            }
        }
        Ok(latest)
    }

    fn add_file(
        &mut self,
        repo: &gix::Repository,
        node: &str,
        file: &str,
        blob: gix::ObjectId,
    ) -> anyhow::Result<()> {
        if let Some(e) = self.nodes.entries.iter().find(|e| e.filename == node)
            && !e.mode.is_tree()
        {
            bail!(
                "nodes/{node} in {} is a file, not a directory; remove it or simulate other nodes",
                repo.path().display()
            );
        }
        let tree = self
            .node_trees
            .entry(node.to_string())
            .or_insert_with(gix::objs::Tree::empty);
        upsert(tree, file, EntryKind::Blob, blob);
        Ok(())
    }

    /// Adds the changed trees and a commit for this hour to `pack`.
    fn commit(
        &mut self,
        repo: &gix::Repository,
        pack: &mut PackBuffer,
        hour: i64,
        stamp: &str,
        nodes: u32,
        records: u32,
    ) -> anyhow::Result<gix::ObjectId> {
        for i in 0..nodes {
            let name = node_name(i);
            let id = pack.add_object(repo, &self.node_trees[&name])?;
            upsert(&mut self.nodes, &name, EntryKind::Tree, id);
        }
        let nodes_id = pack.add_object(repo, &self.nodes)?;
        upsert(&mut self.root, "nodes", EntryKind::Tree, nodes_id);
        let root_id = pack.add_object(repo, &self.root)?;

        // Fixed identity and the hour's end as time: same input, same commit id.
        let signature = gix::actor::Signature {
            name: SIGNATURE_NAME.into(),
            email: SIGNATURE_EMAIL.into(),
            time: gix::date::Time {
                seconds: (hour + 1) * 3600,
                offset: 0,
            },
        };
        let commit = gix::objs::Commit {
            tree: root_id,
            parents: self.head.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: format!("usage for hour {stamp}: {nodes} nodes x {records} records\n").into(),
            extra_headers: Vec::new(),
        };
        let commit_id = pack.add_object(repo, &commit)?;
        self.head = Some(commit_id);
        Ok(commit_id)
    }
}

/// Moves the branch from `from` (`None`: it must not exist) to `to`.
fn move_branch(
    repo: &gix::Repository,
    branch_ref: &FullName,
    from: Option<gix::ObjectId>,
    to: gix::ObjectId,
    stamp: &str,
) -> anyhow::Result<()> {
    let expected = match from {
        Some(previous) => PreviousValue::MustExistAndMatch(Target::Object(previous)),
        None => PreviousValue::MustNotExist,
    };
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("simulate: up to hour {stamp}").into(),
            },
            expected,
            new: Target::Object(to),
        },
        name: branch_ref.clone(),
        deref: false,
    })?;
    Ok(())
}

/// Flush the pack once this many compressed bytes are pending.
const PACK_FLUSH_BYTES: usize = 64 * 1024 * 1024;

/// New objects, compressed and collected into one pack file instead of
/// thousands of loose files: far fewer filesystem operations for writer and
/// reader alike. The branch only moves after the pack holding its objects is
/// in place. Objects are stored whole (no deltas), which keeps writing simple.
struct PackBuffer {
    /// Pack data so far: a 12-byte header (count patched at flush), then entries.
    bytes: Vec<u8>,
    count: u32,
    pending_bytes: usize,
    /// Ids already added in this run (the repo cannot see unflushed ones).
    added: HashSet<gix::ObjectId>,
}

const PACK_HEADER_LEN: usize = 12;

impl Default for PackBuffer {
    fn default() -> Self {
        PackBuffer {
            bytes: vec![0; PACK_HEADER_LEN],
            count: 0,
            pending_bytes: 0,
            added: HashSet::new(),
        }
    }
}

impl PackBuffer {
    fn add_object(
        &mut self,
        repo: &gix::Repository,
        object: &impl gix::objs::WriteTo,
    ) -> anyhow::Result<gix::ObjectId> {
        let mut buf = Vec::new();
        object.write_to(&mut buf)?;
        self.add(repo, object.kind(), &buf)
    }

    fn add(
        &mut self,
        repo: &gix::Repository,
        kind: gix::objs::Kind,
        data: &[u8],
    ) -> anyhow::Result<gix::ObjectId> {
        use std::io::Write;
        let id = gix::objs::compute_hash(repo.object_hash(), kind, data)?;
        if !self.added.insert(id) || repo.has_object(id) {
            return Ok(id);
        }
        let before = self.bytes.len();
        let type_id: u8 = match kind {
            gix::objs::Kind::Commit => 1,
            gix::objs::Kind::Tree => 2,
            gix::objs::Kind::Blob => 3,
            gix::objs::Kind::Tag => 4,
        };
        // Entry header: type and size, little-endian base-128 after the first 4 bits.
        let size = data.len() as u64;
        let mut byte = (type_id << 4) | (size & 0x0f) as u8;
        let mut rest = size >> 4;
        while rest != 0 {
            self.bytes.push(byte | 0x80);
            byte = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        self.bytes.push(byte);
        let mut deflate = gix::zlib::stream::deflate::Write::new(
            std::mem::take(&mut self.bytes),
            gix::zlib::Compression::BEST_SPEED,
        );
        deflate.write_all(data)?;
        deflate.flush()?;
        self.bytes = deflate.into_inner();
        self.count += 1;
        self.pending_bytes += self.bytes.len() - before;
        Ok(id)
    }

    /// Writes the pending objects as one pack with its index.
    fn flush(&mut self, repo: &gix::Repository) -> anyhow::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut bytes = std::mem::replace(&mut self.bytes, vec![0; PACK_HEADER_LEN]);
        let count = std::mem::take(&mut self.count);
        self.pending_bytes = 0;
        bytes[..4].copy_from_slice(b"PACK");
        bytes[4..8].copy_from_slice(&2u32.to_be_bytes());
        bytes[8..12].copy_from_slice(&count.to_be_bytes());
        let mut hasher = gix::hash::hasher(repo.object_hash());
        hasher.update(&bytes);
        bytes.extend_from_slice(hasher.try_finalize()?.as_bytes());

        let dir = repo.common_dir().join("objects").join("pack");
        std::fs::create_dir_all(&dir)?;
        gix::odb::pack::Bundle::write_to_directory(
            &mut bytes.as_slice(),
            Some(&dir),
            &mut gix::progress::Discard,
            &AtomicBool::new(false),
            None::<gix::objs::find::Never>,
            repo.object_hash(),
            gix::odb::pack::bundle::write::Options::default(),
        )?;
        Ok(())
    }
}

/// Inserts or replaces `name` in `tree`, keeping git's entry order.
fn upsert(tree: &mut gix::objs::Tree, name: &str, kind: EntryKind, oid: gix::ObjectId) {
    tree.entries.retain(|e| e.filename != name);
    let entry = Entry {
        mode: kind.into(),
        filename: name.into(),
        oid,
    };
    let at = tree.entries.partition_point(|e| *e < entry);
    tree.entries.insert(at, entry);
}

/// (resource, unit, quantity per step, cost cents per step, max steps)
const RESOURCES: [(&str, &str, f64, i64, u64); 4] = [
    ("vm.cpu", "core-seconds", 3600.0, 3, 16),
    ("vm.mem", "gib-hours", 1.0, 1, 64),
    ("gpu", "gpu-seconds", 3600.0, 45, 4),
    ("storage", "gib-hours", 10.0, 1, 50),
];

fn make_batch(
    opts: &SimulateOptions,
    node_index: u32,
    node: &str,
    hour: i64,
    report: &mut SimulateReport,
) -> UsageBatch {
    let stamp = stamp_from_hour(hour);
    let start: toml::value::Datetime = rfc3339_from_hour(hour).parse().expect("valid datetime");
    let end: toml::value::Datetime = rfc3339_from_hour(hour + 1).parse().expect("valid datetime");
    let mut rng = SplitMix64::new(opts.seed);
    rng.mix(u64::from(node_index));
    rng.mix(hour as u64);
    let records = (0..opts.records)
        .map(|n| {
            let user = user_sid(rng.below(u64::from(opts.users)) as u32);
            let (resource, unit, step_quantity, step_cost, max_steps) =
                RESOURCES[rng.below(RESOURCES.len() as u64) as usize];
            let steps = 1 + rng.below(max_steps);
            let cost_cents = step_cost * steps as i64;
            report.records += 1;
            report.total_cost_cents += cost_cents;
            *report.per_user_cost_cents.entry(user.clone()).or_default() += cost_cents;
            UsageRecord {
                idempotency_key: format!("{node}:{stamp}:{n}"),
                user_sid: user,
                node_name: node.to_string(),
                cost_cents,
                resource: Some(resource.to_string()),
                quantity: Some(step_quantity * steps as f64),
                unit: Some(unit.to_string()),
                period_start: Some(start),
                period_end: Some(end),
            }
        })
        .collect();
    UsageBatch {
        version: Some(otoml::OTOML_VERSION),
        records,
    }
}

/// A small, well-mixed PRNG: enough for realistic-looking, reproducible data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        rng.next_u64();
        rng
    }

    fn mix(&mut self, value: u64) {
        self.0 ^= value.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.next_u64();
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// Hours are counted from the Unix epoch; calendar conversion after
// Howard Hinnant's `days_from_civil` / `civil_from_days`.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD-HH` to hours since the epoch; `None` for an impossible date.
fn hour_from_stamp(stamp: &str) -> Option<i64> {
    let field = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (y, m, d, h) = (field(0..4)?, field(5..7)?, field(8..10)?, field(11..13)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(0..=23).contains(&h) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates such as 02-31 that would silently roll over.
    (civil_from_days(days) == (y, m, d)).then_some(days * 24 + h)
}

fn stamp_from_hour(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}-{:02}", hour.rem_euclid(24))
}

fn rfc3339_from_hour(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}T{:02}:00:00Z", hour.rem_euclid(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_stamps_round_trip_across_months_and_leap_days() {
        for stamp in [
            "2026-01-01-00",
            "2026-02-28-23",
            "2028-02-29-12",
            "2026-12-31-23",
        ] {
            let hour = hour_from_stamp(stamp).unwrap();
            assert_eq!(stamp_from_hour(hour), stamp);
        }
        let h = hour_from_stamp("2026-12-31-23").unwrap();
        assert_eq!(stamp_from_hour(h + 1), "2027-01-01-00");
        assert_eq!(hour_from_stamp("2026-02-31-00"), None);
        assert_eq!(hour_from_stamp("1970-01-01-01"), Some(1));
    }

    #[test]
    fn names_are_zero_padded() {
        assert_eq!(user_sid(7), "u-0007");
        assert_eq!(node_name(7), "node-007");
    }
}
