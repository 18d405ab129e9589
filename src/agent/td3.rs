//! Twin Delayed DDPG (Fujimoto et al. 2018) as Stable-Baselines3 implements it: a deterministic
//! `tanh` actor, twin Q networks, target policy smoothing (clipped Gaussian noise on the target
//! actor's action), the actor and every target updated once per `policy_delay` critic updates,
//! Polyak-averaged targets, and Gaussian exploration noise on the `[-1, 1]` actions (SB3's
//! `NormalActionNoise`; none by default, as SB3).
//!
//! ```text
//! every gradient step (n counts them):
//!     ã' = clip(tanh(actor_target(s')) + clip(N(0, σ̃), -c, c), -1, 1)
//!     y  = r + γ (1 - done) min_k Q̄_k(s', ã')
//!     critics: Σ_k mean (Q_k(s, a) - y)²
//!     if n mod policy_delay = 0:
//!         actor: -mean Q_0(s, tanh(actor(s)))
//!         targets (critics and actor) move a fraction τ towards the online networks
//! ```
//!
//! The step runs in the engine without autograd, as SAC's does: the derivatives with respect to
//! the networks' outputs are written in Rust (`∂/∂Q_k = 2 (Q_k - y) / n`; the actor's through the
//! first critic's input gradient, `∂/∂u = -∂Q_0/∂a (1 - a²) / n` for `a = tanh u`), and the
//! engine's networks carry them back: the same bits on every CPU.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use super::MAX_ROWS;
use super::engine::{Net, math};
use super::nn::{Mlp, MlpConfig};
use super::off_policy::{self, OffPolicy, ProgressAt, Shape, StopAt};
use super::optim::{FlatParams, Optimizer};
use super::replay::{ReplayBuffer, Rows};
use super::state::{agent_state, training_state};
use super::stats::TrainStats;
use super::{
    Agent, AgentConfig, AgentError, Algo, Distill, Monitor, Outcome, Schedule, box_bounds, check, check_envs, obs_dim,
    sorted_variables, variable_names,
};
use crate::env::{Action, Space, VecEnv};

/// TD3's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Td3Config {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Adam's learning rate (actor and critics).
    pub learning_rate: Schedule,
    /// Replay buffer capacity (transitions).
    pub buffer_size: usize,
    /// Environment steps of uniformly random actions before learning starts.
    pub learning_starts: u64,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Target network update coefficient (Polyak averaging).
    pub tau: f64,
    /// Discount factor.
    pub gamma: f64,
    /// Train every this many (vector) steps...
    pub train_freq: u64,
    /// ... with this many gradient steps.
    pub gradient_steps: usize,
    /// Critic updates per actor (and target) update.
    pub policy_delay: usize,
    /// The standard deviation of the target policy's smoothing noise.
    pub target_policy_noise: f64,
    /// The smoothing noise is clipped to `±target_noise_clip`.
    pub target_noise_clip: f64,
    /// The standard deviation of the Gaussian exploration noise added to the `[-1, 1]` actions
    /// while training (SB3's `NormalActionNoise`, the RL Zoo's `noise_std`); `None`: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_noise: Option<f64>,
    /// Actor and critic networks.
    pub net: MlpConfig,
}

impl Default for Td3Config {
    fn default() -> Self {
        Td3Config {
            n_envs: 1,
            learning_rate: Schedule::Constant(1e-3),
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            policy_delay: 2,
            target_policy_noise: 0.2,
            target_noise_clip: 0.5,
            action_noise: None,
            net: MlpConfig::relu(&[400, 300]),
        }
    }
}

impl Td3Config {
    fn validate(&self) -> Result<(), AgentError> {
        check("n_envs", self.n_envs >= 1, "must be at least 1")?;
        check(
            "net.encoder",
            self.net.encoder.is_none(),
            "TD3's critics read the observation with the action: convolutional encoders are for PPO, A2C and DQN",
        )?;
        check("buffer_size", self.buffer_size >= 1, "must be at least 1")?;
        check("batch_size", (1..=MAX_ROWS).contains(&self.batch_size), &format!("must lie in [1, {MAX_ROWS}]"))?;
        check("train_freq", self.train_freq >= 1, "must be at least 1")?;
        check("policy_delay", self.policy_delay >= 1, "must be at least 1")?;
        check("tau", self.tau > 0.0 && self.tau <= 1.0, "must lie in (0, 1]")?;
        check("gamma", (0.0..=1.0).contains(&self.gamma), "must lie in [0, 1]")?;
        check("target_policy_noise", self.target_policy_noise >= 0.0, "must not be negative")?;
        check("target_noise_clip", self.target_noise_clip >= 0.0, "must not be negative")?;
        check(
            "action_noise",
            self.action_noise.is_none_or(|s| s.is_finite() && s >= 0.0),
            "must be a standard deviation (0 or more)",
        )?;
        self.net.validate()
    }
}

