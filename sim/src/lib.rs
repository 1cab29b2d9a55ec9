//! Deterministic simulation of the billing aggregator.
//!
//! One seed draws a sequence of steps ([`steps`]): nodes commit new, rewritten,
//! deleted, malformed, oversize and conflicting files into a real git repo
//! written in process ([`world`]); history is force-pushed; services register
//! users and record payments (new, replayed, conflicting); passes run, some
//! beside service writes; the process crashes inside a pass (the ledger's
//! write-step failpoint, then the ledger is dropped and opened again, as after
//! `kill -9`); the forge answers with faults. The real `Aggregator` and the
//! real ledger (redb, or PostgreSQL) do the work, and after every step the
//! ledger is compared with an independent [`model`] ([`check`]).
//!
//! The seed fixes every step, every file and every fault; threads inside a
//! pass still interleave as they do in production, which the checks allow for
//! (a crash point may land in another node's write, with the same end state).

pub mod check;
pub mod model;
mod process;
pub mod steps;
pub mod world;

use std::collections::BTreeSet;
use std::fmt;

pub use process::{Backend, SourceKind};

use model::{Counts, Limits, Model, PayAnswer};
use process::{Process, Setup};
use steps::{Generator, Service, Step};
use world::{World, WorldFile};

/// Limits the simulated aggregator runs with: small, so that the generator
/// reaches them.
pub const LIMITS: Limits = Limits {
    max_file_bytes: 4096,
    max_records: 12,
    max_record_cents: 500,
};

/// The limits a restarted process may run with instead: every file the
/// generator makes over [`LIMITS`] fits them, so the files held back by a
/// limit apply without a new commit, as the doc says.
pub const RAISED: Limits = Limits {
    max_file_bytes: 8192,
    max_records: 24,
    max_record_cents: 1000,
};

/// One simulation run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub steps: u32,
    pub backend: Backend,
    /// The source; `None` draws it from the seed (a forge one seed in four).
    pub source: Option<SourceKind>,
    /// Print each step and the repo's files as it runs.
    pub trace: bool,
}

/// A step where the ledger and the model disagreed.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: u32,
    pub what: String,
    pub message: String,
    pub options: Options,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.options.backend {
            Backend::Redb => "",
            Backend::Postgres => " --backend postgres",
        };
        write!(
            f,
            "seed {} failed at step {} ({}):\n{}\nreplay it with: scripts/sim.sh --seed {} --steps {}{backend}",
            self.seed, self.step, self.what, self.message, self.seed, self.options.steps
        )
    }
}

/// What a seed did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub steps: u32,
    pub passes: u32,
    pub crashes: u32,
    /// Crashes that hit a write (the others came after the pass ended).
    pub crashes_fired: u32,
    pub fault_passes: u32,
    pub records_applied: u64,
    pub source: &'static str,
}

/// Runs one seed; `Err` tells the step, what differed and the command that replays it.
pub fn run(options: Options) -> Result<Report, Box<Failure>> {
    let fail = |step: u32, what: &str, message: String| {
        Box::new(Failure {
            seed: options.seed,
            step,
            what: what.to_string(),
            message,
            options: options.clone(),
        })
    };
    let mut generator = Generator::new(options.seed, LIMITS, false);
    let source = options.source.unwrap_or(if generator.draw(4) == 0 {
        SourceKind::Forge
    } else {
        SourceKind::Git
    });
    let mut generator = Generator::new(options.seed, LIMITS, source == SourceKind::Forge);
    // One seed in two applies each node in small write transactions, so that
    // crashes fall between a node's chunks.
    let chunk = (generator.draw(2) == 0).then(|| 1 + generator.draw(8) as usize);
    // Forge seeds of even number read from a forge that serves batch blob
    // reads (drawn apart from the generator, so older seeds replay as before).
    let batch_reads = source == SourceKind::Forge && options.seed.is_multiple_of(2);
    let setup = Setup::new(options.backend, source, chunk, batch_reads)
        .map_err(|e| fail(0, "set-up", e))?;
    let mut sim = Sim {
        world: World::create(&setup.repo_dir()).map_err(|e| fail(0, "set-up", e.to_string()))?,
        process: Some(setup.open(LIMITS).map_err(|e| fail(0, "set-up", e))?),
        limits: LIMITS,
        setup,
        model: Model::default(),
        users: (0..steps::USERS).map(steps::user).collect(),
        report: Report {
            source: if batch_reads {
                "forge (batch reads)"
            } else {
                source.name()
            },
            ..Report::default()
        },
    };
    for i in 0..steps::REGISTERED_AT_START {
        let service = Service::Register(steps::user(i));
        sim.service(&service).map_err(|e| fail(0, "set-up", e))?;
    }
    for step in 1..=options.steps {
        let next = generator.next(&sim.world, &sim.model);
        let what = describe(&next);
        if options.trace {
            eprintln!("step {step}: {what}");
            if let Step::Commit { changes, .. } | Step::ForcePush { then: changes, .. } = &next {
                for (path, spec) in changes {
                    eprintln!("    {path}: {spec:?}");
                }
            }
        }
        sim.step(next).map_err(|e| fail(step, &what, e))?;
        let store = sim.process().store();
        check::ledger(store, &sim.model, &sim.users).map_err(|e| fail(step, &what, e))?;
        sim.report.steps = step;
    }
    Ok(sim.report)
}

