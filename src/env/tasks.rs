//! Multitask training with named tasks (unlike a [`Mixture`](super::Mixture), whose variants
//! share spaces and are drawn blind): every task keeps its own observation and action spaces,
//! and each environment knows which task it is.
//!
//! A [`TaskEnv`] presents task `t` of a [`Tasks`] list in one space shared by all the tasks, so
//! that one vector of environments (and one network) runs them all:
//!
//! - the observation is every task's block, zero but for task `t`'s own observation, then the
//!   task's one-hot id: `[x_0 | x_1 | ... | x_{T-1} | e_t]`. A network's first layer on it is a
//!   separate input layer per task (the other blocks are zero, so their weights get no
//!   gradient from task `t`) plus a per-task bias (the one-hot column);
//! - with Discrete actions, the action space is `Discrete(A_0 + ... + A_{T-1})` and task `t`
//!   acts on its own slice `[offset_t, offset_t + A_t)`: a policy whose head is masked to that
//!   slice has a separate head per task. Box actions must be the same space for every task
//!   (one shared head).
//!
//! ```
//! use headstart::env::{Env, EnvSpec, Registry, tasks::Tasks};
//!
//! let tasks = Tasks::new(vec![
//!     ("cartpole".into(), EnvSpec::new("CartPole-v1")),
//!     ("acrobot".into(), EnvSpec::new("Acrobot-v1")),
//! ]);
//! let registry = Registry::builtin();
//! let layout = tasks.layout(&registry)?;
//! assert_eq!(layout.obs_dim(), 4 + 6 + 2);
//! let mut envs = registry.make_vec_tasks(&tasks, 4)?; // environments 0, 2 CartPole; 1, 3 Acrobot
//! envs.reset(Some(0))?;
//! # Ok::<(), headstart::env::EnvError>(())
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::registry::{EnvSpec, Registry};
use super::{Action, Env, EnvError, Info, Obs, Space, Step, VecEnv};

/// Named tasks, in order: environment `i` of a vector runs task `i mod T`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tasks {
    /// Each task's name (unique) and environment.
    pub tasks: Vec<(String, EnvSpec)>,
    /// A head per task (each task acts on its own slice of the actions), or one head shared
    /// by all, conditioned on the task's id (the tasks' action spaces must agree).
    #[serde(default)]
    pub heads: Heads,
}

/// The heads of a multitask policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Heads {
    /// One per task [default].
    #[default]
    PerTask,
    /// One for all, reading the task's id.
    Shared,
}

impl Tasks {
    /// The tasks, in order, with a head each.
    pub fn new(tasks: Vec<(String, EnvSpec)>) -> Self {
        Tasks { tasks, heads: Heads::PerTask }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.tasks.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The index of the task named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|(n, _)| n == name)
    }

    /// The tasks' spaces, checked: at least two tasks with unique names, Discrete actions for
    /// all, or one Box action space for all.
    pub fn layout(&self, registry: &Registry) -> Result<Layout, EnvError> {
        let invalid = |message: String| EnvError::InvalidParams { env: "tasks".into(), message };
        if self.tasks.len() < 2 {
            return Err(invalid(format!("multitask training needs at least two tasks, not {}", self.tasks.len())));
        }
        for (i, (name, _)) in self.tasks.iter().enumerate() {
            if self.tasks[..i].iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("two tasks are named {name:?}")));
            }
        }
        let mut obs = Vec::new();
        let mut actions = Vec::new();
        let mut box_action: Option<Space> = None;
        let mut shared: Option<Space> = None;
        for (name, spec) in &self.tasks {
            let env = registry.make(spec)?;
            let Space::Box { low, high, .. } = env.observation_space().clone() else {
                return Err(invalid(format!("task {name} ({spec}): observations must be a Box")));
            };
            obs.push((low, high));
            if self.heads == Heads::Shared {
                match &shared {
                    Some(space) if space != env.action_space() => {
                        return Err(invalid(format!(
                            "heads: Shared needs one action space for every task; task {name} ({spec}) acts in {}, the first task in {space}",
                            env.action_space()
                        )));
                    }
                    _ => shared = Some(env.action_space().clone()),
                }
            }
            match env.action_space() {
                Space::Discrete { n } if box_action.is_none() => actions.push(*n),
                space @ Space::Box { .. } if actions.is_empty() && box_action.as_ref().is_none_or(|b| b == space) => {
                    box_action = Some(space.clone())
                }
                space => {
                    return Err(invalid(format!(
                        "task {name} ({spec}) acts in {space}: the tasks need Discrete actions, or one Box action space for all"
                    )));
                }
            }
        }
        if let Some(space) = shared {
            // One head: every task acts in the one space, unsliced.
            (actions, box_action) = (Vec::new(), Some(space));
        }
        Ok(Layout { names: self.names(), obs, actions, box_action })
    }
}

