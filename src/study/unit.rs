//! The third stage of a run: one (target, arm, seed) unit. Transfer (or scratch), an evaluation
//! before the first update and at every grid point, training to the budget. Errors and panics
//! become a failed record; only Ctrl-C ends a unit without one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::agent::train::{Curve, EpisodeRecord};
use crate::agent::{Agent, Event, Outcome};
use crate::env::Registry;

use super::experiment::Experiment;
use super::plan::{Arm, TargetInfo};
use super::records::{EvalPoint, UnitResult, UnitStatus};
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

/// Ctrl-C ended the unit before the budget: it leaves no record.
pub struct Interrupted;

/// Why a unit's run ended before the budget.
enum Halt {
    /// An error or a divergence: the record says which.
    Failed(String),
    /// Ctrl-C.
    Interrupted,
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
}

/// Runs one unit and returns its record and its training episodes.
pub fn run_unit(unit: &Unit<'_>, cx: &UnitContext<'_>) -> Result<(UnitResult, Curve), Interrupted> {
    let (experiment, registry, stop) = (cx.experiment, cx.registry, cx.stop);
    let start = Instant::now();
    let mut curve = Curve::default();
    let mut evals = Vec::new();
    let mut report = None;
    let mut steps = 0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), Halt> {
        let target = &unit.target.target;
        let (mut agent, r) = {
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
            .map_err(failed)?
        };
        report = Some(r);
        let ev = &experiment.eval;
        let mut eval_env = registry.make(&target.env).map_err(failed)?;
        let mut evaluate = |agent: &dyn Agent, nominal: u64| -> Result<EvalPoint, Halt> {
            let stats = crate::agent::evaluate(
                agent,
                eval_env.as_mut(),
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
        evals.push(evaluate(agent.as_ref(), 0)?);
        let mut envs = registry.make_vec(&target.env, agent.config().num_envs()).map_err(failed)?;
        let (every, budget) = (ev.every, experiment.budget);
        let mut next = every;
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
                        Event::Checkpoint { .. } => {}
                    }
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(failed)?;
            steps = agent.steps();
            if outcome == Outcome::Stopped && !due {
                return Err(Halt::Interrupted);
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
            if stop.load(Ordering::SeqCst) {
                return Err(Halt::Interrupted);
            }
        }
    }));
    let status = match outcome {
        Ok(Ok(())) => UnitStatus::Finished,
        Ok(Err(Halt::Interrupted)) => return Err(Interrupted),
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
        seconds: start.elapsed().as_secs_f64(),
        steps,
        report,
    };
    Ok((result, curve))
}
