//! The experiment harness: runs every (target, arm, seed) unit of an [`Experiment`] in parallel,
//! crash-safe and resumable, in one process or many sharing the results folder, then summarises,
//! plots and reports.
//!
//! A run goes in stages: the experiment is resolved once into a [`Plan`] ([`plan`]: targets,
//! arms, thresholds, random-policy returns, the source policy when it is a checkpoint); the
//! source is loaded or pretrained and cached once over all processes ([`source`]); each unit is
//! claimed ([`claim`]), run from the plan ([`unit`](mod@unit)), continued from its preemption
//! checkpoint when it has one ([`resume`]), and leaves a record ([`records`]) published once; the
//! summary ([`summary`]), figures ([`figures`]) and report ([`report`](mod@report)) are computed
//! from the results folder alone, which is all that [`report()`] and [`status`] read.
//!
//! The modules stand on floors, each using only those below it (`tests/layers.rs` checks every
//! `super::` path): the vocabulary ([`ids`]: target and arm identifiers, metrics, intervals) and
//! the self-contained tools (`stats`, `claim`, `shard`, `slurm`, `error`) at the bottom; then the
//! experiment schema, the journal and the decision rules; the records (and `targets.ron`); the
//! scores, the preemption checkpoints, the sources and the cost; speed-ups, validation and the
//! aggregate; the plan; the summary, units and status; figures; the report.
//!
//! Results folder (`runs/<name>` unless told otherwise):
//!
//! | path | what |
//! |---|---|
//! | `experiment.ron` | the experiment as parsed (a re-run must match it) |
//! | `targets.ron` | each target's spec, map, threshold and random-policy return |
//! | `source.ron` | the source's name and training steps |
//! | `units/<target>/<arm>/seed<k>.ron` | one finished or failed unit: evaluations, transfer report, error |
//! | `units/<target>/<arm>/seed<k>.csv` | that unit's training episodes (`step,return,length`) |
//! | `units/<target>/<arm>/seed<k>.claim` | the claim of the process running the unit (while it runs) |
//! | `units/<target>/<arm>/seed<k>.resume` | its preemption checkpoint (until its record is written) |
//! | `journal/<host>-<pid>-<token>.log` | each process's events: claimed, resuming, recorded, stopped, lost |
//! | `evaluations.csv` | every evaluation of every finished unit, one row each (long format) |
//! | `summary.ron`, `summary.json` | metrics, intervals and verdicts ([`summary::Summary`]) |
//! | `curves-<target>.png/.svg`, `metrics.png/.svg` | figures drawn from the summary |
//! | `report.md` | setup, tables and figures |
//! | `slurm/*.sbatch`, `slurm/*.out` | the SLURM jobs of `headstart slurm` and their logs |
//!
//! A unit's record is written once when it ends; a re-run skips the units that have one and
//! continues the others from their checkpoints, so an interrupted run loses at most the work since
//! the units' last checkpoints. Every unit is seeded by its seed alone (its evaluations do not
//! change its training: agents stop only at checkpoint events) and a checkpoint holds all the
//! state training continues from, so a resumed run's results equal an uninterrupted run's, byte
//! for byte.

pub mod aggregate;
pub mod claim;
pub mod continual;
pub mod cost;
pub mod decision;
pub mod error;
pub mod experiment;
pub mod figures;
pub mod guard;
pub mod guarding;
pub mod html;
pub mod ids;
pub mod interference;
pub mod journal;
pub mod matrix;
pub mod plan;
pub mod power;
pub mod predictors;
pub mod pretraining;
pub mod records;
pub mod report;
pub mod resume;
pub mod rounds;
pub mod scores;
pub mod sequential;
pub mod shard;
pub mod slurm;
pub mod source;
pub mod speed;
pub mod stats;
pub mod status;
pub mod summary;
pub mod unit;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::agent::checkpoint;
use crate::env::Registry;
use crate::util::{to_ron, write_atomic};

pub use error::StudyError;
pub use plan::{Arm, ArmId, Folder, Plan, TargetId, TargetInfo, Units, arms};
pub use records::{EvalPoint, UnitResult, UnitStatus, read_units, unit_path};
pub use report::write_outputs;
pub use source::SourceRecord;
pub use summary::Summary;

