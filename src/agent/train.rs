//! Training runs: an agent, its environments and its learning curve, as the CLI, the tests and
//! the experiment harness drive them.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::checkpoint::{self, Card, CardInfo, CheckpointError, TensorFile};
use super::{Agent, AgentError, EvalStats, Event, Outcome};
use crate::env::vector::ActionLog;
use super::session::Session;
use crate::env::{EnvError, EnvSpec, Mixture, Registry, Space, Tasks, VecEnv};

/// The file beside a checkpoint that a training run writes so that `train --resume` continues it
/// bit for bit: the agent's training state (`training.*`: generator, counters, observations in
/// hand, the replay buffer as it lies in memory) and the training environments' action log
/// (`log.*`, which fresh environments replay from the same seed into the same state).
pub const TRAINING_FILE: &str = "training.safetensors";
/// The file beside a reward-free agent's checkpoint with its intrinsic reward per rollout.
pub const INTRINSIC_FILE: &str = "intrinsic.csv";
const TRAINING_FORMAT: &str = "headstart-training-1";

/// What an agent trains on: one environment, a mixture drawn anew each episode (domain
/// randomisation), or named tasks in their shared spaces (a multitask network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Task {
    /// One environment.
    Env(EnvSpec),
    /// A mixture of variants, drawn anew each episode.
    Mixture(Mixture),
    /// Named tasks: environment `i` runs task `i mod T` (see [`crate::env::tasks`]).
    Tasks(Tasks),
    /// One of named tasks, in their shared spaces: every environment runs task `t` (a
    /// sequence's phase with task ids).
    One(Tasks, usize),
}

impl Task {
    /// The environment that stands for the task: the environment itself, or the mixture's
    /// first variant (what evaluation and cards name).
    pub fn nominal(&self) -> &EnvSpec {
        match self {
            Task::Env(spec) => spec,
            Task::Mixture(mix) => &mix.variants[0],
            Task::Tasks(tasks) => &tasks.tasks[0].1,
            Task::One(tasks, t) => &tasks.tasks[*t].1,
        }
    }

    /// One environment of the task, as an evaluation steps it: the environment (a mixture's
    /// first variant), or the first task in the tasks' shared spaces.
    pub fn make(&self, registry: &Registry) -> Result<Box<dyn crate::env::Env>, EnvError> {
        match self {
            Task::Env(_) | Task::Mixture(_) => registry.make(self.nominal()),
            Task::Tasks(tasks) => Ok(Box::new(crate::env::tasks::TaskEnv::new(registry, tasks, 0)?)),
            Task::One(tasks, t) => Ok(Box::new(crate::env::tasks::TaskEnv::new(registry, tasks, *t)?)),
        }
    }

    /// `n` environments of the task, stepped together.
    pub fn make_vec(&self, registry: &Registry, n: usize) -> Result<VecEnv, EnvError> {
        match self {
            Task::Env(spec) => registry.make_vec(spec, n),
            Task::Mixture(mix) => registry.make_vec_mixture(mix, n),
            Task::Tasks(tasks) => registry.make_vec_tasks(tasks, n),
            Task::One(tasks, t) => {
                let envs: Result<Vec<Box<dyn crate::env::Env>>, EnvError> = (0..n)
                    .map(|_| Ok(Box::new(crate::env::tasks::TaskEnv::new(registry, tasks, *t)?) as Box<dyn crate::env::Env>))
                    .collect();
                VecEnv::new(envs?)
            }
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Task::Env(spec) => spec.fmt(f),
            Task::Mixture(mix) => mix.fmt(f),
            Task::Tasks(tasks) => tasks.fmt(f),
            Task::One(tasks, t) => write!(f, "task {} of {tasks}", tasks.tasks[*t].0),
        }
    }
}

/// One finished training episode: the environment steps taken when it ended, its return and
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Environment steps taken when the episode ended.
    pub step: u64,
    /// Its return.
    pub ret: f64,
    /// Its length.
    pub len: usize,
}

/// A `curve.csv` line that is not `step,return,length`.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: expected {expected}")]
pub struct CurveError {
    /// The line, counting from 1.
    pub line: usize,
    /// The fields the line should hold.
    pub expected: &'static str,
}

/// The episodes of a training run, in the order they ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The episodes.
    pub episodes: Vec<EpisodeRecord>,
    /// A reward-free agent's mean intrinsic reward per rollout: (step, reward), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intrinsic: Vec<(u64, f64)>,
}