/// A TD3 agent.
pub struct Td3 {
    cfg: Td3Config,
    seed: u64,
    action_space: Space,
    obs_dim: usize,
    act_dim: usize,
    low: Vec<f32>,
    high: Vec<f32>,
    vs: nn::VarStore,
    target_vs: nn::VarStore,
    /// The engine's networks: the actor over `actor_opt`'s buffer, the critics over
    /// `critic_opt`'s, and the targets over buffers laid out as those (a Polyak update is one
    /// pass each).
    actor_net: Net,
    critic_nets: [Net; 2],
    actor_target_net: Net,
    critic_target_nets: [Net; 2],
    actor_target: FlatParams,
    critic_target: FlatParams,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
    buffer: ReplayBuffer,
    rng: super::AgentRng,
    steps: u64,
    gradient_steps: u64,
    current: Option<Vec<f32>>,
    /// The gradient steps' scalars until the loop reports them.
    stats: TrainStats,
}

impl Td3 {
    /// A TD3 agent for these spaces (Box actions), its networks seeded with `seed`.
    pub fn new(cfg: Td3Config, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        cfg.validate()?;
        let obs_dim = obs_dim(Algo::Td3, obs_space)?;
        let (low, high) = box_bounds(Algo::Td3, action_space)?;
        let act_dim = low.len();
        cfg.net.check_size(obs_dim + act_dim, act_dim.max(1))?;
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut target_vs = nn::VarStore::new(tch::Device::Cpu);
        super::nn::with_seed(seed, || {
            let q_in = obs_dim + act_dim;
            let (root, target_root) = (vs.root(), target_vs.root());
            Mlp::new(&(&root / "actor"), &cfg.net, obs_dim, act_dim, 1.0);
            for k in 0..2 {
                Mlp::new(&(&root / "critic" / format!("q{k}")), &cfg.net, q_in, 1, 1.0);
            }
            Mlp::new(&(&target_root / "actor_target"), &cfg.net, obs_dim, act_dim, 1.0);
            for k in 0..2 {
                Mlp::new(&(&target_root / "critic_target" / format!("q{k}")), &cfg.net, q_in, 1, 1.0);
            }
        });
        target_vs.freeze();
        let part = |vs: &nn::VarStore, prefix: &str| -> Vec<(String, Tensor)> {
            sorted_variables(vs).into_iter().filter(|(n, _)| n.starts_with(prefix)).collect()
        };
        let actor_opt = Optimizer::adam(part(&vs, "actor."), 1e-8);
        let critic_opt = Optimizer::adam(part(&vs, "critic."), 1e-8);
        let actor_target = FlatParams::new(part(&target_vs, "actor_target."));
        let critic_target = FlatParams::new(part(&target_vs, "critic_target."));
        let mlp =
            |params: &FlatParams, name: &str| params.mlp(name, &cfg.net).expect("the networks' parameters");
        let critics = |params: &FlatParams, prefix: &str| [0, 1].map(|k| mlp(params, &format!("{prefix}.q{k}")));
        let mut td3 = Td3 {
            actor_net: mlp(actor_opt.params(), "actor"),
            critic_nets: critics(critic_opt.params(), "critic"),
            actor_target_net: mlp(&actor_target, "actor_target"),
            critic_target_nets: critics(&critic_target, "critic_target"),
            action_space: action_space.clone(),
            seed,
            obs_dim,
            act_dim,
            low,
            high,
            vs,
            target_vs,
            actor_target,
            critic_target,
            actor_opt,
            critic_opt,
            buffer: ReplayBuffer::new(cfg.buffer_size, obs_dim, act_dim),
            rng: super::AgentRng::seed_from_u64(seed),
            steps: 0,
            gradient_steps: 0,
            current: None,
            stats: TrainStats::default(),
            cfg,
        };
        td3.update_targets(1.0);
        Ok(td3)
    }

    /// Moves the targets (actor and critics) a fraction `tau` towards the online networks.
    fn update_targets(&mut self, tau: f64) {
        self.actor_target.lerp_towards(self.actor_opt.params(), tau);
        self.critic_target.lerp_towards(self.critic_opt.params(), tau);
    }

