//! Several environments stepped together, with auto-reset in the same step: when an episode
//! ends, the environment is reset at once, the returned observation starts the next episode, and
//! the last observation of the finished one is handed back in `final_obs` (an agent bootstraps
//! from it on truncation). This is Gymnasium's `SAME_STEP` autoreset mode and Stable-Baselines3's
//! behaviour.
//!
//! Observations are kept in one contiguous `[num_envs * obs_dim]` buffer, so that an agent turns
//! a whole batch into a tensor with a single copy.

use super::registry::RegisteredEnv;
use super::{Action, Env, EnvError, Obs, Space};

/// A finished episode's return and length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    /// Which environment of the vector it ran in.
    pub env: usize,
    /// The undiscounted return: the sum of the episode's rewards.
    pub ret: f64,
    /// The number of steps the episode took.
    pub len: usize,
}

/// What one [`VecEnv::step`] returns; slices are indexed by environment.
#[derive(Debug)]
pub struct VecStep<'a> {
    /// The observations to act on next, `[num_envs * obs_dim]`, row-major.
    pub obs: &'a [f32],
    /// The reward of this step.
    pub rewards: &'a [f64],
    /// Whether the episode reached a terminal state of the MDP at this step (do not bootstrap).
    pub terminated: &'a [bool],
    /// Whether the episode was cut short at this step, usually by the time limit (bootstrap from
    /// `final_obs`).
    pub truncated: &'a [bool],
    /// For each environment whose episode ended at this step, that episode's last observation.
    pub final_obs: &'a [Option<Obs>],
    /// The episodes that ended at this step.
    pub episodes: &'a [Episode],
}

/// The actions a vector of environments was stepped with since its last reset, in order: what
/// brings fresh environments into the same state ([`VecEnv::replay`]), for a training run
/// resumed in another process. Environments are deterministic given their seed and actions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionLog {
    /// The seed of the reset that began it.
    pub seed: Option<u64>,
    /// Vector steps logged.
    pub steps: u64,
    /// Discrete actions, one per environment per step.
    pub discrete: Vec<i64>,
    /// Continuous actions, flattened, one row per environment per step.
    pub continuous: Vec<f32>,
}

/// A vector of environments with equal spaces.
pub struct VecEnv<E = RegisteredEnv> {
    log: Option<ActionLog>,
    envs: Vec<E>,
    obs_dim: usize,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    final_obs: Vec<Option<Obs>>,
    running_return: Vec<f64>,
    running_len: Vec<usize>,
    episodes: Vec<Episode>,
}

impl<E: Env> VecEnv<E> {
    /// Stacks environments whose observation and action spaces are all equal.
    pub fn new(envs: Vec<E>) -> Result<Self, EnvError> {
        let first = envs.first().ok_or_else(|| EnvError::VecEnv("no environments given".into()))?;
        for (i, env) in envs.iter().enumerate().skip(1) {
            if env.observation_space() != first.observation_space() || env.action_space() != first.action_space() {
                return Err(EnvError::VecEnv(format!(
                    "environment {i} has spaces {} / {}, environment 0 has {} / {}",
                    env.observation_space(),
                    env.action_space(),
                    first.observation_space(),
                    first.action_space()
                )));
            }
        }
        let n = envs.len();
        let obs_dim = first.observation_space().flat_dim();
        Ok(VecEnv {
            log: None,
            envs,
            obs_dim,
            obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: vec![None; n],
            running_return: vec![0.0; n],
            running_len: vec![0; n],
            episodes: Vec::with_capacity(n),
        })
    }

    /// The number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// The number of values in one flattened observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The observation space that every environment has.
    pub fn observation_space(&self) -> &Space {
        self.envs[0].observation_space()
    }

    /// The action space that every environment has.
    pub fn action_space(&self) -> &Space {
        self.envs[0].action_space()
    }

    /// The current observations, `[num_envs * obs_dim]`.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// The environments themselves.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    /// Logs the actions of every step from now on, each reset starting the log anew.
    pub fn start_log(&mut self) {
        self.log.get_or_insert_with(ActionLog::default);
    }

    /// The actions since the last reset, when logging.
    pub fn log(&self) -> Option<&ActionLog> {
        self.log.as_ref()
    }

