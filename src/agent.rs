//! Learning agents on libtorch: PPO, DQN, SAC, A2C and TD3, with networks whose parameters carry stable
//! names (see [`nn`]) and state that checkpoints hold whole.
//!
//! Every agent implements [`Agent`]: it trains on a [`VecEnv`] up to a step budget, acts on a
//! batch of observations, and exposes its state as named tensors (network weights first, then
//! target networks, optimiser moments and normaliser statistics), which is what a checkpoint
//! saves and what transfer reads.
//!
//! | algorithm | actions | parameter names |
//! |---|---|---|
//! | PPO | Discrete, Box | `actor.trunk.*`, `actor.head.*` (logits or mean), `actor.log_std` (Box), `critic.trunk.*`, `critic.head.*` |
//! | DQN | Discrete | `q.trunk.*`, `q.head.*`; target `q_target.*` |
//! | SAC | Box | `actor.trunk.*`, `actor.head.*` (mean), `actor.log_std.*` (a linear head; with gSDE the `[features, actions]` matrix `actor.log_std`), `critic.q0.*`, `critic.q1.*`; targets `critic_target.q0.*`, `critic_target.q1.*`; `log_ent_coef` |
//! | A2C | Discrete, Box | as PPO (it is PPO's machinery: see [`a2c`]) |
//! | TD3 | Box | `actor.trunk.*`, `actor.head.*` (the action before `tanh`), `critic.q0.*`, `critic.q1.*`; targets `actor_target.*`, `critic_target.q0.*`, `critic_target.q1.*` |
//!
//! Training state lives beside the weights under `optim.*` (Adam moments), `obs_rms.*` and
//! `ret_rms.*` (normalisers).
//!
//! Randomness: network initialisation draws from libtorch's generator (seeded under a lock, so
//! parallel runs do not interleave); everything else (actions, minibatches, replay samples,
//! exploration noise) from the agent's own ChaCha12 generator. With one libtorch thread a seed therefore
//! fixes the whole learning curve, bit for bit.
//!
//! The skeleton shared by the algorithms: [`distributions`] (sampling, log-probabilities,
//! entropies and KL divergences of every policy family), `off_policy` (the step / store /
//! report / train / checkpoint loop of DQN and SAC, each filling in its parts), `state` (one
//! list of an agent's state parts writes both [`Agent::tensors`] and [`Agent::restore`]) and
//! `advance_guidance` (scheduled guidance, right before each update). PPO is
//! [`ppo`] (configuration, agent, update loop), `ppo/rollout.rs` (collection, GAE, minibatches)
//! and `ppo/loss.rs` (the autograd loss, its hand-written gradient, distillation); SAC is [`sac`]
//! and `sac/actor.rs` (the squashed Gaussian actor).

pub mod a2c;
pub mod checkpoint;
mod config;
mod diayn;
pub mod distributions;
pub mod dqn;
pub mod engine;
mod error;
mod eval;
mod intrinsic;
pub mod nn;
pub mod normalize;
pub mod objective;
mod off_policy;
pub mod optim;
pub mod ppo;
pub mod presets;
pub mod replay;
mod rnd;
pub mod sac;
pub mod sb3;
pub mod schedule;
pub mod session;
mod state;
pub mod stats;
pub mod td3;
pub mod tensorboard;
mod tensors;
pub mod train;

use std::fmt;
use std::ops::ControlFlow;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::env::vector::Episode;
use crate::env::{Action, Space, VecEnv};
use optim::Optimizer;

pub use a2c::A2cConfig;
pub use config::AgentConfig;
pub use dqn::{Dqn, DqnConfig};
pub use error::AgentError;
pub(crate) use error::check;
pub use eval::{EvalStats, evaluate, evaluate_on};
pub use objective::{DiaynConfig, Objective, RndConfig};
pub use ppo::{Ppo, PpoConfig, TaskNets};
pub use presets::Preset;
pub use sac::{EntCoef, Sac, SacConfig};
pub use schedule::Schedule;
pub use td3::{Td3, Td3Config};
pub(crate) use tensors::{rows, snapshot, sorted_variables, to_vec, variable_names};

/// The agents' own random generator: ChaCha12, `StdRng`'s algorithm (the same stream for the
/// same seed), whose state can be read and set, so that training resumes bit for bit.
pub(crate) type AgentRng = rand_chacha::ChaCha12Rng;

/// The most rows a rollout or a minibatch may hold (a bound on memory, far above any preset).
pub(crate) const MAX_ROWS: usize = 10_000_000;

/// The algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algo {
    /// Proximal Policy Optimisation.
    Ppo,
    /// Deep Q-Networks.
    Dqn,
    /// Soft Actor-Critic.
    Sac,
    /// Advantage Actor-Critic (synchronous).
    A2c,
    /// Twin Delayed DDPG.
    Td3,
}

impl Algo {
    /// Every algorithm.
    pub const ALL: [Algo; 5] = [Algo::Ppo, Algo::Dqn, Algo::Sac, Algo::A2c, Algo::Td3];

