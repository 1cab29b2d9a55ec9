//! What can happen next, drawn from the seed: nodes committing (good, bad
//! and hostile files), history rewritten, services writing, passes running,
//! crashes and forge faults.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::model::{Limits, Model};
use crate::world::{FileBody, FileRec, FileSpec, World};

/// The users services may name; the first ones are registered at the start.
pub const USERS: usize = 8;
pub const REGISTERED_AT_START: usize = 4;
/// Nodes that commit usage.
pub const NODES: usize = 4;

pub fn user(i: usize) -> String {
    format!("u{i}")
}

fn node(i: usize) -> String {
    format!("n{i}")
}

/// A write a service makes.
#[derive(Debug, Clone)]
pub enum Service {
    Register(String),
    Pay {
        id: String,
        user: String,
        amount: i64,
    },
}

/// A forge fault before a pass: `(endpoint, kind, times)`.
#[derive(Debug, Clone)]
pub struct ForgeFault {
    pub endpoint: &'static str,
    pub kind: forge_emulator::FaultKind,
    pub times: u32,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Nodes push one commit.
    Commit {
        what: &'static str,
        changes: Vec<(String, Option<FileSpec>)>,
    },
    /// `main` is forced to an earlier commit, then maybe a new commit on top.
    ForcePush {
        to: usize,
        then: Vec<(String, Option<FileSpec>)>,
    },
    Service(Service),
    Pass,
    /// A pass while services write.
    PassWith(Vec<Service>),
    /// A pass (with services writing) in which the ledger's `after`-th write
    /// step from now fails and every later one too; then the process is
    /// restarted, the services retry what failed, and a pass runs.
    Crash {
        after: u32,
        services: Vec<Service>,
        /// The process starts again with the other set of limits (raised, or back).
        toggle_limits: bool,
    },
    /// A forge pass with faults injected.
    Faults(Vec<ForgeFault>),
}

/// Draws steps for one seed.
pub struct Generator {
    rng: StdRng,
    limits: Limits,
    forge: bool,
    /// Next hour number per node.
    hours: [u32; NODES],
    seq: u64,
    payments: Vec<(String, String, i64)>,
}

