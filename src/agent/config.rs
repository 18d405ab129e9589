//! The roof of `agent`: an agent's hyperparameters as one type (`AgentConfig`, RON, tagged by
//! algorithm) and the building of an agent of each algorithm from it.

use serde::{Deserialize, Serialize};

use super::nn::MlpConfig;
use super::objective::Objective;
use super::{A2cConfig, Agent, AgentError, Algo, Dqn, DqnConfig, Ppo, PpoConfig, Sac, SacConfig, Td3, Td3Config};
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
    /// A2C's hyperparameters.
    A2c(A2cConfig),
    /// TD3's hyperparameters.
    Td3(Td3Config),
}

impl AgentConfig {
    /// The algorithm's defaults (Stable-Baselines3's).
    pub fn default_for(algo: Algo) -> Self {
        match algo {
            Algo::Ppo => AgentConfig::Ppo(PpoConfig::default()),
            Algo::Dqn => AgentConfig::Dqn(DqnConfig::default()),
            Algo::Sac => AgentConfig::Sac(SacConfig::default()),
            Algo::A2c => AgentConfig::A2c(A2cConfig::default()),
            Algo::Td3 => AgentConfig::Td3(Td3Config::default()),
        }
    }

    /// The algorithm the config is for.
    pub fn algo(&self) -> Algo {
        match self {
            AgentConfig::Ppo(_) => Algo::Ppo,
            AgentConfig::Dqn(_) => Algo::Dqn,
            AgentConfig::Sac(_) => Algo::Sac,
            AgentConfig::A2c(_) => Algo::A2c,
            AgentConfig::Td3(_) => Algo::Td3,
        }
    }

    /// How many environments the agent steps together.
    pub fn num_envs(&self) -> usize {
        match self {
            AgentConfig::Ppo(c) => c.n_envs,
            AgentConfig::Dqn(c) => c.n_envs,
            AgentConfig::Sac(c) => c.n_envs,
            AgentConfig::A2c(c) => c.n_envs,
            AgentConfig::Td3(c) => c.n_envs,
        }
    }

    /// The network configuration every network of the agent is built from (its hidden layers,
    /// and the layers a transfer added).
    pub fn net(&self) -> &MlpConfig {
        match self {
            AgentConfig::Ppo(c) => &c.net,
            AgentConfig::Dqn(c) => &c.net,
            AgentConfig::Sac(c) => &c.net,
            AgentConfig::A2c(c) => &c.net,
            AgentConfig::Td3(c) => &c.net,
        }
    }

    /// Whether the actor and the critic share one trunk (PPO's and A2C's `share_trunk`).
    pub fn share_trunk(&self) -> bool {
        match self {
            AgentConfig::Ppo(c) => c.share_trunk,
            AgentConfig::A2c(c) => c.share_trunk,
            _ => false,
        }
    }

    /// What the agent maximises (only PPO trains on anything but the task's reward).
    pub fn objective(&self) -> &Objective {
        static REWARD: Objective = Objective::Reward;
        match self {
            AgentConfig::Ppo(c) => &c.objective,
            _ => &REWARD,
        }
    }

    /// The configuration with the objective `objective`; an error unless the algorithm is PPO
    /// or the objective is the task's reward.
    pub fn with_objective(mut self, objective: Objective) -> Result<Self, AgentError> {
        match &mut self {
            AgentConfig::Ppo(c) => c.objective = objective,
            _ if objective.is_reward() => {}
            other => {
                return Err(AgentError::Config {
                    field: "objective",
                    message: format!("{} trains on a reward-free objective only with PPO, not {}", objective.name(), other.algo()),
                });
            }
        }
        Ok(self)
    }

    /// The configuration of a multitask network over `tasks`; an error unless the algorithm is
    /// PPO.
    pub fn with_tasks(mut self, tasks: super::TaskNets) -> Result<Self, AgentError> {
        match &mut self {
            AgentConfig::Ppo(c) => c.tasks = Some(tasks),
            other => {
                return Err(AgentError::Config {
                    field: "tasks",
                    message: format!("a multitask network is trained with PPO only, not {}", other.algo()),
                });
            }
        }
        Ok(self)
    }

    /// The configuration of a single-task network (a multitask network's tasks dropped, as a
    /// target of transfer from it is built).
    pub fn single_task(mut self) -> Self {
        if let AgentConfig::Ppo(c) = &mut self {
            c.tasks = None;
        }
        self
    }

    /// The tasks of a multitask network.
    pub fn tasks(&self) -> Option<&super::TaskNets> {
        match self {
            AgentConfig::Ppo(c) => c.tasks.as_ref(),
            _ => None,
        }
    }

    /// The network configuration, to change.
    pub fn net_mut(&mut self) -> &mut MlpConfig {
        match self {
            AgentConfig::Ppo(c) => &mut c.net,
            AgentConfig::Dqn(c) => &mut c.net,
            AgentConfig::Sac(c) => &mut c.net,
            AgentConfig::A2c(c) => &mut c.net,
            AgentConfig::Td3(c) => &mut c.net,
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
            AgentConfig::A2c(c) => Box::new(Ppo::a2c(c.clone(), obs_space, action_space, seed)?),
            AgentConfig::Td3(c) => Box::new(Td3::new(c.clone(), obs_space, action_space, seed)?),
        })
    }
}