use claim::Claimer;
use experiment::{Experiment, Source};
use journal::Journal;
use unit::{Claimed, Unit, UnitContext, run_claimed};

pub use shard::Shard;

/// Options of a run.
pub struct RunOptions {
    /// The results folder.
    pub out: PathBuf,
    /// Where pretrained sources are cached, by the hash of their spec.
    pub sources: PathBuf,
    /// Units run at once [default: the number of cores].
    pub jobs: usize,
    /// No progress display and no log.
    pub quiet: bool,
    /// Only this shard's units.
    pub shard: Option<Shard>,
    /// When a silent claim is taken over.
    pub claim_timeout: Duration,
    /// The least time between two preemption checkpoints of a unit.
    pub checkpoint_every: Duration,
    /// Write the summary, figures and report when every unit has a record.
    pub summarize: bool,
    /// TensorBoard event files of every unit, as the experiment's `log: (tensorboard: true)`.
    pub tensorboard: bool,
}

impl RunOptions {
    /// The defaults for a results folder: sources cached beside it, one unit per core, no shard,
    /// claims stale after [`claim::DEFAULT_TIMEOUT`], checkpoints at most every 3 minutes.
    pub fn new(out: PathBuf) -> RunOptions {
        RunOptions {
            sources: out.parent().map_or_else(|| PathBuf::from("runs/sources"), |p| p.join("sources")),
            out,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            quiet: false,
            shard: None,
            claim_timeout: claim::DEFAULT_TIMEOUT,
            checkpoint_every: Duration::from_secs(180),
            summarize: true,
            tensorboard: false,
        }
    }
}

/// How a run ended.
pub enum RunOutcome {
    /// Every unit has a record; the summary of them all.
    Complete(Box<Summary>),
    /// Ctrl-C: the finished units are saved, the others' checkpoints too; running again continues.
    Interrupted {
        /// Units with a record.
        done: usize,
        /// Units of the study.
        total: usize,
    },
    /// This process ran what it could; other processes (or shards) hold the remaining units.
    Incomplete {
        /// Units with a record.
        done: usize,
        /// Units of the study.
        total: usize,
        /// Units that live processes of this shard were running when this one ended.
        elsewhere: usize,
    },
}