    /// The lower-case name (`ppo`, as on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Ppo => "ppo",
            Algo::Dqn => "dqn",
            Algo::Sac => "sac",
            Algo::A2c => "a2c",
            Algo::Td3 => "td3",
        }
    }

    /// Which action spaces the algorithm handles, in words.
    pub fn supports(self) -> &'static str {
        match self {
            Algo::Ppo | Algo::A2c => "Discrete and Box action spaces",
            Algo::Dqn => "Discrete action spaces",
            Algo::Sac | Algo::Td3 => "Box action spaces",
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algo::Ppo => "PPO",
            Algo::Dqn => "DQN",
            Algo::Sac => "SAC",
            Algo::A2c => "A2C",
            Algo::Td3 => "TD3",
        })
    }
}

/// What training reports to its monitor (more kinds may come: match with a `_` arm).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An episode ended; `step` counts environment steps so far (all environments together).
    Episode {
        /// Environment steps so far.
        step: u64,
        /// The episode's return, length and environment.
        episode: &'a Episode,
    },
    /// Training advanced to `step`.
    Progress {
        /// Environment steps so far.
        step: u64,
    },
    /// A reward-free agent's intrinsic reward over the rollout that ended at `step`: the mean
    /// before scaling (RND: the predictor's squared error).
    Intrinsic {
        /// Environment steps so far.
        step: u64,
        /// The mean intrinsic reward.
        reward: f64,
    },
    /// An update ended at `step`: its losses, learning rate, gradient norms, ... under their
    /// TensorBoard tags ([`stats`]), each the mean over its gradient steps.
    Update {
        /// Environment steps so far.
        step: u64,
        /// The update's scalars.
        stats: &'a [(&'static str, f64)],
    },
    /// A point between updates where stopping loses nothing: stopping here and calling `learn`
    /// again gives the same run as not stopping (the harness evaluates at these points).
    Checkpoint {
        /// Environment steps so far.
        step: u64,
    },
}

/// Receives training events; returning `ControlFlow::Break` stops training at the next
/// consistent point (the agent's state is then safe to save).
pub type Monitor<'a> = dyn FnMut(Event<'_>) -> ControlFlow<()> + 'a;

/// How a call to [`Agent::learn`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Training reached the step budget.
    Finished,
    /// The monitor asked to stop.
    Stopped,
}

/// Kickstarting (Schmitt et al., 2018): the actor's loss gains `weight(step) * KL(π_teacher ‖ π)`
/// on the states it trains on, the weight falling linearly from `weight` to zero over
/// `decay_steps` environment steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distill {
    /// The distillation weight at step 0.
    pub weight: f64,
    /// Environment steps over which the weight falls to zero.
    pub decay_steps: u64,
}

impl Distill {
    /// The weight at environment step `step`.
    pub fn weight_at(&self, step: u64) -> f64 {
        if step >= self.decay_steps { 0.0 } else { self.weight * (1.0 - step as f64 / self.decay_steps as f64) }
    }
}

/// A learning agent.
pub trait Agent: Send {
    /// The agent's hyperparameters.
    fn config(&self) -> AgentConfig;

    /// The agent's algorithm.
    fn algo(&self) -> Algo {
        self.config().algo()
    }

    /// Environment steps trained so far.
    fn steps(&self) -> u64;

    /// The seed the agent was built with.
    fn seed(&self) -> u64;

