//! Advantage Actor-Critic (Mnih et al. 2016, synchronous) as Stable-Baselines3 implements it:
//! rollouts of `n_steps` per environment, advantages by GAE (λ = 1: n-step returns), one gradient
//! step per rollout on `-mean(A log π) + vf_coef · MSE(returns, V) - ent_coef · entropy`, and
//! RMSprop (α = 0.99, ε = `rms_prop_eps`).
//!
//! That loss is PPO's on its first epoch: on a rollout's single pass the probability ratio is 1
//! (the policy has not moved), where the clipped surrogate's gradient is `-A ∇log π`, the same.
//! So an A2C agent is a [`Ppo`] that makes one unclipped pass over the whole rollout per update,
//! with RMSprop: the same rollouts, GAE, networks, engine, hand-written gradient, gSDE,
//! normalisers, checkpoints and transfer strategies.

use serde::{Deserialize, Serialize};

use super::nn::MlpConfig;
use super::{AgentError, Ppo, PpoConfig, Schedule, check};
use crate::env::Space;

/// A2C's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cConfig {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Steps per environment per rollout (and per update).
    pub n_steps: usize,
    /// Discount factor.
    pub gamma: f64,
    /// GAE's λ (1: plain n-step returns).
    pub gae_lambda: f64,
    /// The learning rate.
    pub learning_rate: Schedule,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value loss coefficient.
    pub vf_coef: f64,
    /// Gradient clipping (global norm).
    pub max_grad_norm: f64,
    /// RMSprop (SB3's default); `false` uses Adam.
    pub use_rms_prop: bool,
    /// RMSprop's ε (without RMSprop, Adam keeps SB3's 1e-5 for actor-critic policies).
    pub rms_prop_eps: f64,
    /// Normalise the advantages of each rollout.
    pub normalize_advantage: bool,
    /// Normalise observations by running statistics (the RL Zoo's `normalize: true`).
    pub normalize_obs: bool,
    /// Scale rewards by the running deviation of the discounted return.
    pub normalize_reward: bool,
    /// Initial log standard deviation of the Gaussian policy (Box actions).
    pub log_std_init: f64,
    /// Generalised state-dependent exploration (Box actions), as PPO's.
    pub use_sde: bool,
    /// Steps between redraws of the gSDE matrices; `-1` draws once per rollout.
    pub sde_sample_freq: i64,
    /// Actor and critic networks (each its own trunk, unless `share_trunk`).
    pub net: MlpConfig,
    /// One trunk that the actor's and the critic's heads both read, as PPO's `share_trunk`
    /// [default: false].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub share_trunk: bool,
    /// The critic's hidden widths where they differ from the actor's [default: the actor's].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critic_hidden: Option<Vec<usize>>,
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig {
            n_envs: 1,
            n_steps: 5,
            gamma: 0.99,
            gae_lambda: 1.0,
            learning_rate: Schedule::Constant(7e-4),
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            use_rms_prop: true,
            rms_prop_eps: 1e-5,
            normalize_advantage: false,
            normalize_obs: false,
            normalize_reward: false,
            log_std_init: 0.0,
            use_sde: false,
            sde_sample_freq: -1,
            net: MlpConfig::default(),
            share_trunk: false,
            critic_hidden: None,
        }
    }
}

impl A2cConfig {
    /// Refuses what no A2C can run, naming the field.
    pub(super) fn validate(&self) -> Result<(), AgentError> {
        check("rms_prop_eps", self.rms_prop_eps > 0.0 && self.rms_prop_eps.is_finite(), "must be positive")?;
        self.as_ppo().validate()
    }

    /// The PPO configuration that trains as this A2C does: one epoch over one minibatch that is
    /// the whole rollout, no clipping, no early stop.
    pub(super) fn as_ppo(&self) -> PpoConfig {
        PpoConfig {
            n_envs: self.n_envs,
            n_steps: self.n_steps,
            batch_size: self.n_steps.saturating_mul(self.n_envs),
            n_epochs: 1,
            gamma: self.gamma,
            gae_lambda: self.gae_lambda,
            learning_rate: self.learning_rate,
            clip_range: Schedule::Constant(f64::INFINITY),
            clip_range_vf: None,
            normalize_advantage: self.normalize_advantage,
            ent_coef: self.ent_coef,
            vf_coef: self.vf_coef,
            max_grad_norm: self.max_grad_norm,
            target_kl: None,
            normalize_obs: self.normalize_obs,
            normalize_reward: self.normalize_reward,
            log_std_init: self.log_std_init,
            use_sde: self.use_sde,
            sde_sample_freq: self.sde_sample_freq,
            net: self.net.clone(),
            share_trunk: self.share_trunk,
            critic_hidden: self.critic_hidden.clone(),
            objective: super::Objective::Reward,
            tasks: None,
        }
    }
}

impl Ppo {
    /// An A2C agent for these spaces: PPO's machinery with one unclipped pass over each rollout
    /// and RMSprop (see the module's docs).
    pub fn a2c(a2c: A2cConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        a2c.validate()?;
        Self::build(a2c.as_ppo(), Some(a2c), obs_space, action_space, seed)
    }
}