impl fmt::Display for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tasks: Vec<String> = self.tasks.iter().map(|(n, s)| format!("{n}: {s}")).collect();
        write!(f, "tasks [{}]", tasks.join(", "))
    }
}

/// Where each task lives in the shared spaces.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    names: Vec<String>,
    /// Each task's observation bounds.
    obs: Vec<(Vec<f32>, Vec<f32>)>,
    /// Each task's number of actions (Discrete tasks with a head each); empty with one head.
    actions: Vec<usize>,
    /// The action space shared by every task, with one head (or Box actions).
    box_action: Option<Space>,
}

impl Layout {
    /// How many tasks.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The tasks' names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The width of each task's own observation, in order.
    pub fn obs_widths(&self) -> Vec<usize> {
        self.obs.iter().map(|(l, _)| l.len()).collect()
    }

    /// The shared observation's width: every task's block, then the one-hot id.
    pub fn obs_dim(&self) -> usize {
        self.obs.iter().map(|(l, _)| l.len()).sum::<usize>() + self.len()
    }

    /// Where task `t`'s block starts and how wide it is.
    pub fn obs_block(&self, t: usize) -> (usize, usize) {
        (self.obs[..t].iter().map(|(l, _)| l.len()).sum(), self.obs[t].0.len())
    }

    /// Each task's slice of a Discrete action space (start, count); empty with one head.
    pub fn action_slices(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.actions
            .iter()
            .map(|&n| {
                start += n;
                (start - n, n)
            })
            .collect()
    }

    /// The shared observation space: each block's bounds widened to hold 0, the id in [0, 1].
    pub fn observation_space(&self) -> Space {
        let (mut low, mut high) = (Vec::new(), Vec::new());
        for (l, h) in &self.obs {
            low.extend(l.iter().map(|&v| v.min(0.0)));
            high.extend(h.iter().map(|&v| v.max(0.0)));
        }
        low.extend(std::iter::repeat_n(0.0, self.len()));
        high.extend(std::iter::repeat_n(1.0, self.len()));
        Space::bounded(low, high)
    }

    /// The shared action space.
    pub fn action_space(&self) -> Space {
        match &self.box_action {
            Some(space) => space.clone(),
            None => Space::Discrete { n: self.actions.iter().sum() },
        }
    }
}

/// Task `t` of a [`Tasks`] list in the tasks' shared spaces (see the module's docs).
pub struct TaskEnv {
    inner: Box<dyn Env>,
    task: usize,
    layout: Layout,
    observation_space: Space,
    action_space: Space,
}

impl TaskEnv {
    /// Task `t` of `tasks`.
    pub fn new(registry: &Registry, tasks: &Tasks, t: usize) -> Result<Self, EnvError> {
        let layout = tasks.layout(registry)?;
        let inner = registry.make(&tasks.tasks[t].1)?;
        let (observation_space, action_space) = (layout.observation_space(), layout.action_space());
        Ok(TaskEnv { inner, task: t, layout, observation_space, action_space })
    }

    fn place(&self, own: &[f32]) -> Obs {
        let mut obs: Obs = SmallVec::from_elem(0.0, self.layout.obs_dim());
        let (start, width) = self.layout.obs_block(self.task);
        obs[start..start + width].copy_from_slice(own);
        let id = self.layout.obs_dim() - self.layout.len() + self.task;
        obs[id] = 1.0;
        obs
    }
}

impl Env for TaskEnv {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let (obs, info) = self.inner.reset(seed)?;
        Ok((self.place(&obs), info))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let own = match (action, self.layout.action_slices().get(self.task)) {
            (Action::Discrete(a), Some(&(start, n))) => {
                if !(start..start + n).contains(a) {
                    return Err(EnvError::InvalidAction {
                        action: a.to_string(),
                        space: self.action_space.to_string(),
                        reason: format!(
                            "task {} ({}) acts on actions {start}..{}",
                            self.layout.names[self.task],
                            self.task,
                            start + n - 1
                        ),
                    });
                }
                Action::Discrete(a - start)
            }
            _ => action.clone(),
        };
        let step = self.inner.step(&own)?;
        Ok(Step { obs: self.place(&step.obs), ..step })
    }
}

impl Registry {
    /// `n` environments of `tasks` stepped together: environment `i` runs task `i mod T` (an
    /// equal share of the steps for each task when `n` is a multiple of `T`).
    pub fn make_vec_tasks(&self, tasks: &Tasks, n: usize) -> Result<VecEnv, EnvError> {
        let envs: Result<Vec<Box<dyn Env>>, EnvError> =
            (0..n).map(|i| Ok(Box::new(TaskEnv::new(self, tasks, i % tasks.len())?) as Box<dyn Env>)).collect();
        VecEnv::new(envs?)
    }
}