fn describe(step: &Step) -> String {
    match step {
        Step::Commit { what, changes } => format!("{what}: {} file(s)", changes.len()),
        Step::ForcePush { to, then } => {
            format!(
                "force-push to commit #{to}, then {} new file(s)",
                then.len()
            )
        }
        Step::Service(s) => format!("{s:?}"),
        Step::Pass => "a pass".into(),
        Step::PassWith(s) => format!("a pass beside {s:?}"),
        Step::Crash {
            after,
            services,
            toggle_limits,
        } => format!(
            "a crash at the ledger's write step {after} of a pass, beside {services:?}{}",
            if *toggle_limits {
                ", then a restart with the other limits and a pass"
            } else {
                ""
            }
        ),
        Step::Faults(f) => format!("a forge pass with faults {f:?}"),
    }
}

struct Sim {
    world: World,
    setup: Setup,
    process: Option<Process>,
    model: Model,
    users: Vec<String>,
    report: Report,
    /// The limits the process runs with now.
    limits: Limits,
}

impl Sim {
    fn process(&self) -> &Process {
        self.process.as_ref().expect("open between steps")
    }

    fn now(&self) -> u64 {
        self.setup.tick()
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Commit { changes, .. } => self.commit(changes),
            Step::ForcePush { to, then } => {
                self.world.force_to(to).map_err(|e| e.to_string())?;
                if then.is_empty() {
                    Ok(())
                } else {
                    self.commit(then)
                }
            }
            Step::Service(service) => self.service(&service),
            Step::Pass => self.pass(&[], None),
            Step::PassWith(services) => self.pass(&services, None),
            Step::Crash {
                after,
                services,
                toggle_limits,
            } => self.crash(after, &services, toggle_limits),
            Step::Faults(faults) => {
                self.report.fault_passes += 1;
                self.pass(&[], Some(&faults))
            }
        }
    }

    fn commit(&mut self, changes: Vec<(String, Option<world::FileSpec>)>) -> Result<(), String> {
        let changes = changes
            .into_iter()
            .map(|(path, spec)| (path, spec.map(WorldFile::new)))
            .collect();
        self.world.commit(changes).map_err(|e| e.to_string())
    }

    /// A service write, checked against what the model answers.
    fn service(&mut self, service: &Service) -> Result<(), String> {
        let now = self.now();
        let got = self.process().call(service, now);
        self.expect(service, got)
    }

    fn expect(
        &mut self,
        service: &Service,
        got: Result<(), process::CallError>,
    ) -> Result<(), String> {
        let want = match service {
            Service::Register(user) => {
                self.model.register(user);
                Ok(())
            }
            Service::Pay { id, user, amount } => match self.model.pay(id, user, *amount) {
                PayAnswer::Recorded => Ok(()),
                PayAnswer::Conflict => Err(process::CallError::Conflict),
                PayAnswer::UnknownUser => Err(process::CallError::NotFound),
            },
        };
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{service:?} answered {got:?}; the model says {want:?}"
            ))
        }
    }

    /// A pass, beside `services`, with `faults` on the forge.
    fn pass(
        &mut self,
        services: &[Service],
        faults: Option<&[steps::ForgeFault]>,
    ) -> Result<(), String> {
        let now = self.now();
        let head = self.world.head.clone();
        let (outcome, answers) = self.process().pass_beside(services, faults, now);
        self.report.passes += 1;
        let registers = services.iter().any(|s| matches!(s, Service::Register(_)));
        // Services first: payments commute with a pass, and a registration
        // either comes first or applies what the pass held.
        for (service, got) in services.iter().zip(answers) {
            self.expect(service, got)?;
        }
        let mut failed = BTreeSet::new();
        let summary = match outcome {
            Ok(summary) => summary,
            Err(e) if faults.is_some() => {
                // The forge failed the pass as a whole: nothing was read.
                let _ = e;
                return Ok(());
            }
            Err(e) => return Err(format!("the pass failed: {e}")),
        };
        for error in &summary.errors {
            match (&error.node_name, faults) {
                (Some(node), Some(_)) => {
                    failed.insert(node.clone());
                }
                _ => return Err(format!("the pass reported an error: {error:?}")),
            }
        }
        if summary.head_commit != head {
            return Err(format!(
                "the pass read head {:?}; the repo's head is {head:?}",
                summary.head_commit
            ));
        }
        let want = self
            .model
            .pass(head.as_deref(), &self.world.tree, &failed, self.limits);
        self.report.records_applied += want.applied;
        if registers {
            // A registration beside the pass may come between the pass's
            // look-up of a user and its write: the record is then held,
            // and applied no later than the next pass. The sum is the same.
            let moved = |c: &Counts| c.applied + c.pending;
            let got = summary.records_applied + summary.records_pending;
            if got != moved(&want) {
                return Err(format!(
                    "applied + held by the pass: ledger {got}, model {}",
                    moved(&want)
                ));
            }
            let (next, _) = self.process().pass_beside(&[], None, now);
            self.report.passes += 1;
            let next = next.map_err(|e| format!("the next pass failed: {e}"))?;
            let stragglers =
                self.model
                    .pass(head.as_deref(), &self.world.tree, &failed, self.limits);
            if stragglers != Counts::default() || !next.errors.is_empty() {
                return Err(format!(
                    "the next pass over an unchanged repo: {next:?}; the model read {stragglers:?}"
                ));
            }
            return Ok(());
        }
        check::counters(&summary, &want)
    }

    /// A pass that crashes at its `after`-th ledger write step (or ends
    /// before it), a restart, the services' retries, and a pass.
    fn crash(
        &mut self,
        after: u32,
        services: &[Service],
        toggle_limits: bool,
    ) -> Result<(), String> {
        self.report.crashes += 1;
        let now = self.now();
        process::arm_crash(after);
        let (outcome, answers) = self.process().pass_beside(services, None, now);
        process::disarm_crash();
        let fired = match &outcome {
            Ok(summary) => !summary.errors.is_empty(),
            Err(_) => true,
        } || answers
            .iter()
            .any(|a| matches!(a, Err(process::CallError::Other(_))));
        if fired {
            self.report.crashes_fired += 1;
        }
        // `kill -9`: everything in memory is gone; the ledger is opened again.
        drop(self.process.take());
        self.process = Some(self.setup.open(self.limits)?);
        // What the services were answered stands; what failed they retry now.
        let mut retry = Vec::new();
        for (service, got) in services.iter().zip(answers) {
            match got {
                Err(process::CallError::Other(_)) => retry.push(service),
                got => self.expect(service, got)?,
            }
        }
        for service in retry {
            self.service(service)?;
        }
        let now = self.now();
        let (outcome, _) = self.process().pass_beside(&[], None, now);
        self.report.passes += 1;
        let summary = outcome.map_err(|e| format!("the pass after the restart failed: {e}"))?;
        if !summary.errors.is_empty() {
            return Err(format!(
                "the pass after the restart reported errors: {:?}",
                summary.errors
            ));
        }
        let want = self.model.pass(
            self.world.head.as_deref(),
            &self.world.tree,
            &BTreeSet::new(),
            self.limits,
        );
        self.report.records_applied += want.applied;
        if toggle_limits {
            // The operator restarts with other limits (not during the
            // recovery: the interrupted pass kept what it read under the old
            // ones). Files held back by a limit apply without a new commit.
            self.limits = if self.limits.max_file_bytes == LIMITS.max_file_bytes {
                RAISED
            } else {
                LIMITS
            };
            drop(self.process.take());
            self.process = Some(self.setup.open(self.limits)?);
            self.pass(&[], None)?;
        }
        Ok(())
    }
}
