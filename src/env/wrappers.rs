//! Wrappers that every environment made by the registry wears: [`TimeLimit`] (sets
//! `truncated`) inside [`EpisodeGuard`] (refuses steps out of order and invalid actions, and holds
//! the environment to its side of the contract).

use super::{Action, Env, EnvError, Info, Obs, Space, Step};

/// Truncates episodes after `max_episode_steps` steps, as Gymnasium's `TimeLimit` does.
#[derive(Clone, Debug)]
pub struct TimeLimit<E> {
    env: E,
    max_episode_steps: usize,
    elapsed: usize,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env`, truncating each episode at step `max_episode_steps`.
    pub fn new(env: E, max_episode_steps: usize) -> Self {
        TimeLimit { env, max_episode_steps, elapsed: 0 }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.env.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        self.elapsed = 0;
        self.env.reset(seed)
    }

    #[inline(always)]
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        self.elapsed += 1;
        if self.elapsed >= self.max_episode_steps {
            step.truncated = true;
        }
        Ok(step)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    NeverReset,
    ResetFailed,
    Running,
    Ended,
}

/// Makes misuse an error instead of undefined behaviour: a step before the first reset, a step
/// after the episode ended, and an action the environment cannot act on (see
/// [`Space::check_action`]). It also holds the environment to its side of the contract: every
/// observation (at reset, at every step, the last of an episode) has its space's length and finite
/// values, and every reward is finite; a breach is an [`EnvError::Broken`] naming the environment,
/// the step and the values, so that no command mistakes it for the agent's divergence and no
/// wrong-length or NaN value reaches an agent or the statistics.
#[derive(Clone, Debug)]
pub struct EpisodeGuard<E> {
    env: E,
    phase: Phase,
    name: String,
    obs_dim: usize,
    /// Steps since the last reset.
    step: u64,
}

impl<E: Env> EpisodeGuard<E> {
    /// Wraps `env`, which must then be reset before its first step; errors call it "the
    /// environment".
    pub fn new(env: E) -> Self {
        Self::named(env, "the environment")
    }

    /// [`EpisodeGuard::new`], errors naming the environment `name` (the registry gives its id and
    /// parameters).
    pub fn named(env: E, name: &str) -> Self {
        let obs_dim = env.observation_space().flat_dim();
        EpisodeGuard { env, phase: Phase::NeverReset, name: name.to_string(), obs_dim, step: 0 }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// An error the environment raised itself, naming it (unless its message does already, as
    /// the Python bridge's do).
    fn own(&self, error: EnvError) -> EnvError {
        let id = self.name.split(['(', '[', '+']).next().unwrap_or(&self.name);
        match error {
            EnvError::Custom(message) if !message.starts_with(id) => {
                EnvError::Custom(format!("{}: {message}", self.name))
            }
            error => error,
        }
    }

    fn broken(&self, what: String) -> EnvError {
        let when = match self.step {
            0 => "at reset".to_string(),
            n => format!("at step {n} of the episode"),
        };
        EnvError::Broken { env: self.name.clone(), when, what }
    }

    fn check_obs(&self, obs: &[f32], ended: bool) -> Result<(), EnvError> {
        let which = if ended { "its last observation" } else { "an observation" };
        match obs_fault(obs, self.obs_dim) {
            Some(fault) => Err(self.broken(format!("returned {which} {fault}"))),
            None => Ok(()),
        }
    }
}

/// What is wrong with an observation an environment returned against its space's length `dim`, as
/// the end of a sentence ("of 3 values where its observation space holds 2", "with NaN at index
/// 1: [...]"); `None` when it has the length and every value is finite. The one rule that the
/// guard enforces in every command and that `check` reports.
pub(crate) fn obs_fault(obs: &[f32], dim: usize) -> Option<String> {
    if obs.len() != dim {
        return Some(format!("of {} values where its observation space holds {dim}", obs.len()));
    }
    let i = obs.iter().position(|v| !v.is_finite())?;
    Some(format!("with {} at index {i}: {}", obs[i], preview(obs)))
}

/// The first values of an observation, for an error message.
fn preview(obs: &[f32]) -> String {
    const SHOWN: usize = 8;
    let shown: Vec<String> = obs.iter().take(SHOWN).map(|v| v.to_string()).collect();
    let more = if obs.len() > SHOWN { format!(", ... ({} values)", obs.len()) } else { String::new() };
    format!("[{}{more}]", shown.join(", "))
}

impl<E: Env> Env for EpisodeGuard<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.env.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        // Until the reset succeeds and passes its checks, the episode cannot be stepped.
        self.phase = Phase::ResetFailed;
        self.step = 0;
        let out = self.env.reset(seed).map_err(|e| self.own(e))?;
        self.check_obs(&out.0, false)?;
        self.phase = Phase::Running;
        Ok(out)
    }

    #[inline(always)]
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        match self.phase {
            Phase::Running => {}
            Phase::NeverReset => return Err(EnvError::NeedsReset { when: "before the first reset()" }),
            Phase::ResetFailed => return Err(EnvError::NeedsReset { when: "after a reset() that failed" }),
            Phase::Ended => {
                return Err(EnvError::NeedsReset { when: "after the episode ended (terminated or truncated)" });
            }
        }
        if !self.env.action_space().accepts(action) {
            self.env.action_space().check_action(action)?;
        }
        let step = self.env.step(action).map_err(|e| self.own(e))?;
        self.step += 1;
        let broken = match self.check_obs(&step.obs, step.done()) {
            Err(e) => Some(e),
            Ok(()) if !step.reward.is_finite() => Some(self.broken(format!("returned the reward {}", step.reward))),
            Ok(()) => None,
        };
        if step.done() || broken.is_some() {
            self.phase = Phase::Ended;
        }
        match broken {
            Some(e) => Err(e),
            None => Ok(step),
        }
    }
}