    /// The deterministic actions `tanh(actor(s))` in `[-1, 1]` for rows of observations.
    fn policy(&self, obs: &[f32]) -> Vec<f32> {
        let n = obs.len() / self.obs_dim;
        self.actor_net.infer(self.actor_opt.params().values(), obs, n).into_iter().map(math::tanh).collect()
    }

    /// The critics' input rows: each observation row followed by its action row.
    fn critic_input(&self, obs: &[f32], actions: &[f32]) -> Vec<f32> {
        super::off_policy::critic_input(obs, actions, self.obs_dim, self.act_dim)
    }

    /// `[-1, 1]` actions to the space's bounds.
    fn to_env(&self, squashed: &[f32]) -> Vec<Action> {
        off_policy::to_bounds(squashed, &self.low, &self.high)
    }

    /// The targets `r + γ (1 - done) min_k Q̄_k(s', ã')` with the target actor's smoothed action
    /// `ã'` (the noise drawn from the agent's generator, row after row).
    fn targets(&mut self, batch: &Rows) -> Vec<f32> {
        let n = batch.rewards.len();
        let next = self.actor_target_net.infer(self.actor_target.values(), &batch.next_obs, n);
        let (sigma, clip) = (self.cfg.target_policy_noise as f32, self.cfg.target_noise_clip as f32);
        let smoothed: Vec<f32> = next
            .iter()
            .map(|&u| {
                let noise = (self.rng.sample::<f32, _>(StandardNormal) * sigma).clamp(-clip, clip);
                (math::tanh(u) + noise).clamp(-1.0, 1.0)
            })
            .collect();
        let x = self.critic_input(&batch.next_obs, &smoothed);
        let params = self.critic_target.values();
        let [q0, q1] = [0, 1].map(|k| self.critic_target_nets[k].infer(params, &x, n));
        let gamma = self.cfg.gamma as f32;
        (0..n).map(|i| batch.rewards[i] + (1.0 - batch.dones[i]) * (q0[i].min(q1[i]) * gamma)).collect()
    }

    /// Writes the critics' gradients of `Σ_k mean (Q_k(s, a) - y)²` into their optimiser;
    /// returns the loss.
    fn critic_gradients(&mut self, batch: &Rows, target: &[f32]) -> f64 {
        let x = self.critic_input(&batch.obs, &batch.actions);
        off_policy::twin_critic_gradients(&self.critic_nets, &mut self.critic_opt, &x, target, 2.0)
    }

    /// Writes the actor's gradients of `-mean Q_0(s, tanh(actor(s)))` into its optimiser,
    /// through the first critic's gradient with respect to the actions; returns the loss.
    fn actor_gradients(&mut self, obs: &[f32]) -> f64 {
        let (n, dim) = (obs.len() / self.obs_dim, self.act_dim);
        let params = self.actor_opt.params().values();
        let pass = self.actor_net.forward(params, obs, n);
        let actions: Vec<f32> = pass.output().iter().map(|&u| math::tanh(u)).collect();
        let x = self.critic_input(obs, &actions);
        let critic_params = self.critic_opt.params().values();
        let q_pass = self.critic_nets[0].forward(critic_params, &x, n);
        let loss = -q_pass.output().iter().map(|&q| q as f64).sum::<f64>() / n as f64;
        let grad_q = vec![-1.0 / n as f32; n];
        let g = self.critic_nets[0].input_gradient(critic_params, &x, &q_pass, &grad_q, None);
        let width = self.obs_dim + dim;
        let grad_u: Vec<f32> = (0..n * dim)
            .map(|k| {
                let (row, j) = (k / dim, k % dim);
                let a = actions[k];
                g[row * width + self.obs_dim + j] * (1.0 - a * a)
            })
            .collect();
        let (params, grads) = self.actor_opt.values_and_gradients();
        self.actor_net.backward(params, obs, &pass, &grad_u, None, grads);
        loss
    }

    /// `steps` gradient steps at learning rate `lr`: the critics every step, the actor and the
    /// targets every `policy_delay`-th (SB3 counts the steps from 1).
    fn updates(&mut self, steps: usize, lr: f64) {
        for _ in 0..steps {
            self.gradient_steps += 1;
            let batch = self.buffer.sample_rows(self.cfg.batch_size, &mut self.rng);
            let target = self.targets(&batch);
            let critic_loss = self.critic_gradients(&batch, &target);
            self.critic_opt.step_with_gradients(lr, None);
            self.stats.add("train/critic_loss", critic_loss);
            self.stats.add_grad_norm(&self.critic_opt, "train/critic_grad_norm");
            if self.gradient_steps.is_multiple_of(self.cfg.policy_delay as u64) {
                let actor_loss = self.actor_gradients(&batch.obs);
                self.actor_opt.step_with_gradients(lr, None);
                self.stats.add("train/actor_loss", actor_loss);
                self.stats.add_grad_norm(&self.actor_opt, "train/actor_grad_norm");
                self.update_targets(self.cfg.tau);
            }
        }
        self.stats.add("train/learning_rate", lr);
    }
}

