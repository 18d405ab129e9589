//! The third stage of a run: one (target, arm, seed) unit. Transfer (or scratch), an evaluation
//! before the first update and at every grid point, training to the budget. Errors and panics
//! become a failed record; only a stop (Ctrl-C, a time limit) or a lost claim ends a unit without
//! one. At evaluation points (at most every `checkpoint_every`) and when stopped, the unit saves
//! a preemption checkpoint ([`super::resume`]), from which a later run continues bit for bit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::agent::session::Session;
use crate::agent::tensorboard::TrainLog;
use crate::agent::train::{Curve, Task};
use crate::agent::{Agent, Event, Outcome};
use crate::env::Registry;

use super::StudyError;
use super::claim::{self, Claimer};
use super::journal::Journal;
use crate::util::{to_ron, write_atomic};
use super::experiment::Experiment;
use super::plan::{Arm, TargetInfo};
use super::records::{EvalPoint, UnitResult, UnitStatus};

/// The most evaluation episodes stepped together (one environment instance each).
const EVAL_LANES: usize = 16;
use super::resume::{self, Progress};
use super::source::SourcePolicy;

/// A unit to run.
pub struct Unit<'a> {
    /// Its target.
    pub target: &'a TargetInfo,
    /// Its arm.
    pub arm: &'a Arm,
    /// Its seed: of the agent, the environments and the evaluation episodes.
    pub seed: u64,
    /// Where its record goes.
    pub path: PathBuf,
}

/// Why a unit ended without a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrecorded {
    /// A stop (Ctrl-C, a time limit) before the budget; its checkpoint is saved.
    Interrupted,
    /// Another process took the unit's claim over.
    Lost,
    /// It reached the look it was run to (a guarded study's round); its checkpoint is saved.
    Paused,
}

/// Why a unit's run ended before the budget.
enum Halt {
    /// An error or a divergence: the record says which.
    Failed(String),
    /// No record.
    Unrecorded(Unrecorded),
}

fn failed(e: impl std::fmt::Display) -> Halt {
    Halt::Failed(e.to_string())
}

/// What the run of a unit needs besides the unit.
pub struct UnitContext<'a> {
    /// The experiment (budget and evaluation).
    pub experiment: &'a Experiment,
    /// Where environments come from.
    pub registry: &'a Registry,
    /// The source policies: seed `k` transfers from `sources[k mod K]`.
    pub sources: &'a [SourcePolicy],
    /// Ctrl-C.
    pub stop: &'a AtomicBool,
    /// Environment steps trained by every unit of the run (for the progress display).
    pub steps_done: &'a AtomicU64,
    /// The least time between two preemption checkpoints of a unit.
    pub checkpoint_every: Duration,
    /// Where units write TensorBoard event files (`<target>/<arm>/seed<k>` under it), if they do.
    pub tensorboard: Option<PathBuf>,
}

/// A unit's run: its record, its training episodes, whether it continued from a checkpoint (at
/// which step), and the seconds this process spent on it.
pub struct UnitRun {
    /// The record.
    pub result: UnitResult,
    /// Its training episodes.
    pub curve: Curve,
    /// The step of the checkpoint it continued from.
    pub resumed_at: Option<u64>,
    /// Wall-clock seconds, by every process that ran it.
    pub seconds: f64,
}

/// What a unit's run has produced so far: kept when it fails part-way.
#[derive(Default)]
struct SoFar {
    evals: Vec<EvalPoint>,
    report: Option<crate::transfer::TransferReport>,
    curve: Curve,
    steps: u64,
    resumed_at: Option<u64>,
    seconds_before: f64,
}