impl Generator {
    pub fn new(seed: u64, limits: Limits, forge: bool) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            limits,
            forge,
            hours: [0; NODES],
            seq: 0,
            payments: Vec::new(),
        }
    }

    /// A number drawn from the seed, for choices of the driver.
    pub fn draw(&mut self, below: u64) -> u64 {
        self.rng.random_range(0..below.max(1))
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{}", self.seq)
    }

    fn stamp(&mut self, n: usize) -> String {
        let h = self.hours[n];
        self.hours[n] += 1;
        format!("2026-11-{:02}-{:02}", 1 + (h / 24) % 28, h % 24)
    }

    pub fn next(&mut self, world: &World, model: &Model) -> Step {
        let roll = self.rng.random_range(0..100u32);
        match roll {
            0..25 => self.new_hours(model),
            25..31 => self.rewrite(world, model),
            31..34 => self.delete(world),
            34..37 => self.force_push(world, model),
            37..43 => self.bad_file(model),
            43..45 => self.junk(),
            45..60 => Step::Service(self.service(model)),
            60..78 => Step::Pass,
            78..85 => {
                let n = self.rng.random_range(1..4);
                Step::PassWith((0..n).map(|_| self.service(model)).collect())
            }
            85..94 => {
                let after = self.rng.random_range(0..24);
                let n = self.rng.random_range(0..3);
                Step::Crash {
                    after,
                    services: (0..n).map(|_| self.service(model)).collect(),
                    toggle_limits: self.rng.random_bool(0.25),
                }
            }
            _ if self.forge => Step::Faults(self.faults()),
            _ => Step::Pass,
        }
    }

    fn new_hours(&mut self, model: &Model) -> Step {
        let count = self.rng.random_range(1..=3);
        let mut changes = Vec::new();
        for _ in 0..count {
            let n = self.rng.random_range(0..NODES);
            let stamp = self.stamp(n);
            let path = format!("nodes/{}/usage_{stamp}.otoml", node(n));
            let records = self.records(n, model);
            changes.push((path, Some(spec(records))));
        }
        Step::Commit {
            what: "new hour files",
            changes,
        }
    }

    /// 1..=8 records of node `n`: mostly new, some duplicates, conflicts and invalid.
    fn records(&mut self, n: usize, model: &Model) -> Vec<FileRec> {
        let count = self.rng.random_range(1..=8);
        let mut recs: Vec<FileRec> = Vec::new();
        for _ in 0..count {
            let rec = self.record(n, model, &recs);
            recs.push(rec);
        }
        recs
    }

    fn record(&mut self, n: usize, model: &Model, earlier: &[FileRec]) -> FileRec {
        let here = node(n);
        let roll = self.rng.random_range(0..100u32);
        if (72..80).contains(&roll) {
            // A record this node wrote before, again (a duplicate).
            let mine: Vec<_> = model
                .applied
                .iter()
                .chain(&model.held)
                .filter(|(_, c)| c.node == here)
                .collect();
            if !mine.is_empty() {
                let (key, c) = mine[self.rng.random_range(0..mine.len())];
                return FileRec {
                    key: key.clone(),
                    user: Some(c.user.clone()),
                    node: here,
                    cost: c.cost,
                };
            }
        }
        if (80..86).contains(&roll) {
            // A key already applied or held, with other values (a conflict).
            let all: Vec<_> = model.applied.iter().chain(&model.held).collect();
            if !all.is_empty() {
                let (key, c) = all[self.rng.random_range(0..all.len())];
                return FileRec {
                    key: key.clone(),
                    user: Some(c.user.clone()),
                    node: here,
                    cost: c.cost + 1,
                };
            }
        }
        if (86..90).contains(&roll) && !earlier.is_empty() {
            // A record of this file repeated, as is or changed.
            let mut again = earlier[self.rng.random_range(0..earlier.len())].clone();
            if self.rng.random_bool(0.5) {
                again.cost += 1;
            }
            return again;
        }
        let key = self.fresh(&format!("{here}:k"));
        let mut rec = FileRec {
            key,
            user: Some(user(self.rng.random_range(0..USERS))),
            node: here,
            cost: self.rng.random_range(0..=200),
        };
        if roll >= 90 {
            match self.rng.random_range(0..7u32) {
                0 => rec.cost = -self.rng.random_range(1..=100),
                1 => rec.cost = self.limits.max_record_cents + self.rng.random_range(1..=100),
                2 => rec.node = "n-other".into(),
                3 => rec.user = None,
                4 => rec.key = format!("{}{}", rec.key, "k".repeat(257)),
                5 => rec.key = format!("{}\u{1}", rec.key),
                _ => rec.user = Some("u\u{7f}".into()),
            }
        }
        rec
    }

    fn existing_usage<'w>(&mut self, world: &'w World) -> Option<(&'w String, &'w FileSpec)> {
        let files: Vec<_> = world
            .tree
            .iter()
            .filter(|(p, f)| p.contains("/usage_") && matches!(f.spec.body, FileBody::Records(_)))
            .collect();
        if files.is_empty() {
            return None;
        }
        let (path, file) = files[self.rng.random_range(0..files.len())];
        Some((path, &file.spec))
    }

    /// A node rewrites a file already committed (maybe applied): a record
    /// added, one changed, or one dropped.
    fn rewrite(&mut self, world: &World, model: &Model) -> Step {
        let Some((path, old)) = self.existing_usage(world) else {
            return self.new_hours(model);
        };
        let FileBody::Records(mut recs) = old.body.clone() else {
            unreachable!("picked a records file")
        };
        let n = path
            .split('/')
            .nth(1)
            .and_then(|d| d.strip_prefix('n'))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < NODES);
        match (self.rng.random_range(0..3u32), n) {
            (0, Some(n)) => {
                let rec = self.record(n, model, &recs);
                recs.push(rec);
            }
            (1, _) if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                recs[i].cost += 1;
            }
            _ if !recs.is_empty() => {
                let i = self.rng.random_range(0..recs.len());
                recs.remove(i);
            }
            _ => {}
        }
        Step::Commit {
            what: "a file rewritten",
            changes: vec![(path.clone(), Some(spec(recs)))],
        }
    }

    fn delete(&mut self, world: &World) -> Step {
        let paths: Vec<_> = world.tree.keys().collect();
        if paths.is_empty() {
            return Step::Pass;
        }
        let path = paths[self.rng.random_range(0..paths.len())].clone();
        Step::Commit {
            what: "a file deleted",
            changes: vec![(path, None)],
        }
    }

    fn force_push(&mut self, world: &World, model: &Model) -> Step {
        if world.history.len() < 2 {
            return self.new_hours(model);
        }
        let to = self.rng.random_range(0..world.history.len() - 1);
        let then = if self.rng.random_bool(0.5) {
            match self.new_hours(model) {
                Step::Commit { changes, .. } => changes,
                _ => unreachable!("new_hours commits"),
            }
        } else {
            Vec::new()
        };
        Step::ForcePush { to, then }
    }

    /// A file the aggregator must reject whole.
    fn bad_file(&mut self, model: &Model) -> Step {
        let n = self.rng.random_range(0..NODES);
        let mut stamp = self.stamp(n);
        let (what, body, pad) = match self.rng.random_range(0..6u32) {
            0 => ("an unparseable file", FileBody::Malformed, 0),
            1 => ("a file of an unknown version", FileBody::BadVersion, 0),
            2 => ("a Git LFS pointer", FileBody::Lfs, 0),
            3 => {
                let recs = self.records(n, model);
                let pad = self.limits.max_file_bytes as usize;
                ("an oversize file", FileBody::Records(recs), pad)
            }
            4 => {
                let recs = (0..=self.limits.max_records)
                    .map(|_| FileRec {
                        key: self.fresh(&format!("{}:many", node(n))),
                        user: Some(user(0)),
                        node: node(n),
                        cost: 1,
                    })
                    .collect();
                ("a file of too many records", FileBody::Records(recs), 0)
            }
            _ => {
                stamp = format!(
                    "2026-02-{}-{:02}",
                    self.rng.random_range(29..=31),
                    self.rng.random_range(0..24)
                );
                let recs = self.records(n, model);
                ("a file named after no hour", FileBody::Records(recs), 0)
            }
        };
        let path = format!("nodes/{}/usage_{stamp}.otoml", node(n));
        Step::Commit {
            what,
            changes: vec![(path, Some(FileSpec { body, pad }))],
        }
    }

    /// Files the aggregator must not read at all.
    fn junk(&mut self) -> Step {
        let key = self.fresh("junk:");
        let rec = |node: &str| FileRec {
            key: key.clone(),
            user: Some(user(0)),
            node: node.into(),
            cost: 7,
        };
        let path = match self.rng.random_range(0..3u32) {
            0 => "nodes/bad node/usage_2026-11-01-00.otoml".to_string(),
            1 => format!("nodes/{}/notes/usage_2026-11-01-00.otoml", node(0)),
            _ => format!("nodes/{}/usage_2026-11-01-00.otoml.bak", node(1)),
        };
        let node_dir = path.split('/').nth(1).unwrap_or_default().to_string();
        Step::Commit {
            what: "files outside the usage pattern",
            changes: vec![(path, Some(spec(vec![rec(&node_dir)])))],
        }
    }

    fn service(&mut self, model: &Model) -> Service {
        let roll = self.rng.random_range(0..100u32);
        if roll < 30 {
            return Service::Register(user(self.rng.random_range(0..USERS)));
        }
        if roll < 45 && !self.payments.is_empty() {
            let (id, user, amount) =
                self.payments[self.rng.random_range(0..self.payments.len())].clone();
            // A replay, or the same id with another amount (a conflict).
            let amount = if self.rng.random_bool(0.5) {
                amount
            } else {
                amount + 1
            };
            return Service::Pay { id, user, amount };
        }
        let registered: Vec<_> = model.users.iter().cloned().collect();
        let user = if roll < 50 || registered.is_empty() {
            user(self.rng.random_range(0..USERS))
        } else {
            registered[self.rng.random_range(0..registered.len())].clone()
        };
        let id = self.fresh("pay-");
        let amount = self.rng.random_range(1..=2000);
        self.payments.push((id.clone(), user.clone(), amount));
        Service::Pay { id, user, amount }
    }

    fn faults(&mut self) -> Vec<ForgeFault> {
        use forge_emulator::FaultKind;
        let count = self.rng.random_range(1..=2);
        (0..count)
            .map(|_| {
                let endpoint = ["branch", "trees", "blobs"][self.rng.random_range(0..3)];
                let kind = match self.rng.random_range(0..6u32) {
                    0 => FaultKind::Status { status: 500 },
                    1 => FaultKind::Status { status: 503 },
                    2 => FaultKind::RateLimit {
                        retry_after_secs: 0,
                    },
                    3 => FaultKind::Truncate,
                    4 => FaultKind::Abort,
                    _ => FaultKind::Delay { ms: 400 },
                };
                ForgeFault {
                    endpoint,
                    kind,
                    times: self.rng.random_range(1..=4),
                }
            })
            .collect()
    }
}

fn spec(records: Vec<FileRec>) -> FileSpec {
    FileSpec {
        body: FileBody::Records(records),
        pad: 0,
    }
}
