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

mod generate;
mod pack;
mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use billing_api::otoml::{self};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};

use generate::{hour_from_stamp, make_batch, stamp_from_hour};
use pack::{PACK_FLUSH_BYTES, PackBuffer};
use tree::TreeState;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded() {
        assert_eq!(user_sid(7), "u-0007");
        assert_eq!(node_name(7), "node-007");
    }
}
