//! The third stage of a run: one (target, arm, seed) unit. Transfer (or scratch), an evaluation
//! before the first update and at every grid point, training to the budget. Errors and panics
//! become a failed record; only a stop (Ctrl-C, a time limit) or a lost claim ends a unit without
//! one. At evaluation points (at most every `checkpoint_every`) and when stopped, the unit saves
//! a preemption checkpoint ([`super::resume`]), from which a later run continues bit for bit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::agent::train::{Curve, EpisodeRecord};
use crate::agent::{Agent, Event, Outcome};
use crate::env::Registry;

use super::StudyError;
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

/// Runs one unit (from its checkpoint when it has one) and returns its record and training
/// episodes; `lost` says whether another process took the unit over.
pub fn run_unit(unit: &Unit<'_>, cx: &UnitContext<'_>, lost: &dyn Fn() -> bool) -> Result<UnitRun, Unrecorded> {
    let (experiment, registry, stop) = (cx.experiment, cx.registry, cx.stop);
    let start = Instant::now();
    let checkpoint_path = resume::resume_path(&unit.path);
    let mut curve = Curve::default();
    let mut evals = Vec::new();
    let mut report = None;
    let mut steps = 0;
    let mut resumed_at = None;
    let mut seconds_before = 0.0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), Halt> {
        let target = &unit.target.target;
        let prepare = || {
            let policy = &cx.sources[(unit.seed % cx.sources.len() as u64) as usize];
            let source = policy.lock();
            crate::transfer::prepare(
                registry,
                &source,
                &policy.record.name,
                &target.env,
                &unit.arm.strategy,
                target.map.as_ref(),
                unit.seed,
            )
            .map_err(failed)
        };
        let make_envs = |agent: &dyn Agent| -> Result<crate::env::VecEnv, Halt> {
            let mut envs = registry.make_vec(&target.env, agent.config().num_envs()).map_err(failed)?;
            envs.start_log();
            Ok(envs)
        };
        let (mut agent, r) = prepare()?;
        report = Some(r);
        let ev = &experiment.eval;
        // Deterministic evaluation of discrete actions steps its episodes together, one instance
        // each (up to EVAL_LANES; see `evaluate_on`); the returns are those of one instance
        // running them in turn.
        let mut eval_envs = vec![registry.make(&target.env).map_err(failed)?];
        let discrete = matches!(eval_envs[0].action_space(), crate::env::Space::Discrete { .. });
        let lanes = if ev.deterministic && discrete { ev.episodes.clamp(1, EVAL_LANES) } else { 1 };
        for _ in 1..lanes {
            eval_envs.push(registry.make(&target.env).map_err(failed)?);
        }
        let mut evaluate = |agent: &dyn Agent, nominal: u64| -> Result<EvalPoint, Halt> {
            let stats = crate::agent::evaluate_on(
                agent,
                &mut eval_envs,
                ev.episodes,
                ev.deterministic,
                1_000_000 + 10_000 * unit.seed,
            )
            .map_err(failed)?;
            if !stats.mean.is_finite() {
                return Err(Halt::Failed(format!(
                    "diverged: the evaluation return is {} at step {}",
                    stats.mean,
                    agent.steps()
                )));
            }
            Ok(EvalPoint { step: agent.steps(), nominal, mean: stats.mean, std: stats.std })
        };
        let mut envs = make_envs(agent.as_ref())?;
        let (every, budget) = (ev.every, experiment.budget);
        let mut next = every;
        // A checkpoint that does not load or restore is set aside (`.resume.damaged`) and the
        // unit starts over: its result is the same, only later.
        let resumed = resume::load(&checkpoint_path).and_then(|checkpoint| match checkpoint {
            Some(c) => {
                c.restore(agent.as_mut()).map_err(|e| StudyError::resume(&checkpoint_path, e))?;
                envs.replay(&c.log).map_err(|e| StudyError::resume(&checkpoint_path, e))?;
                Ok(Some(c))
            }
            None => Ok(None),
        });
        match resumed {
            Ok(Some(checkpoint)) => {
                curve.episodes = checkpoint.episodes;
                evals = checkpoint.progress.evals;
                next = checkpoint.progress.next;
                seconds_before = checkpoint.progress.seconds;
                resumed_at = Some(agent.steps());
            }
            Ok(None) => evals.push(evaluate(agent.as_ref(), 0)?),
            Err(e) => {
                eprintln!("warning: {e}; the unit starts over");
                let _ = std::fs::rename(&checkpoint_path, checkpoint_path.with_extension("resume.damaged"));
                agent = prepare()?.0;
                envs = make_envs(agent.as_ref())?;
                evals.push(evaluate(agent.as_ref(), 0)?);
            }
        }
        let mut saved = Instant::now();
        let save = |agent: &dyn Agent, envs: &crate::env::VecEnv, evals: &[EvalPoint], next: u64, curve: &Curve| {
            let progress = Progress {
                steps: agent.steps(),
                evals: evals.to_vec(),
                next,
                seconds: seconds_before + start.elapsed().as_secs_f64(),
            };
            let log = envs.log().expect("the training environments log their actions");
            // A checkpoint only saves time: one that cannot be written (a full disk) is a warning,
            // not the unit's failure. The record's own write reports the disk.
            if let Err(e) = resume::save(&checkpoint_path, agent, log, &curve.episodes, &progress) {
                eprintln!("warning: no checkpoint: {e}");
            }
        };
        loop {
            let mut due = false;
            let mut last = agent.steps();
            let outcome = agent
                .learn(&mut envs, budget, &mut |event| {
                    match event {
                        Event::Episode { step, episode } => {
                            curve.episodes.push(EpisodeRecord { step, ret: episode.ret, len: episode.len })
                        }
                        Event::Progress { step } => {
                            cx.steps_done.fetch_add(step - last, Ordering::Relaxed);
                            last = step;
                            due |= step >= next;
                        }
                        Event::Checkpoint { .. } if due || stop.load(Ordering::SeqCst) => {
                            return std::ops::ControlFlow::Break(());
                        }
                        Event::Checkpoint { .. } | Event::Intrinsic { .. } => {}
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(failed)?;
            steps = agent.steps();
            if lost() {
                return Err(Halt::Unrecorded(Unrecorded::Lost));
            }
            if outcome == Outcome::Stopped && !due {
                save(agent.as_ref(), &envs, &evals, next, &curve);
                return Err(Halt::Unrecorded(Unrecorded::Interrupted));
            }
            let nominal = if outcome == Outcome::Finished { budget } else { (steps / every * every).min(budget) };
            let point = evaluate(agent.as_ref(), nominal)?;
            match evals.last_mut() {
                Some(prev) if prev.nominal == nominal => *prev = point,
                _ => evals.push(point),
            }
            while next <= steps {
                next += every;
            }
            if outcome == Outcome::Finished {
                return Ok(());
            }
            let stopping = stop.load(Ordering::SeqCst);
            if stopping || saved.elapsed() >= cx.checkpoint_every {
                save(agent.as_ref(), &envs, &evals, next, &curve);
                saved = Instant::now();
            }
            if stopping {
                return Err(Halt::Unrecorded(Unrecorded::Interrupted));
            }
        }
    }));
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
        evals,
        steps,
        report,
    };
    Ok(UnitRun { result, curve, resumed_at, seconds: seconds_before + start.elapsed().as_secs_f64() })
}