/// Runs an experiment into `opts.out`, beside any other processes that run it into the same
/// folder: each claims the units it runs ([`claim`]), skips those with a record, and continues
/// those with a checkpoint. The process that finds every unit recorded writes the summary,
/// figures and report.
pub fn run(
    experiment: &Experiment,
    registry: &Registry,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<RunOutcome, StudyError> {
    let Setup { plan, sources, record, claimer, journal } = setup(experiment, registry, opts, stop)?;
    let all: Vec<Unit<'_>> =
        plan.units().with_paths(&opts.out).map(|(target, arm, seed, path)| Unit { target, arm, seed, path }).collect();
    let total = all.len();
    let mine: Vec<&Unit<'_>> =
        all.iter().enumerate().filter(|(i, _)| opts.shard.is_none_or(|s| s.has(*i))).map(|(_, u)| u).collect();
    let pending: Vec<&Unit<'_>> = mine.iter().copied().filter(|u| !u.path.exists()).collect();
    let skipped = mine.len() - pending.len();
    if !opts.quiet {
        let shard = opts.shard.map(|s| format!(" (shard {s}: {} of them)", mine.len())).unwrap_or_default();
        eprintln!(
            "{}: {} targets x {} arms x {} seeds = {total} units{shard}, {skipped} already done, {} jobs -> {}",
            experiment.name,
            plan.targets.len(),
            plan.arms.len(),
            experiment.seeds,
            opts.jobs,
            opts.out.display()
        );
    }
    let bar = crate::util::progress(mine.len() as u64, opts.quiet, "units");
    bar.set_position(skipped as u64);
    let log = !opts.quiet && bar.is_hidden();
    let steps_done = AtomicU64::new(0);
    let cx = UnitContext {
        experiment,
        registry,
        sources: &sources,
        stop,
        steps_done: &steps_done,
        checkpoint_every: opts.checkpoint_every,
        tensorboard: (opts.tensorboard || experiment.log.tensorboard).then(|| opts.out.join("tensorboard")),
    };
    let started = Instant::now();
    let errors = Mutex::new(Vec::new());
    let busy = AtomicUsize::new(0);
    // When this process last wrote the partial report (summary, figures, report.html), and how
    // long that took.
    let reported = Mutex::new((Instant::now(), Duration::ZERO));
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.jobs.max(1)).build().map_err(StudyError::Pool)?;
    // What becomes of a claimed unit: counted, logged; whether it moved (not busy elsewhere).
    let handle = |ran: Result<Claimed, StudyError>| -> bool {
        let run = match ran {
            Ok(Claimed::Ran(run)) => run,
            Ok(Claimed::Busy) => {
                busy.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Ok(Claimed::Paused) => return true,
            Ok(Claimed::Skipped) => {
                bar.inc(1);
                return true;
            }
            Err(e) => {
                errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                return false;
            }
        };
        bar.inc(1);
        if opts.summarize {
            report_partial(&opts.out, &reported);
        }
        let rate = steps_done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{rate:.0} steps/s"));
        if log {
            let result = &run.result;
            let last = result.evals.last().map(|e| e.mean).unwrap_or(f64::NAN);
            let status = match &result.status {
                UnitStatus::Finished => format!("return {last:.1}"),
                UnitStatus::Failed(e) => format!("FAILED: {e}"),
                UnitStatus::Stopped { step, .. } => format!("stopped by the guard at step {step}"),
            };
            let resumed = run.resumed_at.map(|s| format!(", resumed at step {s}")).unwrap_or_default();
            eprintln!(
                "[{}/{}] {} {} seed {}: {status} ({:.1} s{resumed})",
                bar.position(),
                mine.len(),
                result.target,
                result.arm,
                result.seed,
                run.seconds
            );
        }
        true
    };
    let io = (&claimer, &journal, opts.out.as_path());
    match guard::Looks::of(experiment) {
        None => pool.install(|| {
            pending.par_iter().for_each(|unit| {
                if !stop.load(Ordering::SeqCst) {
                    handle(run_claimed(unit, &cx, io, None));
                }
            })
        }),
        Some(looks) => {
            let rounds = rounds::Rounds { all: &all, mine: &mine, cx: &cx, io, looks: &looks, sources: record.count() };
            rounds.run(&pool, &bar, &handle, || errors.lock().map_or(true, |e| !e.is_empty()))?;
        }
    }
    bar.finish_and_clear();
    if let Some(e) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        return Err(e);
    }
    let units = read_units(&opts.out)?;
    let done = units.len();
    if stop.load(Ordering::SeqCst) {
        return Ok(RunOutcome::Interrupted { done, total });
    }
    if done < total || !opts.summarize {
        return Ok(RunOutcome::Incomplete { done, total, elsewhere: busy.into_inner() });
    }
    let summary = summary::summarize(experiment, &plan.targets, &units, &record);
    write_outputs(&opts.out, experiment, &summary, &units)?;
    Ok(RunOutcome::Complete(Box::new(summary)))
}

/// The least time between two partial reports of one process.
pub const PARTIAL_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Writes the report of the units finished so far (as `headstart report` does) when this process
/// last wrote one [`PARTIAL_REPORT_EVERY`] ago or more (and ten times as long as that one took:
/// a large study's reports take at most a tenth of the worker that writes them), and no other of
/// its threads is writing one; a failure is a warning (the run goes on, the last report stays).
/// The process that finds every unit recorded writes the final report after its own partial ones.
pub fn report_partial(out: &Path, reported: &Mutex<(Instant, Duration)>) {
    let Ok(mut last) = reported.try_lock() else { return };
    if last.0.elapsed() < PARTIAL_REPORT_EVERY.max(10 * last.1) {
        return;
    }
    let started = Instant::now();
    if let Err(e) = report(out) {
        eprintln!("warning: no partial report: {e}");
    }
    *last = (Instant::now(), started.elapsed());
}

/// A run's first stages, done by every process that runs the study.
struct Setup<'e> {
    plan: Plan<'e>,
    sources: Vec<source::SourcePolicy>,
    /// What `source.ron` holds (a matrix's names every source).
    record: SourceRecord,
    claimer: Claimer,
    journal: Journal,
}

