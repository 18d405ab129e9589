//! Interference or positive sharing in a multitask source: after pretraining a multitask
//! network, each task is also learned alone with the same budget per task (the multitask run's
//! steps over its tasks), with the same hyperparameters, its share of the environments and
//! minibatch rows (as many gradient steps on as much of its data) and the same seed, and both are evaluated on the
//! task as the experiment evaluates (`interference.ron` beside the source checkpoint). Over the
//! sources' pretraining seeds the report tests, per task, the paired difference (multitask
//! minus alone) with a one-sample t test, Holm-corrected over the tasks: **positive sharing**
//! when significantly above zero, **interference** when below.

use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::agent::session::Session;
use crate::agent::{Agent, AgentConfig, Outcome, evaluate};
use crate::env::tasks::TaskEnv;
use crate::env::{Registry, Tasks};
use crate::util::{ron_options, to_ron, write_atomic};

use super::StudyError;
use super::experiment::Eval;
use super::stats::{holm, mean, one_sample_t};

/// The file beside a multitask source's checkpoint.
pub const FILE: &str = "interference.ron";

/// One pretraining seed's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// Environment steps of the single-task runs (the multitask run's over its tasks).
    pub steps_per_task: u64,
    /// Episodes per evaluation, and whether actions were greedy (the experiment's `eval` when
    /// the source was pretrained).
    pub episodes: usize,
    /// Greedy / mean actions.
    pub deterministic: bool,
    /// Per task: the multitask network's and the single-task run's evaluation.
    pub tasks: Vec<TaskScore>,
}

/// A task's two evaluations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// The task's name.
    pub task: String,
    /// The multitask network's mean return on the task.
    pub multitask: f64,
    /// The single-task run's.
    pub single: f64,
}

/// Scores `agent` (the multitask network trained on `tasks` for `steps` with `config` and
/// `seed`) on each task, and a single-task run of each task with the same budget per task;
/// writes them into the checkpoint folder `dir`. A single-task run steps `n_envs / T`
/// environments with minibatches of `batch_size / T` rows: the multitask run's share of each
/// rollout and minibatch for one task, so that it takes as many gradient steps on as much of
/// its task's data. `stop` interrupts it.
pub fn measure(
    registry: &Registry,
    tasks: &Tasks,
    agent: &dyn Agent,
    (config, steps, seed): (&AgentConfig, u64, u64),
    eval: &Eval,
    dir: &Path,
    stop: &AtomicBool,
) -> Result<Interference, StudyError> {
    let env_error = |e: crate::env::EnvError| StudyError::SourceEnv { message: e.to_string() };
    let agent_error = |error| StudyError::Pretrain { error };
    let steps_per_task = steps / tasks.len() as u64;
    let eval_seed = 1_000_000 + seed;
    let mut scores = Vec::new();
    for (t, (name, spec)) in tasks.tasks.iter().enumerate() {
        let mut shared = TaskEnv::new(registry, tasks, t).map_err(env_error)?;
        let multitask = evaluate(agent, &mut shared, eval.episodes, eval.deterministic, eval_seed).map_err(env_error)?;
        let mut env = registry.make(spec).map_err(env_error)?;
        let mut single = config.clone().single_task();
        if let AgentConfig::Ppo(c) = &mut single {
            (c.n_envs, c.batch_size) = ((c.n_envs / tasks.len()).max(1), (c.batch_size / tasks.len()).max(1));
        }
        let mut alone = single.build(env.observation_space(), env.action_space(), seed).map_err(agent_error)?;
        let task = crate::agent::train::Task::Env(spec.clone());
        let mut session = Session::new(registry, &task, alone.as_mut(), steps_per_task).map_err(agent_error)?;
        let outcome = session
            .train(&mut |_| match stop.load(Ordering::SeqCst) {
                true => std::ops::ControlFlow::Break(()),
                false => std::ops::ControlFlow::Continue(()),
            })
            .map_err(agent_error)?;
        if outcome == Outcome::Stopped {
            return Err(StudyError::PretrainInterrupted);
        }
        drop(session);
        let single = evaluate(alone.as_ref(), env.as_mut(), eval.episodes, eval.deterministic, eval_seed).map_err(env_error)?;
        scores.push(TaskScore { task: name.clone(), multitask: multitask.mean, single: single.mean });
    }
    let interference = Interference { steps_per_task, episodes: eval.episodes, deterministic: eval.deterministic, tasks: scores };
    write_atomic(&dir.join(FILE), to_ron(&interference))?;
    Ok(interference)
}

/// The scores of every source (checkpoint folders) that has them, in order.
pub fn read(sources: &[String]) -> Vec<Interference> {
    sources
        .iter()
        .filter_map(|s| std::fs::read_to_string(Path::new(s).join(FILE)).ok())
        .filter_map(|text| ron_options().from_str(&text).ok())
        .collect()
}

/// The report's section: per task, the mean of both over the sources, the paired difference
/// with its 95 % interval, and the verdict (Holm over the tasks).
pub fn section(runs: &[Interference]) -> String {
    let mut out = String::from("\n## The multitask source: interference or positive sharing\n\n");
    let Some(first) = runs.first() else { return String::new() };
    let _ = writeln!(
        out,
        "Each task learned alone with the same budget per task ({} steps; the same hyperparameters, seed and gradient steps), against the \
         multitask network on that task ({} {} episodes each), over {} pretraining seed(s); a paired t test of the difference, \
         Holm-corrected over the {} tasks.\n",
        first.steps_per_task,
        first.episodes,
        if first.deterministic { "deterministic" } else { "stochastic" },
        runs.len(),
        first.tasks.len()
    );
    let _ = writeln!(out, "| task | multitask | alone | difference [95 % t] | corrected p | verdict |\n|---|---|---|---|---|---|");
    let names: Vec<&str> = first.tasks.iter().map(|s| s.task.as_str()).collect();
    let diffs: Vec<Vec<f64>> = names
        .iter()
        .map(|name| {
            runs.iter()
                .filter_map(|r| r.tasks.iter().find(|s| s.task == *name).map(|s| s.multitask - s.single))
                .collect()
        })
        .collect();
    let tests: Vec<_> = diffs.iter().map(|d| one_sample_t(d)).collect();
    let corrected = holm(&tests.iter().map(|t| t.as_ref().map_or(1.0, |t| t.p)).collect::<Vec<_>>());
    for (i, name) in names.iter().enumerate() {
        let of = |f: fn(&TaskScore) -> f64| {
            mean(&runs.iter().filter_map(|r| r.tasks.iter().find(|s| s.task == *name).map(f)).collect::<Vec<_>>())
        };
        let (interval, verdict) = match &tests[i] {
            Some(t) => {
                let (lo, hi) = t.interval(0.95);
                let verdict = match corrected[i] < 0.05 {
                    true if t.difference > 0.0 => "**positive sharing**",
                    true => "**interference**",
                    false => "no difference detected",
                };
                (format!("{:+.1} [{lo:+.1}, {hi:+.1}]", t.difference), verdict)
            }
            None => (format!("{:+.1}", mean(&diffs[i])), "too few seeds (2 or more)"),
        };
        let p = tests[i].as_ref().map_or("-".to_string(), |_| format!("{:.3}", corrected[i]));
        let _ = writeln!(out, "| {name} | {:.1} | {:.1} | {interval} | {p} | {verdict} |", of(|s| s.multitask), of(|s| s.single));
    }
    out
}