/// Runs one unit (from its checkpoint when it has one) and returns its record and training
/// episodes; `lost` says whether another process took the unit over. With `until`, the unit
/// pauses at its first evaluation at or past that step, its checkpoint saved
/// ([`Unrecorded::Paused`]), unless that is the end of its budget.
pub fn run_unit(
    unit: &Unit<'_>,
    cx: &UnitContext<'_>,
    lost: &dyn Fn() -> bool,
    until: Option<u64>,
) -> Result<UnitRun, Unrecorded> {
    let start = Instant::now();
    let mut so_far = SoFar::default();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(unit, cx, (lost, until), &mut so_far, start)));
    let status = match outcome {
        Ok(Ok(())) => UnitStatus::Finished,
        Ok(Err(Halt::Unrecorded(why))) => return Err(why),
        Ok(Err(Halt::Failed(message))) => UnitStatus::Failed(message),
        Err(panic) => UnitStatus::Failed(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    let result = UnitResult {
        target: unit.target.target.key.clone(),
        arm: unit.arm.id.clone(),
        seed: unit.seed,
        status,
        evals: so_far.evals,
        steps: so_far.steps,
        report: so_far.report,
    };
    let seconds = so_far.seconds_before + start.elapsed().as_secs_f64();
    Ok(UnitRun { result, curve: so_far.curve, resumed_at: so_far.resumed_at, seconds })
}

/// The unit's target agent, transferred from its source (a matrix arm's own; else seed `k` from
/// source `k mod K`).
fn prepare(unit: &Unit<'_>, cx: &UnitContext<'_>) -> Result<(Box<dyn Agent>, crate::transfer::TransferReport), Halt> {
    let policy = match unit.arm.source {
        Some(i) => &cx.sources[i],
        None => &cx.sources[(unit.seed % cx.sources.len() as u64) as usize],
    };
    let source = policy.lock();
    let target = &unit.target.target;
    crate::transfer::prepare(
        cx.registry,
        &source,
        &policy.record.name,
        &target.env,
        &unit.arm.strategy,
        target.map.as_ref(),
        unit.seed,
    )
    .map_err(failed)
}

/// The unit's evaluations: its own environments and episode seeds. Deterministic evaluation of
/// discrete actions steps its episodes together, one instance each (up to [`EVAL_LANES`]; see
/// `evaluate_on`); the returns are those of one instance running them in turn.
struct Evaluator {
    envs: Vec<Box<dyn crate::env::Env>>,
    episodes: usize,
    deterministic: bool,
    seed: u64,
}

impl Evaluator {
    fn new(unit: &Unit<'_>, cx: &UnitContext<'_>) -> Result<Self, Halt> {
        let (ev, spec) = (&cx.experiment.eval, &unit.target.target.env);
        let mut envs = vec![cx.registry.make(spec).map_err(failed)?];
        let discrete = matches!(envs[0].action_space(), crate::env::Space::Discrete { .. });
        let lanes = if ev.deterministic && discrete { ev.episodes.clamp(1, EVAL_LANES) } else { 1 };
        for _ in 1..lanes {
            envs.push(cx.registry.make(spec).map_err(failed)?);
        }
        Ok(Evaluator { envs, episodes: ev.episodes, deterministic: ev.deterministic, seed: 1_000_000 + 10_000 * unit.seed })
    }

    /// An evaluation of `agent` at grid point `nominal`; a return that is not finite fails the unit.
    fn evaluate(&mut self, agent: &dyn Agent, nominal: u64) -> Result<EvalPoint, Halt> {
        let stats = crate::agent::evaluate_on(agent, &mut self.envs, self.episodes, self.deterministic, self.seed)
            .map_err(failed)?;
        if !stats.mean.is_finite() {
            return Err(Halt::Failed(format!("diverged: the evaluation return is {} at step {}", stats.mean, agent.steps())));
        }
        Ok(EvalPoint { step: agent.steps(), nominal, mean: stats.mean, std: stats.std })
    }
}

/// Continues `session` from a preemption checkpoint: the agent restored, the environments
/// replayed, the progress taken over.
fn continue_from(
    session: &mut Session<'_>,
    c: resume::Checkpoint,
    path: &Path,
    so_far: &mut SoFar,
) -> Result<u64, StudyError> {
    c.restore(session.agent_mut()).map_err(|e| StudyError::resume(path, e))?;
    let curve = Curve { episodes: c.episodes, intrinsic: Vec::new() };
    session.resume(&c.log, curve).map_err(|e| StudyError::resume(path, e))?;
    so_far.evals = c.progress.evals;
    so_far.seconds_before = c.progress.seconds;
    so_far.resumed_at = Some(session.agent().steps());
    Ok(c.progress.next)
}

/// Runs the unit to its budget, evaluating on the grid and saving preemption checkpoints.
fn run(
    unit: &Unit<'_>,
    cx: &UnitContext<'_>,
    (lost, until): (&dyn Fn() -> bool, Option<u64>),
    so_far: &mut SoFar,
    start: Instant,
) -> Result<(), Halt> {
    let experiment = cx.experiment;
    let checkpoint_path = resume::resume_path(&unit.path);
    // A checkpoint that does not load, restore or replay is set aside (`.resume.damaged`) and
    // the unit starts over: its result is the same, only later.
    let set_aside = |e: StudyError| {
        eprintln!("warning: {e}; the unit starts over");
        let _ = std::fs::rename(&checkpoint_path, checkpoint_path.with_extension("resume.damaged"));
    };
    let checkpoint = resume::load(&checkpoint_path).unwrap_or_else(|e| {
        set_aside(e);
        None
    });
    let (mut agent, report) = prepare(unit, cx)?;
    so_far.report = Some(report);
    let mut evaluator = Evaluator::new(unit, cx)?;
    let task = Task::Env(unit.target.target.env.clone());
    let (every, budget) = (experiment.eval.every, experiment.budget);
    let mut session = Session::new(cx.registry, &task, agent.as_mut(), budget).map_err(failed)?;
    let mut next = every;
    match checkpoint.map(|c| continue_from(&mut session, c, &checkpoint_path, so_far)) {
        Some(Ok(at)) => next = at,
        Some(Err(e)) => {
            set_aside(e);
            drop(session);
            *so_far = SoFar { report: so_far.report.take(), ..SoFar::default() };
            agent = prepare(unit, cx)?.0;
            session = Session::new(cx.registry, &task, agent.as_mut(), budget).map_err(failed)?;
            so_far.evals.push(evaluator.evaluate(session.agent(), 0)?);
        }
        None => so_far.evals.push(evaluator.evaluate(session.agent(), 0)?),
    }
    // A unit already at its look (another process took it there since this one planned) stays
    // as it is: training on would take it past the look.
    if until.is_some_and(|u| so_far.evals.last().is_some_and(|e| e.nominal >= u)) {
        return Err(Halt::Unrecorded(Unrecorded::Paused));
    }
    // TensorBoard's run of this unit; a folder that cannot be made is a warning, not a failure.
    let mut log = cx.tensorboard.as_ref().and_then(|dir| {
        let run = dir.join(unit.target.target.key.to_string()).join(unit.arm.id.to_string()).join(format!("seed{}", unit.seed));
        TrainLog::create(&run, session.agent().steps()).map_err(|e| eprintln!("warning: no TensorBoard log: {e}")).ok()
    });
    if let Some(log) = &mut log {
        so_far.evals.iter().for_each(|e| log.eval(e.step, e.mean, e.std, Some(&|m| unit.target.score(m))));
    }
    // The episodes so far stay in the record even when training panics.
    let trained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let log = log.as_mut().map(|l| (l, unit.target));
        train(&mut session, &mut evaluator, cx, (lost, until), so_far, (next, &checkpoint_path, start), log)
    }));
    if let Some(log) = &mut log {
        log.flush();
    }
    so_far.curve = std::mem::take(&mut session.curve);
    trained.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Trains the session to its budget (or pauses at `until`): an evaluation at every grid point
