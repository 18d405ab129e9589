//! The roof of `agent`: an agent's hyperparameters as one type (`AgentConfig`, RON, tagged by
//! algorithm) and the building of an agent of each algorithm from it.

use serde::{Deserialize, Serialize};

use super::{Agent, AgentError, Algo, Dqn, DqnConfig, Ppo, PpoConfig, Sac, SacConfig};
use crate::env::Space;
use crate::util::ron_options;

/// An agent's hyperparameters, tagged by algorithm: in RON `Ppo(n_steps: 32, ...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentConfig {
    /// PPO's hyperparameters.
    Ppo(PpoConfig),
    /// DQN's hyperparameters.
    Dqn(DqnConfig),
    /// SAC's hyperparameters.
    Sac(SacConfig),
}

impl AgentConfig {
    /// The algorithm's defaults (Stable-Baselines3's).
    pub fn default_for(algo: Algo) -> Self {
        match algo {
            Algo::Ppo => AgentConfig::Ppo(PpoConfig::default()),
            Algo::Dqn => AgentConfig::Dqn(DqnConfig::default()),
            Algo::Sac => AgentConfig::Sac(SacConfig::default()),
        }
    }

    /// The algorithm the config is for.
    pub fn algo(&self) -> Algo {
        match self {
            AgentConfig::Ppo(_) => Algo::Ppo,
            AgentConfig::Dqn(_) => Algo::Dqn,
            AgentConfig::Sac(_) => Algo::Sac,
        }
    }

    /// How many environments the agent steps together.
    pub fn num_envs(&self) -> usize {
        match self {
            AgentConfig::Ppo(c) => c.n_envs,
            AgentConfig::Dqn(c) => c.n_envs,
            AgentConfig::Sac(c) => c.n_envs,
        }
    }

    /// Parses a RON config, refusing unknown fields; newtype variants may be written unwrapped
    /// (`Ppo(n_steps: 32)`).
    pub fn from_ron(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron_options().from_str(text)
    }

    /// The config as pretty RON.
    pub fn to_ron(&self) -> String {
        crate::util::to_ron(self)
    }

    /// Builds the agent for these spaces.
    pub fn build(&self, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Box<dyn Agent>, AgentError> {
        Ok(match self {
            AgentConfig::Ppo(c) => Box::new(Ppo::new(c.clone(), obs_space, action_space, seed)?),
            AgentConfig::Dqn(c) => Box::new(Dqn::new(c.clone(), obs_space, action_space, seed)?),
            AgentConfig::Sac(c) => Box::new(Sac::new(c.clone(), obs_space, action_space, seed)?),
        })
    }
}
