//! PPO's hyperparameters ([`PpoConfig`]) and their checks.

use serde::{Deserialize, Serialize};

use super::super::MAX_ROWS;
use super::super::nn::MlpConfig;
use super::super::objective::Objective;
use super::super::{AgentError, Schedule, check};
use super::TaskNets;

/// PPO's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Steps per environment per rollout.
    pub n_steps: usize,
    /// Rows per minibatch.
    pub batch_size: usize,
    /// Passes over each rollout.
    pub n_epochs: usize,
    /// Discount factor.
    pub gamma: f64,
    /// GAE's λ.
    pub gae_lambda: f64,
    /// Adam's learning rate.
    pub learning_rate: Schedule,
    /// The surrogate's clip range ε.
    pub clip_range: Schedule,
    /// Clips the value prediction's change around the rollout's value; `None` does not clip.
    pub clip_range_vf: Option<f64>,
    /// Normalise advantages per minibatch.
    pub normalize_advantage: bool,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value loss coefficient.
    pub vf_coef: f64,
    /// Gradient clipping (global norm).
    pub max_grad_norm: f64,
    /// Stops an update's epochs early when the approximate KL divergence exceeds 1.5 times this.
    pub target_kl: Option<f64>,
    /// Normalise observations by running statistics (the RL Zoo's `normalize: true`).
    pub normalize_obs: bool,
    /// Scale rewards by the running deviation of the discounted return.
    pub normalize_reward: bool,
    /// Initial log standard deviation of the Gaussian policy (Box actions).
    pub log_std_init: f64,
    /// Generalised state-dependent exploration (Box actions): the noise is `features(s) · W`
    /// with `W ~ N(0, σ²)` redrawn every `sde_sample_freq` steps (`-1`: once per rollout).
    pub use_sde: bool,
    /// Steps between redraws of the gSDE matrices; `-1` draws once per rollout.
    pub sde_sample_freq: i64,
    /// Actor and critic networks (each its own trunk, unless `share_trunk`).
    pub net: MlpConfig,
    /// One trunk (the encoder and `net.hidden`) that the actor's and the critic's heads both
    /// read, trained by both losses: Stable-Baselines3's `share_features_extractor` (its default
    /// for `CnnPolicy`, whose `NatureCNN` ends in its linear layer) and the usual Atari network
    /// (Mnih et al. 2016's A3C, CleanRL's `ppo_atari`). Its parameters are `shared.encoder.*` and
    /// `shared.trunk.*`; the heads `actor.head`, `critic.head` [default: false].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub share_trunk: bool,
    /// The critic's hidden widths where they differ from the actor's `net.hidden` (SB3's
    /// `net_arch=dict(pi=[...], vf=[...])`) [default: the actor's].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critic_hidden: Option<Vec<usize>>,
    /// What the agent maximises: the task's reward, or a reward-free objective
    /// ([`Objective`]), whose reward alone (never the task's) then drives the advantages.
    #[serde(skip_serializing_if = "Objective::is_reward")]
    pub objective: Objective,
    /// A multitask network over several tasks' shared spaces ([`TaskNets`]); set by multitask
    /// pretraining from its tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskNets>,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            n_envs: 1,
            n_steps: 2048,
            batch_size: 64,
            n_epochs: 10,
            gamma: 0.99,
            gae_lambda: 0.95,
            learning_rate: Schedule::Constant(3e-4),
            clip_range: Schedule::Constant(0.2),
            clip_range_vf: None,
            normalize_advantage: true,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: None,
            normalize_obs: false,
            normalize_reward: false,
            log_std_init: 0.0,
            use_sde: false,
            sde_sample_freq: -1,
            net: MlpConfig::default(),
            share_trunk: false,
            critic_hidden: None,
            objective: Objective::Reward,
            tasks: None,
        }
    }
}

impl PpoConfig {
    pub(in crate::agent) fn validate(&self) -> Result<(), AgentError> {
        check("n_envs", self.n_envs >= 1, "must be at least 1")?;
        check("n_steps", self.n_steps >= 1, "must be at least 1")?;
        check("batch_size", self.batch_size >= 1, "must be at least 1")?;
        check(
            "n_steps",
            self.n_steps.saturating_mul(self.n_envs) <= MAX_ROWS,
            &format!("n_steps * n_envs (one rollout) must be at most {MAX_ROWS}"),
        )?;
        check("n_epochs", self.n_epochs >= 1, "must be at least 1")?;
        check("gamma", (0.0..=1.0).contains(&self.gamma), "must lie in [0, 1]")?;
        check("gae_lambda", (0.0..=1.0).contains(&self.gae_lambda), "must lie in [0, 1]")?;
        check("max_grad_norm", self.max_grad_norm > 0.0, "must be positive")?;
        check(
            "critic_hidden",
            self.critic_hidden.as_ref().is_none_or(|h| h.iter().all(|&w| w > 0)),
            "every hidden layer needs a positive size",
        )?;
        let sde_ok = !self.use_sde || self.net.added.is_empty();
        check(
            "use_sde",
            sde_ok,
            "trains through autograd, which added layers are not run through: use a Gaussian head",
        )?;
        self.objective.validate()?;
        if self.share_trunk {
            let why = "the actor and the critic share one trunk (`share_trunk`)";
            check("share_trunk", !self.net.hidden.is_empty() || self.net.encoder.is_some(), &format!(
                "{why}: give it hidden layers (`net.hidden`) or an encoder (`net.encoder`)"
            ))?;
            let layers = format!("{why}: the critic's hidden layers are `net.hidden`");
            check("critic_hidden", self.critic_hidden.is_none(), &layers)?;
            check("net.added", self.net.added.is_empty(), &format!("{why}: layers cannot be added to it yet"))?;
            check("share_trunk", self.tasks.is_none(), &format!("{why}: a multitask network has a trunk each"))?;
            check(
                "share_trunk",
                self.objective.skills() == 0,
                &format!(
                    "{why}: skill discovery appends its skill to each network's input, which a shared trunk does not \
                     fold yet"
                ),
            )?;
        }
        if let Some(tasks) = &self.tasks {
            tasks.validate(self.n_envs)?;
            check("objective", self.objective.is_reward(), "a multitask network trains on its tasks' rewards")?;
        }
        self.net.validate()
    }

    /// The critic's network: the actor's, with `critic_hidden` where given.
    pub fn critic_net(&self) -> MlpConfig {
        MlpConfig { hidden: self.critic_hidden.clone().unwrap_or_else(|| self.net.hidden.clone()), ..self.net.clone() }
    }

    /// With `share_trunk`, each head's network: one linear layer reading the shared trunk.
    pub(in crate::agent) fn head_net(&self) -> MlpConfig {
        let net = self.net.clone();
        MlpConfig { hidden: Vec::new(), encoder: None, image: None, input_divisor: None, parts: Vec::new(), ..net }
    }
}