impl Curve {
    /// The mean return of the last `n` episodes (fewer when fewer ended).
    pub fn recent_mean(&self, n: usize) -> Option<f64> {
        let tail = &self.episodes[self.episodes.len().saturating_sub(n)..];
        (!tail.is_empty()).then(|| tail.iter().map(|e| e.ret).sum::<f64>() / tail.len() as f64)
    }

    /// The curve in `bins` equal windows of `[0, total]` steps: each window's end, the mean
    /// return of the episodes that ended in it, and how many did.
    pub fn binned(&self, total: u64, bins: usize) -> Vec<(u64, Option<f64>, usize)> {
        let width = total.div_ceil(bins.max(1) as u64).max(1);
        (0..bins as u64)
            .map(|b| {
                let (lo, hi) = (b * width, (b + 1) * width);
                let rets: Vec<f64> =
                    self.episodes.iter().filter(|e| e.step > lo && e.step <= hi).map(|e| e.ret).collect();
                let mean = (!rets.is_empty()).then(|| rets.iter().sum::<f64>() / rets.len() as f64);
                (hi.min(total), mean, rets.len())
            })
            .collect()
    }

    /// Reads what [`Curve::to_csv`] wrote.
    pub fn from_csv(text: &str) -> Result<Curve, CurveError> {
        let mut episodes = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let parsed = match fields.as_slice() {
                [step, ret, len] => step.parse().ok().zip(ret.parse().ok()).zip(len.parse().ok()),
                _ => None,
            };
            let ((step, ret), len) = parsed.ok_or(CurveError { line: i + 1, expected: "step,return,length" })?;
            episodes.push(EpisodeRecord { step, ret, len });
        }
        Ok(Curve { episodes, intrinsic: Vec::new() })
    }

    /// The intrinsic rewards as CSV (`step,intrinsic`).
    pub fn intrinsic_csv(&self) -> String {
        let mut out = String::from("step,intrinsic\n");
        for (step, reward) in &self.intrinsic {
            out.push_str(&format!("{step},{reward}\n"));
        }
        out
    }

    /// Reads what [`Curve::intrinsic_csv`] wrote.
    pub fn intrinsic_from_csv(text: &str) -> Result<Vec<(u64, f64)>, CurveError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let parsed = line.split_once(',').and_then(|(s, r)| s.parse().ok().zip(r.parse().ok()));
            out.push(parsed.ok_or(CurveError { line: i + 1, expected: "step,intrinsic" })?);
        }
        Ok(out)
    }

    /// The curve as CSV (`step,return,length`).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("step,return,length\n");
        for e in &self.episodes {
            out.push_str(&format!("{},{},{}\n", e.step, e.ret, e.len));
        }
        out
    }
}