    /// Resets with the log's seed and steps with its actions: the environments end as those that
    /// were logged ended. Every action is checked as a step checks it.
    pub fn replay(&mut self, log: &ActionLog) -> Result<(), EnvError> {
        let n = self.envs.len() as u64;
        let rows = log.steps * n;
        let width = match self.action_space() {
            Space::Discrete { .. } if log.discrete.len() as u64 == rows && log.continuous.is_empty() => 0,
            Space::Box { .. }
                if log.discrete.is_empty() && rows > 0 && (log.continuous.len() as u64).is_multiple_of(rows) =>
            {
                log.continuous.len() / rows as usize
            }
            _ if rows == 0 && log.discrete.is_empty() && log.continuous.is_empty() => 0,
            space => {
                return Err(EnvError::VecEnv(format!(
                    "an action log of {} steps with {} discrete and {} continuous values does not fit {n} \
                     environments with actions in {space}",
                    log.steps,
                    log.discrete.len(),
                    log.continuous.len()
                )));
            }
        };
        self.reset(log.seed)?;
        let n = n as usize;
        for k in 0..log.steps as usize {
            let actions: Vec<Action> = if width == 0 {
                let row = &log.discrete[k * n..(k + 1) * n];
                row.iter()
                    .map(|&a| {
                        usize::try_from(a).map(Action::Discrete).map_err(|_| {
                            EnvError::VecEnv(format!("the action log's step {k} holds the negative action {a}"))
                        })
                    })
                    .collect::<Result<_, _>>()?
            } else {
                log.continuous[k * n * width..(k + 1) * n * width].chunks(width).map(Action::continuous).collect()
            };
            self.step(&actions)?;
        }
        Ok(())
    }

    /// Resets every environment; with `Some(seed)`, environment `i` is seeded with `seed + i`.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32], EnvError> {
        if let Some(log) = &mut self.log {
            *log = ActionLog { seed, ..ActionLog::default() };
        }
        for i in 0..self.envs.len() {
            let (obs, _) = self.envs[i].reset(seed.map(|s| s.wrapping_add(i as u64))).map_err(|e| in_env(i, e))?;
            self.store_obs(i, &obs)?;
            self.running_return[i] = 0.0;
            self.running_len[i] = 0;
        }
        Ok(&self.obs)
    }

    /// Steps every environment with its action; environments whose episode ends are reset.
    pub fn step(&mut self, actions: &[Action]) -> Result<VecStep<'_>, EnvError> {
        if actions.len() != self.envs.len() {
            return Err(EnvError::VecEnv(format!(
                "{} actions given for {} environments",
                actions.len(),
                self.envs.len()
            )));
        }
        self.episodes.clear();
        if let Some(log) = &mut self.log {
            log.steps += 1;
            for action in actions {
                match action {
                    Action::Discrete(a) => log.discrete.push(*a as i64),
                    Action::Continuous(v) => log.continuous.extend_from_slice(v),
                }
            }
        }
        for (i, action) in actions.iter().enumerate() {
            let step = self.envs[i].step(action).map_err(|e| in_env(i, e))?;
            self.rewards[i] = step.reward;
            self.terminated[i] = step.terminated;
            self.truncated[i] = step.truncated;
            self.running_return[i] += step.reward;
            self.running_len[i] += 1;
            if step.done() {
                self.episodes.push(Episode { env: i, ret: self.running_return[i], len: self.running_len[i] });
                self.running_return[i] = 0.0;
                self.running_len[i] = 0;
                let (obs, _) = self.envs[i].reset(None).map_err(|e| in_env(i, e))?;
                self.store_obs(i, &obs)?;
                self.final_obs[i] = Some(step.obs);
            } else {
                self.store_obs(i, &step.obs)?;
                self.final_obs[i] = None;
            }
        }
        Ok(VecStep {
            obs: &self.obs,
            rewards: &self.rewards,
            terminated: &self.terminated,
            truncated: &self.truncated,
            final_obs: &self.final_obs,
            episodes: &self.episodes,
        })
    }

    fn store_obs(&mut self, i: usize, obs: &[f32]) -> Result<(), EnvError> {
        if obs.len() != self.obs_dim {
            return Err(in_env(
                i,
                EnvError::Custom(format!(
                    "returned an observation of {} values where its space has {}",
                    obs.len(),
                    self.obs_dim
                )),
            ));
        }
        self.obs[i * self.obs_dim..(i + 1) * self.obs_dim].copy_from_slice(obs);
        Ok(())
    }
}

fn in_env(index: usize, error: EnvError) -> EnvError {
    EnvError::InEnv { index, error: Box::new(error) }
}
