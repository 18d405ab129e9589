//! Wrappers that every environment made by the registry wears: [`TimeLimit`] (sets
//! `truncated`) inside [`EpisodeGuard`] (refuses steps out of order and invalid actions).

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
    Running,
    Ended,
}

/// Makes misuse an error instead of undefined behaviour: a step before the first reset, a step
/// after the episode ended, and an action the environment cannot act on (see
/// [`Space::check_action`]).
#[derive(Clone, Debug)]
pub struct EpisodeGuard<E> {
    env: E,
    phase: Phase,
}

impl<E: Env> EpisodeGuard<E> {
    /// Wraps `env`, which must then be reset before its first step.
    pub fn new(env: E) -> Self {
        EpisodeGuard { env, phase: Phase::NeverReset }
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

impl<E: Env> Env for EpisodeGuard<E> {
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.env.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Obs, Info), EnvError> {
        let out = self.env.reset(seed)?;
        self.phase = Phase::Running;
        Ok(out)
    }

    #[inline(always)]
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        match self.phase {
            Phase::Running => {}
            Phase::NeverReset => return Err(EnvError::NeedsReset { when: "before the first reset()" }),
            Phase::Ended => {
                return Err(EnvError::NeedsReset { when: "after the episode ended (terminated or truncated)" });
            }
        }
        if !self.env.action_space().accepts(action) {
            self.env.action_space().check_action(action)?;
        }
        let step = self.env.step(action)?;
        if step.done() {
            self.phase = Phase::Ended;
        }
        Ok(step)
    }
}
