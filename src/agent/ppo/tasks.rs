//! PPO as a multitask network over the shared spaces of [`crate::env::Tasks`] (see
//! `env/tasks.rs`): each row's task is read from the one-hot id that ends its observation
//! (which the observation normaliser leaves as it is, as it leaves the other tasks' blocks at
//! zero, so that a task's rows reach only its own input layer; the running statistics of a block
//! count the other tasks' zero rows too, so its mean and variance are diluted by them, the same
//! at training and, carried by transfer, on the target); with a head per task, the logits outside
//! the row's slice of the actions are masked (`-1e9`: probability 0 in `f64`, so those outputs
//! get no gradient from the row); advantages are normalised within each task's rows of a
//! minibatch, so that one task's reward scale does not drown the others' (per-task advantage
//! normalisation, the simpler alternative to PopArt).

use serde::{Deserialize, Serialize};

use super::Ppo;
use crate::agent::error::{AgentError, check};

/// A multitask network's tasks, as its configuration (and card) records them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskNets {
    /// The tasks' names, in order (the order of the one-hot id).
    pub names: Vec<String>,
    /// The width of each task's own observation (its block of the shared observation).
    pub obs: Vec<usize>,
    /// With a head per task, each task's number of actions (its slice of the shared actions);
    /// empty with one head shared by every task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<usize>,
}

impl TaskNets {
    /// The networks of `layout`'s tasks.
    pub fn of(layout: &crate::env::tasks::Layout) -> Self {
        TaskNets {
            names: layout.names().to_vec(),
            obs: layout.obs_widths(),
            actions: layout.action_slices().iter().map(|&(_, n)| n).collect(),
        }
    }

    /// How many tasks.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of the task named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Where task `t`'s block starts in the shared observation, and its width.
    pub fn obs_block(&self, t: usize) -> (usize, usize) {
        (self.obs[..t].iter().sum(), self.obs[t])
    }

    /// The shared observation's width.
    pub fn obs_dim(&self) -> usize {
        self.obs.iter().sum::<usize>() + self.len()
    }

    /// Task `t`'s slice of the actions (start, count), with a head per task.
    pub fn action_slice(&self, t: usize) -> Option<(usize, usize)> {
        (!self.actions.is_empty()).then(|| (self.actions[..t].iter().sum(), self.actions[t]))
    }

    /// Refuses spaces that are not the tasks' shared ones (`obs` values per observation, `actions`
    /// policy outputs).
    pub(super) fn check_spaces(&self, obs: usize, actions: usize) -> Result<(), AgentError> {
        check("tasks", obs == self.obs_dim(), &format!("the tasks' shared observation has {} values, these spaces {obs}", self.obs_dim()))?;
        let sum: usize = self.actions.iter().sum();
        check(
            "tasks",
            self.actions.is_empty() || sum == actions,
            &format!("the tasks' heads have {sum} actions in all, these spaces {actions}"),
        )
    }

    pub(super) fn validate(&self, n_envs: usize) -> Result<(), AgentError> {
        check("tasks", self.len() >= 2, "a multitask network needs at least two tasks")?;
        check("tasks.obs", self.obs.len() == self.len(), "one observation width per task")?;
        check("tasks.actions", self.actions.is_empty() || self.actions.len() == self.len(), "one action count per task")?;
        check(
            "n_envs",
            n_envs.is_multiple_of(self.len()),
            "must be a multiple of the number of tasks (environment i runs task i mod T: equal shares)",
        )
    }
}

/// The logit of an action outside a row's slice: probability 0 in `f64`.
const MASKED: f32 = -1e9;

impl Ppo {
    /// Each row's task, from the one-hot id that ends it (rows of the networks' inputs).
    pub(super) fn row_tasks(&self, x: &[f32]) -> Option<Vec<usize>> {
        let tasks = self.cfg.tasks.as_ref()?;
        let (d, t) = (self.obs_dim, tasks.len());
        Some(x.chunks_exact(d).map(|row| super::super::distributions::argmax(&row[d - t..])).collect())
    }

    /// Sets the other tasks' blocks of normalised rows back to zero, so that a task's rows
    /// reach no other task's input layer.
    pub(super) fn zero_other_blocks(&self, obs: &mut [f32]) {
        let Some(tasks) = &self.cfg.tasks else { return };
        let d = tasks.obs_dim();
        for row in obs.chunks_exact_mut(d) {
            let t = super::super::distributions::argmax(&row[d - tasks.len()..]);
            for s in (0..tasks.len()).filter(|&s| s != t) {
                let (start, width) = tasks.obs_block(s);
                row[start..start + width].fill(0.0);
            }
        }
    }

    /// Masks the logits of rows `x` to their tasks' slices, with a head per task.
    pub(super) fn mask_logits(&self, x: &[f32], out: &mut [f32]) {
        let Some(tasks) = self.cfg.tasks.as_ref().filter(|t| !t.actions.is_empty()) else { return };
        let n = out.len() / (x.len() / self.obs_dim).max(1);
        for (row, t) in out.chunks_exact_mut(n).zip(self.row_tasks(x).unwrap_or_default()) {
            let (start, count) = tasks.action_slice(t).expect("a head per task");
            for (k, logit) in row.iter_mut().enumerate() {
                if !(start..start + count).contains(&k) {
                    *logit = MASKED;
                }
            }
        }
    }

    /// Normalises advantages within each task's rows (rows `obs` of the networks' inputs).
    pub(super) fn normalize_per_task(&self, obs: &[f32], advantages: &mut [f32]) {
        let tasks = self.row_tasks(obs).unwrap_or_default();
        let count = self.cfg.tasks.as_ref().map_or(0, TaskNets::len);
        for t in 0..count {
            let rows: Vec<usize> = (0..advantages.len()).filter(|&i| tasks[i] == t).collect();
            if rows.len() < 2 {
                continue;
            }
            let n = rows.len() as f64;
            let m = rows.iter().map(|&i| advantages[i] as f64).sum::<f64>() / n;
            let var = rows.iter().map(|&i| (advantages[i] as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
            let scale = 1.0 / (var.sqrt() + 1e-8);
            rows.iter().for_each(|&i| advantages[i] = ((advantages[i] as f64 - m) * scale) as f32);
        }
    }
}
