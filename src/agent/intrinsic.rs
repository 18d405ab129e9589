//! A reward-free agent's intrinsic reward: the machinery of its [`Objective`] behind the one
//! interface PPO's rollouts drive (rewards for a rollout's next observations, training on them,
//! the state a checkpoint keeps).

use rand::Rng;
use tch::Tensor;

use super::diayn::Diayn;
use super::error::AgentError;
use super::objective::Objective;
use super::rnd::Rnd;
use super::state::{StatePart, TrainingPart};

/// The intrinsic reward of a reward-free objective.
pub(crate) enum Intrinsic {
    /// Random network distillation.
    Rnd(Rnd),
    /// Skill discovery.
    Diayn(Diayn),
}

impl Intrinsic {
    /// The machinery of `objective` (`None` for the task's reward) for `env_dim` observations
    /// from `n_envs` environments, discounting by `gamma`, drawn from `seed`.
    pub(crate) fn new(objective: &Objective, env_dim: usize, n_envs: usize, gamma: f64, seed: u64) -> Option<Self> {
        match objective {
            Objective::Reward => None,
            Objective::Rnd(c) => Some(Intrinsic::Rnd(Rnd::new(c.clone(), env_dim, n_envs, gamma, seed))),
            Objective::Diayn(c) => Some(Intrinsic::Diayn(Diayn::new(c.clone(), env_dim, n_envs, seed))),
        }
    }

    /// Whether the return runs on through episode ends (RND unless episodic).
    pub(crate) fn continuing(&self) -> bool {
        match self {
            Intrinsic::Rnd(rnd) => !rnd.episodic(),
            Intrinsic::Diayn(_) => false,
        }
    }

    /// The skills, with DIAYN.
    pub(crate) fn skills(&self) -> Option<&Diayn> {
        match self {
            Intrinsic::Diayn(d) => Some(d),
            Intrinsic::Rnd(_) => None,
        }
    }

    /// The skills, to draw.
    pub(crate) fn skills_mut(&mut self) -> Option<&mut Diayn> {
        match self {
            Intrinsic::Diayn(d) => Some(d),
            Intrinsic::Rnd(_) => None,
        }
    }

    /// The rewards of a rollout's raw next observations (step-major rows) with the episode
    /// ends and skills of their transitions, and their mean before scaling.
    pub(crate) fn rewards(&mut self, raw: &[f32], ends: &[bool], skills: &[usize]) -> (Vec<f32>, f64) {
        match self {
            Intrinsic::Rnd(rnd) => rnd.rewards(raw, ends),
            Intrinsic::Diayn(d) => d.rewards(raw, skills),
        }
    }

    /// Trains the predictor or discriminator on a rollout.
    pub(crate) fn train(&mut self, raw: &[f32], skills: &[usize], epochs: usize, batch: usize, rng: &mut impl Rng) {
        match self {
            Intrinsic::Rnd(rnd) => rnd.train(raw, epochs, batch, rng),
            Intrinsic::Diayn(d) => d.train(raw, skills, epochs, batch, rng),
        }
    }
}

/// RND's tensors under `rnd.`, DIAYN's under `diayn.`.
impl StatePart for Intrinsic {
    fn save(&self, _: &str, out: &mut Vec<(String, Tensor)>) {
        match self {
            Intrinsic::Rnd(rnd) => rnd.save("rnd", out),
            Intrinsic::Diayn(d) => d.save("diayn", out),
        }
    }

    fn load(&mut self, _: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        match self {
            Intrinsic::Rnd(rnd) => rnd.load("rnd", get),
            Intrinsic::Diayn(d) => d.load("diayn", get),
        }
    }
}

/// RND's running intrinsic returns; DIAYN's skills in play.
impl TrainingPart for Option<Intrinsic> {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        match self {
            Some(Intrinsic::Rnd(rnd)) => rnd.save_training(name, out),
            Some(Intrinsic::Diayn(d)) => d.current.save_training(name, out),
            None => {}
        }
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        match self {
            Some(Intrinsic::Rnd(rnd)) => rnd.load_training(name, get),
            Some(Intrinsic::Diayn(d)) => d.current.load_training(name, get),
            None => Ok(()),
        }
    }
}