/// Resolves the plan, checks or writes `experiment.ron`, obtains the sources (pretraining them
/// once over all processes) and writes `targets.ron` and `source.ron`.
fn setup<'e>(
    experiment: &'e Experiment,
    registry: &Registry,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<Setup<'e>, StudyError> {
    let mut plan = Plan::resolve_in(experiment, registry, Some(&opts.out))?;
    if !opts.quiet {
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| crate::util::FileError::new(&opts.out, e))?;
    let spec_path = opts.out.join("experiment.ron");
    let text = experiment.identity();
    match std::fs::read_to_string(&spec_path) {
        Ok(existing) if existing != text => return Err(StudyError::DifferentExperiment { dir: opts.out.clone() }),
        Ok(_) => {}
        Err(_) => write_atomic(&spec_path, &text)?,
    }
    let claimer = Claimer::new(opts.claim_timeout);
    let journal = Journal::open(&opts.out, claimer.owner())?;
    let tensorboard = (opts.tensorboard || experiment.log.tensorboard).then(|| opts.out.join("tensorboard"));
    let watch = source::Watch { quiet: opts.quiet, tensorboard: tensorboard.as_deref() };
    let sources = source::obtain(plan.experiment, plan.policy.take(), registry, &opts.sources, &claimer, watch, stop)?;
    // Every process writes the same two files: only the first (or after a change) writes them.
    let record = match &experiment.source {
        Source::Matrix(_) => SourceRecord { name: "matrix".into(), steps: 0, ..sources[0].record.clone() },
        _ => sources[0].record.clone(),
    };
    for (file, text) in [("targets.ron", to_ron(&plan.targets)), (SourceRecord::FILE, to_ron(&record))] {
        let path = opts.out.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            write_atomic(&path, text)?;
        }
    }
    Ok(Setup { plan, sources, record, claimer, journal })
}

/// The stages before the units: the results folder set up and every source pretrained (or
/// loaded), so that the processes that run the units find them ready. Returns the study's
/// number of units.
pub fn prepare(
    experiment: &Experiment,
    registry: &Registry,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<usize, StudyError> {
    Ok(setup(experiment, registry, opts, stop)?.plan.units().len())
}

/// Renders summary, figures and report again from a results folder, without training; at any
/// moment of a run, from the units finished so far (the summary is then marked partial).
pub fn report(out: &Path) -> Result<Summary, StudyError> {
    let folder = Folder::open(out)?;
    let units = read_units(out)?;
    let source = match SourceRecord::read(out)? {
        Some(record) => record,
        None => legacy_source(&folder.experiment, &units)?,
    };
    let mut summary = summary::summarize(&folder.experiment, &folder.targets, &units, &source);
    let total = folder.units().len();
    summary.partial = (units.len() < total).then_some(records::Partial { done: units.len(), total });
    write_outputs(out, &folder.experiment, &summary, &units)?;
    Ok(summary)
}

/// The source of a results folder written before `source.ron` existed: its name from the units'
/// transfer reports (else the policy's folder, or `pretrained`), its steps from the policy's card
/// (an error naming the card when it is gone) or the pretraining spec.
fn legacy_source(experiment: &Experiment, units: &[UnitResult]) -> Result<SourceRecord, StudyError> {
    let (name, steps) = match &experiment.source {
        Source::Policy(dir) => (dir.display().to_string(), checkpoint::read_card(dir)?.steps),
        Source::Policies(dirs) => {
            let dir = dirs.first().ok_or_else(|| StudyError::field("source", "Policies lists no checkpoint"))?;
            (dir.display().to_string(), checkpoint::read_card(dir)?.steps)
        }
        Source::Pretrain(p) => ("pretrained".to_string(), p.steps),
        Source::Sb3(s) => (s.dir().display().to_string(), checkpoint::read_card(&s.dir())?.steps),
        Source::Matrix(_) => ("matrix".to_string(), 0),
    };
    let name = units.iter().find_map(|u| u.report.as_ref().map(|r| r.source.clone())).unwrap_or(name);
    Ok(SourceRecord { name, steps, replicates: Vec::new(), members: Vec::new() })
}