/// passed, a preemption checkpoint at most every `checkpoint_every`, when stopped and when paused.
fn train(
    session: &mut Session<'_>,
    evaluator: &mut Evaluator,
    cx: &UnitContext<'_>,
    (lost, until): (&dyn Fn() -> bool, Option<u64>),
    so_far: &mut SoFar,
    (mut next, checkpoint_path, start): (u64, &Path, Instant),
    mut log: Option<(&mut TrainLog, &TargetInfo)>,
) -> Result<(), Halt> {
    let (every, budget, stop) = (cx.experiment.eval.every, cx.experiment.budget, cx.stop);
    let seconds_before = so_far.seconds_before;
    let save = |session: &Session<'_>, evals: &[EvalPoint], next: u64| {
        let progress = Progress {
            steps: session.agent().steps(),
            evals: evals.to_vec(),
            next,
            seconds: seconds_before + start.elapsed().as_secs_f64(),
            extra: String::new(),
        };
        // A checkpoint only saves time: one that cannot be written (a full disk) is a warning,
        // not the unit's failure. The record's own write reports the disk.
        if let Err(e) = resume::save(checkpoint_path, session.agent(), session.log(), &session.curve.episodes, &progress) {
            eprintln!("warning: no checkpoint: {e}");
        }
    };
    let mut saved = Instant::now();
    loop {
        let mut due = false;
        let mut last = session.agent().steps();
        let outcome = session
            .train(&mut |event| {
                if let Some((log, _)) = &mut log {
                    log.event(&event);
                }
                match event {
                    Event::Progress { step } => {
                        cx.steps_done.fetch_add(step - last, Ordering::Relaxed);
                        last = step;
                        due |= step >= next;
                    }
                    Event::Checkpoint { .. } if due || stop.load(Ordering::SeqCst) => {
                        return std::ops::ControlFlow::Break(());
                    }
                    Event::Episode { .. } | Event::Update { .. } | Event::Checkpoint { .. } | Event::Intrinsic { .. } => {}
                }
                std::ops::ControlFlow::Continue(())
            })
            .map_err(failed)?;
        let steps = session.agent().steps();
        so_far.steps = steps;
        if lost() {
            return Err(Halt::Unrecorded(Unrecorded::Lost));
        }
        if outcome == Outcome::Stopped && !due {
            save(session, &so_far.evals, next);
            return Err(Halt::Unrecorded(Unrecorded::Interrupted));
        }
        let nominal = if outcome == Outcome::Finished { budget } else { (steps / every * every).min(budget) };
        let point = evaluator.evaluate(session.agent(), nominal)?;
        // (The budget's point is evaluated again when training ends right at a grid point.)
        if let Some((log, target)) = &mut log
            && so_far.evals.last() != Some(&point)
        {
            log.eval(point.step, point.mean, point.std, Some(&|m| target.score(m)));
        }
        match so_far.evals.last_mut() {
            Some(prev) if prev.nominal == nominal => *prev = point,
            _ => so_far.evals.push(point),
        }
        while next <= steps {
            next += every;
        }
        if outcome == Outcome::Finished {
            return Ok(());
        }
        let stopping = stop.load(Ordering::SeqCst);
        let pausing = until.is_some_and(|u| nominal >= u);
        if stopping || pausing || saved.elapsed() >= cx.checkpoint_every {
            save(session, &so_far.evals, next);
            saved = Instant::now();
        }
        if stopping {
            return Err(Halt::Unrecorded(Unrecorded::Interrupted));
        }
        if pausing {
            return Err(Halt::Unrecorded(Unrecorded::Paused));
        }
    }
}