/// Trains `agent` on environments of `task` until `total` steps, recording the curve;
/// `on_event` sees every event and may stop the run (a [`Session`] begun and ended in one call).
pub fn train(
    registry: &Registry,
    task: &Task,
    agent: &mut dyn Agent,
    total: u64,
    curve: &mut Curve,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Outcome, AgentError> {
    train_logged(registry, task, agent, total, curve, None, on_event).map(|(outcome, _)| outcome)
}

/// [`train`], its environments first brought to the state `resume` logged (an agent restored
/// with its training state continues exactly where it stopped), returning the environments'
/// action log for [`save_training`].
pub fn train_logged(
    registry: &Registry,
    task: &Task,
    agent: &mut dyn Agent,
    total: u64,
    curve: &mut Curve,
    resume: Option<&ActionLog>,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<(Outcome, ActionLog), AgentError> {
    let mut session = Session::new(registry, task, agent, total)?;
    if let Some(log) = resume {
        session.resume(log, Curve::default())?;
    }
    session.curve = std::mem::take(curve);
    let outcome = session.train(on_event);
    *curve = std::mem::take(&mut session.curve);
    Ok((outcome?, session.log().clone()))
}

/// An action log as tensors (`log.seed`, `log.steps`, `log.discrete`, `log.continuous`).
pub fn log_tensors(log: &ActionLog) -> Vec<(String, Tensor)> {
    vec![
        ("log.seed".into(), Tensor::from_slice(&log.seed.map_or(Vec::new(), |s| vec![s as i64]))),
        ("log.steps".into(), Tensor::from_slice(&[log.steps as i64])),
        ("log.discrete".into(), Tensor::from_slice(&log.discrete)),
        ("log.continuous".into(), Tensor::from_slice(&log.continuous)),
    ]
}

/// What is wrong with a tensor of a file of training state (the caller names the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TensorError(String);

/// A vector of `kind` named `name` in `file`, or what is wrong with it.
pub fn vector(file: &TensorFile, name: &str, kind: tch::Kind) -> Result<Tensor, TensorError> {
    let t = file.get(name).ok_or_else(|| TensorError(format!("tensor `{name}` is missing")))?;
    if t.dim() != 1 || t.kind() != kind {
        let (size, found) = (t.size(), t.kind());
        return Err(TensorError(format!("tensor `{name}` is {size:?} of {found:?}, not a vector of {kind:?}")));
    }
    Ok(t)
}

/// The integers of the vector `name` in `file`.
pub fn i64s(file: &TensorFile, name: &str) -> Result<Vec<i64>, TensorError> {
    let t = vector(file, name, tch::Kind::Int64)?;
    Ok((0..t.numel() as i64).map(|i| t.int64_value(&[i])).collect())
}

/// The action log that [`log_tensors`] wrote into `file`, or what is wrong with it.
pub fn log_from(file: &TensorFile) -> Result<ActionLog, TensorError> {
    let continuous = vector(file, "log.continuous", tch::Kind::Float)?;
    Ok(ActionLog {
        seed: i64s(file, "log.seed")?.first().map(|&s| s as u64),
        steps: i64s(file, "log.steps")?.first().map_or(0, |&s| s as u64),
        discrete: i64s(file, "log.discrete")?,
        continuous: Vec::<f32>::try_from(&continuous).map_err(|e| TensorError(e.to_string()))?,
    })
}

/// Writes [`TRAINING_FILE`] into the checkpoint folder `dir`: `agent`'s training state and the
/// environments' action `log`.
pub fn save_training(agent: &dyn Agent, log: &ActionLog, dir: &Path) -> Result<(), CheckpointError> {
    let mut tensors = agent.training_state();
    tensors.extend(log_tensors(log));
    let metadata = HashMap::from([("training".to_string(), TRAINING_FORMAT.to_string())]);
    checkpoint::write_tensors(&dir.join(TRAINING_FILE), &tensors, metadata)
}

/// Restores `agent` (loaded from the checkpoint in `dir`) to the training state of
/// [`TRAINING_FILE`] and returns the action log to replay; `None` when the folder has none (a
/// checkpoint from elsewhere: training continues from its weights, with fresh environments).
pub fn load_training(agent: &mut dyn Agent, dir: &Path) -> Result<Option<ActionLog>, CheckpointError> {
    let path = dir.join(TRAINING_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let damaged = |message: String| CheckpointError::File { path: path.clone(), message };
    let file = checkpoint::read_tensors(&path)?;
    if file.metadata.get("training").map(String::as_str) != Some(TRAINING_FORMAT) {
        return Err(damaged(format!("not a training state (metadata `training` is not {TRAINING_FORMAT:?})")));
    }
    agent.restore_training(&mut |name| file.get(name)).map_err(|e| damaged(e.to_string()))?;
    log_from(&file).map(Some).map_err(|e| damaged(e.to_string()))
}

/// Saves a training run into `out`: the checkpoint (its card naming `task`, the spaces, the
/// evaluation and `produced_by`) and the learning curve as `curve.csv`.
pub fn save_run(
    agent: &dyn Agent,
    task: &Task,
    spaces: (&Space, &Space),
    eval: Option<EvalStats>,
    curve: &Curve,
    produced_by: String,
    out: &Path,
) -> Result<Card, CheckpointError> {
    let (mixture, tasks) = match task {
        Task::Mixture(mix) => (Some(mix), None),
        Task::Tasks(tasks) | Task::One(tasks, _) => (None, Some(tasks)),
        Task::Env(_) => (None, None),
    };
    let info = CardInfo {
        env: task.nominal(),
        mixture,
        tasks,
        observation_space: spaces.0,
        action_space: spaces.1,
        eval,
        produced_by,
        origin: None,
    };
    let card = checkpoint::save(agent, info, out)?;
    // A training state left by an earlier run in this folder would not match these weights.
    let _ = std::fs::remove_file(out.join(TRAINING_FILE));
    let path = out.join("curve.csv");
    crate::util::write_atomic(&path, curve.to_csv())
        .map_err(|e| CheckpointError::File { path, message: e.error.to_string() })?;
    let path = out.join(INTRINSIC_FILE);
    match curve.intrinsic.is_empty() {
        true => {
            let _ = std::fs::remove_file(&path);
        }
        false => crate::util::write_atomic(&path, curve.intrinsic_csv())
            .map_err(|e| CheckpointError::File { path, message: e.error.to_string() })?,
    }
    Ok(card)
}