    /// Trains on `envs` until `total` environment steps have been taken (counting those of
    /// earlier calls); schedules run from the start to `total`. The first call resets `envs`
    /// with the agent's seed.
    fn learn(&mut self, envs: &mut VecEnv, total: u64, monitor: &mut Monitor<'_>) -> Result<Outcome, AgentError>;

    /// Actions for a batch of raw observations (`[n * obs_dim]`): greedy / mean actions when
    /// `deterministic`, else sampled with `rng`.
    fn act(&self, obs: &[f32], deterministic: bool, rng: &mut StdRng) -> Vec<Action>;

    /// Replaces the normalisers' statistics (`obs_rms.*`, `ret_rms.*`; every one the agent has
    /// must be in `get`); nothing for an agent without normalisers. (The statistics among
    /// [`Agent::tensors`] are copies: writing into them changes nothing.)
    fn load_normalizers(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let _ = get;
        Ok(())
    }

    /// The networks' outputs for a batch of raw observations, by name, row after row (what
    /// comparisons with other implementations check): PPO `probs` (Discrete) or `mean` and `std`
    /// (Box, before clipping), and `value`; DQN `q`; SAC `action` (the deterministic action in
    /// `[-1, 1]`, before rescaling) and `q0`, `q1` (both critics' values of it).
    fn outputs(&self, obs: &[f32]) -> Vec<(&'static str, Vec<f32>)>;

    /// Every tensor of the agent's state, by name: the weights ([`Agent::weight_names`]) and the
    /// training state. The tensors alias the live ones.
    fn tensors(&self) -> Vec<(String, Tensor)>;

    /// The names of the network weights among [`Agent::tensors`] (what a policy is, and what
    /// transfer moves), named as in the table above; the target networks and training state are
    /// not among them.
    fn weight_names(&self) -> Vec<String>;

    /// Restores the state from tensors with the names and shapes of [`Agent::tensors`] (the
    /// caller has checked them) and the step count.
    fn restore(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>, steps: u64) -> Result<(), AgentError>;

    /// What training holds besides [`Agent::tensors`], as named tensors (`training.*`): the
    /// random generator's state, counters, the observations in hand, exploration matrices, running
    /// returns and the replay buffer as it lies in memory. An agent built alike, given the same
    /// guidance, [`Agent::restore`]d and then [`Agent::restore_training`]ed from both, on
    /// environments in the same state, trains on bit for bit: what a unit's preemption
    /// checkpoint holds.
    fn training_state(&self) -> Vec<(String, Tensor)>;

    /// Restores what [`Agent::training_state`] gave (after [`Agent::restore`]).
    fn restore_training(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError>;

    // What transfer needs besides the named tensors: where guidance goes, the replay buffer,
    // the target networks and the teacher.

    /// The optimisers of the weights, with the prefix of their state among [`Agent::tensors`]:
    /// where transfer sets per-parameter learning-rate scales, freezes and L2-SP anchors, and
    /// carries Adam's state.
    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)>;

    /// The replay buffer of an off-policy agent.
    fn replay(&self) -> Option<&replay::ReplayBuffer> {
        None
    }

    /// The replay buffer of an off-policy agent, to change (transfer carries transitions into it).
    fn replay_mut(&mut self) -> Option<&mut replay::ReplayBuffer> {
        None
    }

    /// Copies the online networks into the target networks (after transfer wrote new weights);
    /// nothing for agents without target networks.
    fn sync_targets(&mut self) {}

    /// Distils from a frozen copy of the current actor (taken now) while training, with the
    /// weight schedule of `distill`. Agents without an action distribution refuse.
    fn set_teacher(&mut self, distill: Distill) -> Result<(), AgentError>;
}

/// Reports a step's finished episodes and the progress to `monitor`; true when it asked to stop.
pub(crate) fn report(monitor: &mut Monitor<'_>, step: u64, episodes: &[Episode]) -> bool {
    let mut stop = false;
    for episode in episodes {
        stop |= monitor(Event::Episode { step, episode }).is_break();
    }
    stop | monitor(Event::Progress { step }).is_break()
}

/// An update's scalars as [`Event::Update`] carries them: what the agent recorded, and the share
/// of its weights that transfer froze (learning rate 0) once any scale was set.
pub(crate) fn update_stats<A: Agent + ?Sized>(agent: &mut A, mut stats: Vec<(&'static str, f64)>) -> Vec<(&'static str, f64)> {
    let counts: Vec<(Option<usize>, usize)> = agent.optimizers().iter().map(|(_, o)| (o.frozen(), o.weights())).collect();
    if counts.iter().any(|c| c.0.is_some()) {
        let frozen: usize = counts.iter().filter_map(|c| c.0).sum();
        let all: usize = counts.iter().map(|c| c.1).sum();
        stats.push(("transfer/frozen_fraction", frozen as f64 / all.max(1) as f64));
    }
    stats
}

/// Scheduled guidance takes effect: every optimiser of `agent` moves to environment step `step`
/// ([`Optimizer::advance`]: learning-rate scales that transfer scheduled, such as a freeze that ends).
/// Agents call it once right before each update.
pub(crate) fn advance_guidance<A: Agent + ?Sized>(agent: &mut A, step: u64) {
    for (_, opt) in agent.optimizers() {
        opt.advance(step);
    }
}

/// A `Box` action space's bounds and size, or the `Unsupported` error.
pub(crate) fn box_bounds(algo: Algo, space: &Space) -> Result<(Vec<f32>, Vec<f32>), AgentError> {
    match space {
        Space::Box { low, high, .. } if low.iter().chain(high).all(|v| v.is_finite()) => {
            Ok((low.clone(), high.clone()))
        }
        _ => Err(AgentError::Unsupported(format!(
            "{algo} supports {}, with finite bounds; this action space is {space}",
            algo.supports()
        ))),
    }
}

/// The size of a flat observation space, or the `Unsupported` error.
pub(crate) fn obs_dim(algo: Algo, space: &Space) -> Result<usize, AgentError> {
    match space {
        Space::Box { .. } | Space::Dict { .. } => Ok(space.flat_dim()),
        Space::Discrete { .. } => Err(AgentError::Unsupported(format!(
            "{algo} needs Box observations (a vector of numbers); this observation space is {space}"
        ))),
    }
}

/// Refuses a vector of environments of the wrong size or with other spaces than the agent's.
pub(crate) fn check_envs(envs: &VecEnv, n_envs: usize, obs_dim: usize, action_space: &Space) -> Result<(), AgentError> {
    check(
        "n_envs",
        envs.num_envs() == n_envs,
        &format!("the agent steps {n_envs} environments, {} were given", envs.num_envs()),
    )?;
    if envs.obs_dim() != obs_dim || envs.action_space() != action_space {
        return Err(AgentError::Unsupported(format!(
            "the agent was built for observations of {obs_dim} values and actions in {action_space}; \
             these environments have {} and {}",
            envs.obs_dim(),
            envs.action_space()
        )));
    }
    Ok(())
}