impl Agent for Td3 {
    fn config(&self) -> AgentConfig {
        AgentConfig::Td3(self.cfg.clone())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn learn(&mut self, envs: &mut VecEnv, total: u64, monitor: &mut Monitor<'_>) -> Result<Outcome, AgentError> {
        check_envs(envs, self.cfg.n_envs, self.obs_dim, &self.action_space)?;
        off_policy::learn(self, envs, total, monitor)
    }

    /// The deterministic policy; "stochastic" evaluation adds the exploration noise (when the
    /// configuration has one), drawn from `rng`.
    fn act(&self, obs: &[f32], deterministic: bool, rng: &mut StdRng) -> Vec<Action> {
        let mut actions = self.policy(obs);
        if let (false, Some(sigma)) = (deterministic, self.cfg.action_noise) {
            for a in &mut actions {
                *a = (*a + rng.sample::<f32, _>(StandardNormal) * sigma as f32).clamp(-1.0, 1.0);
            }
        }
        self.to_env(&actions)
    }

    fn outputs(&self, obs: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
        let action = self.policy(obs);
        let x = self.critic_input(obs, &action);
        let n = obs.len() / self.obs_dim;
        let params = self.critic_opt.params().values();
        let [q0, q1] = [0, 1].map(|k| self.critic_nets[k].infer(params, &x, n));
        vec![("action", action), ("q0", q0), ("q1", q1)]
    }

    agent_state!(vs, target_vs, "optim.actor": actor_opt, "optim.critic": critic_opt);
    training_state!(rng, gradient_steps, current, buffer);

    fn weight_names(&self) -> Vec<String> {
        variable_names(&self.vs)
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![("optim.actor", &mut self.actor_opt), ("optim.critic", &mut self.critic_opt)]
    }

    fn replay(&self) -> Option<&ReplayBuffer> {
        Some(&self.buffer)
    }

    fn replay_mut(&mut self) -> Option<&mut ReplayBuffer> {
        Some(&mut self.buffer)
    }

    fn sync_targets(&mut self) {
        self.update_targets(1.0);
    }

    fn set_teacher(&mut self, _: Distill) -> Result<(), AgentError> {
        Err(AgentError::Unsupported(
            "distill needs a policy with an action distribution (PPO, A2C, SAC); TD3's deterministic actor has none \
             (use l2_init to keep the actor near the source instead)"
                .into(),
        ))
    }
}

/// TD3 in the off-policy loop, shaped as SAC: blocks of `train_freq` vector steps, the learning
/// rate at the progress after the block, a stop taking effect at once.
impl OffPolicy for Td3 {
    fn shape(&self) -> Shape {
        Shape {
            n_envs: self.cfg.n_envs,
            block: self.cfg.train_freq,
            round: self.cfg.train_freq,
            learning_starts: self.cfg.learning_starts,
            learning_rate: self.cfg.learning_rate,
            progress: ProgressAt::AfterBlock,
            stop: StopAt::Immediately,
        }
    }

    fn loop_state(&mut self) -> (&mut u64, &mut Option<Vec<f32>>, &mut ReplayBuffer) {
        (&mut self.steps, &mut self.current, &mut self.buffer)
    }

    /// Uniformly random actions in `[-1, 1]` before `learning_starts`, then the policy's; the
    /// exploration noise (if any) added to both and clipped, as SB3's `_sample_action`.
    fn act_exploring(&mut self, obs: &[f32], _: u64, _: f64) -> (Vec<Action>, Vec<f32>) {
        let mut squashed: Vec<f32> = if self.steps < self.cfg.learning_starts {
            (0..self.cfg.n_envs * self.act_dim).map(|_| self.rng.random_range(-1.0f32..=1.0)).collect()
        } else {
            self.policy(obs)
        };
        if let Some(sigma) = self.cfg.action_noise {
            for a in &mut squashed {
                *a = (*a + self.rng.sample::<f32, _>(StandardNormal) * sigma as f32).clamp(-1.0, 1.0);
            }
        }
        (self.to_env(&squashed), squashed)
    }

    fn train(&mut self, lr: f64) {
        self.updates(self.cfg.gradient_steps, lr);
    }

    fn stats(&mut self) -> &mut TrainStats {
        &mut self.stats
    }
}