/// What became of a pending unit.
pub enum Claimed {
    /// A record appeared meanwhile, or the run was stopped or the claim lost.
    Skipped,
    /// A live process holds it.
    Busy,
    /// This process ran it and published its record.
    Ran(Box<UnitRun>),
    /// It reached the look it was run to; its checkpoint is saved.
    Paused,
}

/// Claims a unit, runs it (from its checkpoint when there is one; to `until`, see [`run_unit`])
/// and publishes its record once.
pub fn run_claimed(
    unit: &Unit<'_>,
    cx: &UnitContext<'_>,
    (claimer, journal, out): (&Claimer, &Journal, &Path),
    until: Option<u64>,
) -> Result<Claimed, StudyError> {
    let Some(claim) = claimer.try_claim(&claim::claim_path(&unit.path))? else { return Ok(Claimed::Busy) };
    if unit.path.exists() {
        return Ok(Claimed::Skipped);
    }
    let name = unit.path.strip_prefix(out).unwrap_or(&unit.path).display().to_string();
    journal.write("claimed", &name, "")?;
    if let Some(progress) = resume::peek(&resume::resume_path(&unit.path)) {
        journal.write("resuming", &name, progress.steps)?;
    }
    let run = match run_unit(unit, cx, &|| claim.is_lost(), until) {
        Ok(run) => run,
        Err(Unrecorded::Paused) => {
            journal.write("paused", &name, until.unwrap_or_default())?;
            return Ok(Claimed::Paused);
        }
        Err(why) => {
            journal.write(if why == Unrecorded::Lost { "lost" } else { "stopped" }, &name, "")?;
            return Ok(Claimed::Skipped);
        }
    };
    publish(unit, run, journal, &name)
}

/// Writes a unit's curve and publishes its record once, its checkpoint removed after.
fn publish(unit: &Unit<'_>, run: UnitRun, journal: &Journal, name: &str) -> Result<Claimed, StudyError> {
    write_atomic(&unit.path.with_extension("csv"), run.curve.to_csv())?;
    if claim::publish_once(&unit.path, to_ron(&run.result))? {
        journal.write("recorded", name, format!("{:.3}", run.seconds))?;
    } else {
        journal.write("duplicate", name, "")?;
    }
    let _ = std::fs::remove_file(resume::resume_path(&unit.path));
    Ok(Claimed::Ran(Box::new(run)))
}

/// Claims a unit whose arm the guard stopped at `step` and publishes its record (`Stopped`):
/// its evaluations and episodes from the checkpoint it paused at, the transfer report made again
/// (transfer is deterministic). A unit without a checkpoint is first run to the step.
pub fn record_stopped(
    unit: &Unit<'_>,
    cx: &UnitContext<'_>,
    (claimer, journal, out): (&Claimer, &Journal, &Path),
    step: u64,
) -> Result<Claimed, StudyError> {
    let checkpoint_path = resume::resume_path(&unit.path);
    let checkpoint = match resume::load(&checkpoint_path) {
        Ok(Some(c)) => c,
        _ => return run_claimed(unit, cx, (claimer, journal, out), Some(step)),
    };
    let Some(claim) = claimer.try_claim(&claim::claim_path(&unit.path))? else { return Ok(Claimed::Busy) };
    if unit.path.exists() {
        return Ok(Claimed::Skipped);
    }
    let name = unit.path.strip_prefix(out).unwrap_or(&unit.path).display().to_string();
    let report = prepare(unit, cx).ok().map(|(_, report)| report);
    let progress = checkpoint.progress;
    let result = UnitResult {
        target: unit.target.target.key.clone(),
        arm: unit.arm.id.clone(),
        seed: unit.seed,
        status: UnitStatus::Stopped { step },
        evals: progress.evals,
        steps: progress.steps,
        report,
    };
    let curve = Curve { episodes: checkpoint.episodes, intrinsic: Vec::new() };
    let run = UnitRun { result, curve, resumed_at: None, seconds: progress.seconds };
    let published = publish(unit, run, journal, &name);
    drop(claim);
    published
}
