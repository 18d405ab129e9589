//! What an agent learns from: the task's reward, or a reward-free objective (unsupervised
//! pretraining, the founding document's third kind of transfer). A reward-free agent never reads
//! the environment's reward: its advantages come from an intrinsic reward alone, and the
//! episodes' task returns are recorded only for the curve, as an observer would.
//!
//! - [`Objective::Rnd`]: random network distillation (Burda et al. 2018), see `rnd.rs`.
//! - [`Objective::Diayn`]: skill discovery, "diversity is all you need" (Eysenbach et al.
//!   2018), see `diayn.rs`.
//!
//! The objective is part of PPO's configuration (`Ppo(objective: Rnd(...))`, `train --objective
//! rnd`), so the checkpoint's card records it with its settings; an agent built for transfer
//! from such a source trains on the target's reward ([`Objective::Reward`]).

use serde::{Deserialize, Serialize};

use super::error::{AgentError, check};
use super::nn::{Activation, MlpConfig};

/// What an agent maximises.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// The environment's reward: ordinary training.
    #[default]
    Reward,
    /// Random network distillation: the error of a trained predictor of a fixed random
    /// network's embedding of the next observation. Reward-free.
    Rnd(RndConfig),
    /// DIAYN: a policy conditioned on a skill drawn per episode, rewarded by how well a
    /// discriminator tells the skill from the next observation. Reward-free.
    Diayn(DiaynConfig),
}

impl Objective {
    /// Whether this is the task's reward (the default, left out of written configurations).
    pub fn is_reward(&self) -> bool {
        matches!(self, Objective::Reward)
    }

    /// The objective's name as the command line writes it (`reward`, `rnd`).
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Reward => "reward",
            Objective::Rnd(_) => "rnd",
            Objective::Diayn(_) => "diayn",
        }
    }

    /// The objective the command line names, with its default settings.
    pub fn named(name: &str) -> Option<Objective> {
        match name {
            "reward" => Some(Objective::Reward),
            "rnd" => Some(Objective::Rnd(RndConfig::default())),
            "diayn" => Some(Objective::Diayn(DiaynConfig::default())),
            _ => None,
        }
    }

    /// Refuses settings out of their domains (errors name `objective.<field>`).
    pub(crate) fn validate(&self) -> Result<(), AgentError> {
        match self {
            Objective::Reward => Ok(()),
            Objective::Rnd(c) => c.validate(),
            Objective::Diayn(c) => c.validate(),
        }
    }

    /// The number of skills the policy is conditioned on (0 unless DIAYN): one-hot features
    /// appended to the observation.
    pub fn skills(&self) -> usize {
        match self {
            Objective::Diayn(c) => c.skills,
            _ => 0,
        }
    }
}

/// Random network distillation's settings; defaults suit vector observations of a few
/// dimensions (the paper's, for Atari, differ where said).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RndConfig {
    /// The hidden layers of the fixed target network and of the predictor (ReLU, orthogonal
    /// initialisation), each drawn independently.
    pub hidden: Vec<usize>,
    /// The width of the embedding both networks output.
    pub embedding: usize,
    /// The predictor's Adam learning rate (the paper: 1e-4 for Atari).
    pub learning_rate: f64,
    /// The share of each minibatch's rows the predictor trains on (the paper: 0.25 with 32 or
    /// more environments, to keep the predictor from learning too fast; 1.0 with few).
    pub update_proportion: f64,
    /// Whether the intrinsic return stops at episode ends. The paper's RND does not: the
    /// agent then seeks novelty across episodes, even where an episode's end leads to it.
    pub episodic: bool,
    /// Observations, normalised by their running statistics for the two networks, are clipped
    /// to `[-obs_clip, obs_clip]` (the paper: 5).
    pub obs_clip: f64,
}

impl Default for RndConfig {
    fn default() -> Self {
        RndConfig {
            hidden: vec![64, 64],
            embedding: 64,
            learning_rate: 1e-3,
            update_proportion: 1.0,
            episodic: false,
            obs_clip: 5.0,
        }
    }
}

impl RndConfig {
    fn validate(&self) -> Result<(), AgentError> {
        check("objective.hidden", self.hidden.iter().all(|&h| h > 0), "every hidden layer needs a positive size")?;
        check("objective.embedding", self.embedding > 0, "must be at least 1")?;
        check("objective.learning_rate", self.learning_rate > 0.0, "must be positive")?;
        check("objective.update_proportion", self.update_proportion > 0.0 && self.update_proportion <= 1.0, "must lie in (0, 1]")?;
        check("objective.obs_clip", self.obs_clip > 0.0, "must be positive")
    }

    /// The network both the target and the predictor are.
    pub(crate) fn net(&self) -> MlpConfig {
        MlpConfig { hidden: self.hidden.clone(), activation: Activation::Relu, ..MlpConfig::default() }
    }
}

/// DIAYN's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiaynConfig {
    /// How many skills (the paper: 50 for locomotion; a handful for classic control).
    pub skills: usize,
    /// The discriminator's hidden layers (ReLU).
    pub hidden: Vec<usize>,
    /// The discriminator's Adam learning rate.
    pub learning_rate: f64,
    /// The skill the policy follows when it acts outside training (evaluation, zero-shot):
    /// transfer chooses its own (the strategy's `skill`).
    pub skill: usize,
}

impl Default for DiaynConfig {
    fn default() -> Self {
        DiaynConfig { skills: 8, hidden: vec![64, 64], learning_rate: 1e-3, skill: 0 }
    }
}

impl DiaynConfig {
    fn validate(&self) -> Result<(), AgentError> {
        check("objective.skills", self.skills >= 2, "must be at least 2")?;
        check("objective.hidden", self.hidden.iter().all(|&h| h > 0), "every hidden layer needs a positive size")?;
        check("objective.learning_rate", self.learning_rate > 0.0, "must be positive")?;
        check("objective.skill", self.skill < self.skills, "must name one of the skills (0 .. skills - 1)")
    }

    /// The discriminator's network.
    pub(crate) fn net(&self) -> MlpConfig {
        MlpConfig { hidden: self.hidden.clone(), activation: Activation::Relu, ..MlpConfig::default() }
    }
}
