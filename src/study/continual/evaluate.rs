//! Every task of a sequence evaluated at an evaluation point: each task's own environments (one
//! instance per episode stepped together, as a study's evaluations) and episode seeds; under
//! PackNet, a task before the one training through its own weights; an evaluation point in a
//! unit's TensorBoard log.

use crate::agent::Agent;
use crate::agent::tensorboard::TrainLog;
use crate::env::Env;
use crate::study::StudyError;
use crate::transfer::continual::{self as protect, Protect};

use super::sequence::{Method, TaskInfo};
use super::unit::{Context, Protection, SequenceEval};

/// Every task's evaluation: its own environments (one instance per episode stepped together)
/// and episode seeds.
pub(super) struct Evaluator {
    envs: Vec<Vec<Box<dyn Env>>>,
    episodes: usize,
    deterministic: bool,
    seed: u64,
}

impl Evaluator {
    pub(super) fn new(cx: &Context<'_>, seed: u64) -> Result<Evaluator, StudyError> {
        let ev = &cx.sequence.eval;
        let mut envs = Vec::new();
        for index in 0..cx.tasks.len() {
            let make = || cx.make(index);
            let first = make()?;
            let discrete = matches!(first.action_space(), crate::env::Space::Discrete { .. });
            let lanes = if ev.deterministic && discrete { ev.episodes.clamp(1, 16) } else { 1 };
            let mut lane = vec![first];
            for _ in 1..lanes {
                lane.push(make()?);
            }
            envs.push(lane);
        }
        Ok(Evaluator { envs, episodes: ev.episodes, deterministic: ev.deterministic, seed: 1_000_000 + 10_000 * seed })
    }

    /// Every task's mean return; under PackNet a task before the one training (`current`) is
    /// evaluated with its own weights only.
    pub(super) fn all(
        &mut self,
        agent: &mut dyn Agent,
        method: &Method,
        protection: &Protection,
        current: usize,
    ) -> Result<Vec<f64>, StudyError> {
        let packnet = matches!(method.protect, Some(Protect::PackNet { .. }));
        let (episodes, deterministic, seed) = (self.episodes, self.deterministic, self.seed);
        let mut out = Vec::with_capacity(self.envs.len());
        for (j, envs) in self.envs.iter_mut().enumerate() {
            let mut eval = |a: &dyn Agent| crate::agent::evaluate_on(a, envs, episodes, deterministic, seed);
            let stats = if packnet && j < current {
                protect::with_task_weights(agent, &protection.owners, j, &protection.stats_of(j), |a| eval(a))
                    .map_err(|e| StudyError::Training { message: format!("task {j} through its PackNet mask: {e}") })?
            } else {
                eval(agent)
            }
            .map_err(|error| StudyError::Task { index: j, error })?;
            if !stats.mean.is_finite() {
                return Err(StudyError::Training {
                    message: format!("diverged: the evaluation return on task {j} is {}", stats.mean),
                });
            }
            out.push(stats.mean);
        }
        Ok(out)
    }
}

/// Logs an evaluation point: every task's mean return and normalised score
/// (`eval/<task>/mean_reward`, `eval/<task>/score`) and their mean score (`eval/average_score`),
/// at the point's step in its task (the log's offset places it in the sequence).
pub(super) fn log_eval(log: &mut TrainLog, tasks: &[TaskInfo], e: &SequenceEval) {
    let tags: Vec<(String, f64)> = tasks
        .iter()
        .zip(&e.returns)
        .flat_map(|(t, &r)| {
            let key = &t.task.key;
            [(format!("eval/{key}/mean_reward"), r), (format!("eval/{key}/score"), t.normalise(r))]
        })
        .collect();
    let average = tasks.iter().zip(&e.returns).map(|(t, &r)| t.normalise(r)).sum::<f64>() / tasks.len().max(1) as f64;
    let mut values: Vec<(&str, f64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    values.push(("eval/average_score", average));
    log.write(e.nominal, &values);
}
