//! Proximal Policy Optimisation (Schulman et al. 2017) as Stable-Baselines3 implements it:
//! vectorised rollouts, GAE, the clipped surrogate, an optionally clipped value loss, an entropy
//! bonus, per-minibatch advantage normalisation, gradient clipping and linear schedules.
//! Truncated episodes are bootstrapped from the value of their final observation; terminated
//! ones are not.
//!
//! Speed: acting runs without autograd on one `[num_envs, obs_dim]` tensor per step and samples
//! in Rust from the copied-out logits or means (one copy per step, no libtorch round trips);
//! a minibatch that spans the whole rollout skips the gathers.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::normalize::{ObsNormalizer, RewardNormalizer};
use super::optim::Adam;
use super::{
    Agent, AgentConfig, AgentError, Algo, Event, Monitor, Outcome, Schedule, check, copy_tensors, obs_dim, rows,
    sorted_variables, to_vec, with_torch_seed,
};
use crate::env::{Action, Space, VecEnv};
use crate::nn::{Mlp, MlpConfig};

const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// PPO's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    pub n_envs: usize,
    /// Steps per environment per rollout.
    pub n_steps: usize,
    pub batch_size: usize,
    pub n_epochs: usize,
    pub gamma: f64,
    pub gae_lambda: f64,
    pub learning_rate: Schedule,
    pub clip_range: Schedule,
    /// Clips the value prediction's change around the rollout's value; `None` does not clip.
    pub clip_range_vf: Option<f64>,
    pub normalize_advantage: bool,
    pub ent_coef: f64,
    pub vf_coef: f64,
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
    pub sde_sample_freq: i64,
    /// Actor and critic networks (each its own trunk).
    pub net: MlpConfig,
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
        }
    }
}

impl PpoConfig {
    fn validate(&self) -> Result<(), AgentError> {
        check("n_envs", self.n_envs >= 1, "must be at least 1")?;
        check("n_steps", self.n_steps >= 1, "must be at least 1")?;
        check("batch_size", self.batch_size >= 1, "must be at least 1")?;
        check("n_epochs", self.n_epochs >= 1, "must be at least 1")?;
        check("gamma", (0.0..=1.0).contains(&self.gamma), "must lie in [0, 1]")?;
        check("gae_lambda", (0.0..=1.0).contains(&self.gae_lambda), "must lie in [0, 1]")?;
        check("max_grad_norm", self.max_grad_norm > 0.0, "must be positive")?;
        self.net.validate()
    }
}

/// The policy's distribution family.
enum Head {
    Categorical { n: usize },
    Gaussian { dim: usize, low: Vec<f32>, high: Vec<f32>, sde: bool },
}

/// A PPO agent.
pub struct Ppo {
    cfg: PpoConfig,
    seed: u64,
    obs_dim: usize,
    head: Head,
    vs: nn::VarStore,
    actor: Mlp,
    critic: Mlp,
    /// `actor.log_std`: `[act_dim]` for the Gaussian head, `[features, act_dim]` with gSDE.
    log_std: Option<Tensor>,
    /// The gSDE exploration matrices in use, one `[features, act_dim]` per environment.
    exploration: Vec<f32>,
    opt: Adam,
    obs_norm: Option<ObsNormalizer>,
    rew_norm: Option<RewardNormalizer>,
    rng: StdRng,
    steps: u64,
    /// The (normalised) observations to act on next and which environments just started an
    /// episode; `None` until the first call to `learn`.
    current: Option<(Vec<f32>, Vec<f32>)>,
}

/// One rollout, `[n_steps * n_envs]` rows in step-major order.
struct Rollout {
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    starts: Vec<f32>,
    values: Vec<f32>,
    log_probs: Vec<f32>,
}

impl Ppo {
    pub fn new(cfg: PpoConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        cfg.validate()?;
        let obs_dim = obs_dim(Algo::Ppo, obs_space)?;
        let head = match action_space {
            Space::Discrete { n } => Head::Categorical { n: *n },
            _ => {
                let (low, high) = super::box_bounds(Algo::Ppo, action_space)?;
                Head::Gaussian { dim: low.len(), low, high, sde: cfg.use_sde }
            }
        };
        let out = match &head {
            Head::Categorical { n } => *n,
            Head::Gaussian { dim, .. } => *dim,
        };
        let latent = *cfg.net.hidden.last().unwrap_or(&obs_dim);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (actor, critic, log_std) = with_torch_seed(seed, || {
            let root = vs.root();
            let actor = Mlp::new(&(&root / "actor"), &cfg.net, obs_dim, out, 0.01);
            let critic = Mlp::new(&(&root / "critic"), &cfg.net, obs_dim, 1, 1.0);
            let log_std = match head {
                Head::Gaussian { dim, sde, .. } => {
                    let shape = if sde { vec![latent as i64, dim as i64] } else { vec![dim as i64] };
                    Some((&root / "actor").var("log_std", &shape, nn::Init::Const(cfg.log_std_init)))
                }
                Head::Categorical { .. } => None,
            };
            (actor, critic, log_std)
        });
        let opt = Adam::new(sorted_variables(&vs), 1e-5);
        let obs_norm = cfg.normalize_obs.then(|| ObsNormalizer::new(obs_dim));
        let rew_norm = cfg.normalize_reward.then(|| RewardNormalizer::new(cfg.n_envs, cfg.gamma));
        Ok(Ppo {
            seed,
            obs_dim,
            head,
            vs,
            actor,
            critic,
            log_std,
            exploration: Vec::new(),
            opt,
            obs_norm,
            rew_norm,
            rng: StdRng::seed_from_u64(seed),
            steps: 0,
            current: None,
            cfg,
        })
    }

    /// The actor's outputs for rows: logits or means `[n, out]`, and with gSDE the features.
    fn policy_out(&self, obs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let x = rows(obs, self.obs_dim);
        tch::no_grad(|| {
            let features = self.actor.features(&x);
            let out = to_vec(&self.actor.head_forward(&features));
            (out, if self.uses_sde() { to_vec(&features) } else { Vec::new() })
        })
    }

    fn uses_sde(&self) -> bool {
        matches!(self.head, Head::Gaussian { sde: true, .. })
    }

    /// Draws `count` gSDE matrices `W ~ N(0, σ²)` from `rng`.
    fn draw_exploration(&self, count: usize, rng: &mut StdRng) -> Vec<f32> {
        draw_exploration(self.log_std.as_ref().expect("gSDE has log_std"), count, rng)
    }

    /// The gSDE noise and its per-dimension variance for feature rows and matrices (one matrix
    /// per row, cycling).
    fn sde_noise(&self, features: &[f32], matrices: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let sigma2: Vec<f64> = to_vec(&self.log_std.as_ref().expect("gSDE has log_std").exp())
            .iter()
            .map(|s| (*s as f64).powi(2))
            .collect();
        let latent = sigma2.len() / dim;
        let per_matrix = latent * dim;
        let n_matrices = matrices.len() / per_matrix;
        let (mut noise, mut var) = (Vec::new(), Vec::new());
        for (row, f) in features.chunks_exact(latent).enumerate() {
            let w = &matrices[(row % n_matrices) * per_matrix..][..per_matrix];
            for j in 0..dim {
                noise.push((0..latent).map(|k| f[k] as f64 * w[k * dim + j] as f64).sum());
                var.push((0..latent).map(|k| (f[k] as f64).powi(2) * sigma2[k * dim + j]).sum::<f64>() + 1e-6);
            }
        }
        (noise, var)
    }

    fn values(&self, obs: &[f32]) -> Vec<f32> {
        let x = rows(obs, self.obs_dim);
        tch::no_grad(|| to_vec(&self.critic.forward(&x)))
    }

    fn normalize(&self, obs: &mut [f32]) {
        if let Some(norm) = &self.obs_norm {
            norm.apply(obs);
        }
    }

    /// Samples one action per row of policy outputs, appending the action values and their
    /// log-probabilities.
    fn sample(&mut self, out: &[f32], features: &[f32], actions: &mut Vec<f32>, log_probs: &mut Vec<f32>) {
        match &self.head {
            Head::Categorical { n } => {
                for logits in out.chunks_exact(*n) {
                    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    let mut u = self.rng.random::<f64>() * total;
                    let mut a = *n - 1;
                    for (i, e) in exps.iter().enumerate() {
                        if u < *e {
                            a = i;
                            break;
                        }
                        u -= e;
                    }
                    actions.push(a as f32);
                    log_probs.push(((logits[a] - max) as f64 - total.ln()) as f32);
                }
            }
            Head::Gaussian { dim, sde: true, .. } => {
                let (noise, var) = self.sde_noise(features, &self.exploration, *dim);
                for (k, m) in out.iter().enumerate() {
                    actions.push((*m as f64 + noise[k]) as f32);
                }
                for (e, v) in noise.chunks_exact(*dim).zip(var.chunks_exact(*dim)) {
                    let lp: f64 = e.iter().zip(v).map(|(e, v)| -0.5 * e * e / v - 0.5 * v.ln() - LOG_SQRT_2PI).sum();
                    log_probs.push(lp as f32);
                }
            }
            Head::Gaussian { dim, .. } => {
                let log_std = to_vec(self.log_std.as_ref().expect("Gaussian head has log_std"));
                for mean in out.chunks_exact(*dim) {
                    let mut lp = 0.0f64;
                    for (m, ls) in mean.iter().zip(&log_std) {
                        let eps: f64 = self.rng.sample(StandardNormal);
                        actions.push((*m as f64 + (*ls as f64).exp() * eps) as f32);
                        lp += -0.5 * eps * eps - *ls as f64 - LOG_SQRT_2PI;
                    }
                    log_probs.push(lp as f32);
                }
            }
        }
    }

    /// The environment actions for stored action values (Gaussian samples clipped to bounds).
    fn env_actions(&self, values: &[f32]) -> Vec<Action> {
        match &self.head {
            Head::Categorical { .. } => values.iter().map(|&a| Action::Discrete(a as usize)).collect(),
            Head::Gaussian { dim, low, high, .. } => values
                .chunks_exact(*dim)
                .map(|a| {
                    let clipped: Vec<f32> =
                        a.iter().zip(low.iter().zip(high)).map(|(&x, (&l, &h))| x.clamp(l, h)).collect();
                    Action::continuous(&clipped)
                })
                .collect(),
        }
    }

    /// Collects one rollout; `None` when the monitor asked to stop.
    fn collect(
        &mut self,
        envs: &mut VecEnv,
        monitor: &mut Monitor<'_>,
    ) -> Result<Option<(Rollout, Vec<f32>)>, AgentError> {
        let (n, d, t_max) = (self.cfg.n_envs, self.obs_dim, self.cfg.n_steps);
        let act_width = match self.head {
            Head::Categorical { .. } => 1,
            Head::Gaussian { dim, .. } => dim,
        };
        let (mut obs, mut starts) = match self.current.take() {
            Some(current) => current,
            None => {
                let mut obs = envs.reset(Some(self.seed))?.to_vec();
                if let Some(norm) = &mut self.obs_norm {
                    norm.stats.update(&obs);
                }
                self.normalize(&mut obs);
                (obs, vec![1.0; n])
            }
        };
        let mut r = Rollout {
            obs: Vec::with_capacity(t_max * n * d),
            actions: Vec::with_capacity(t_max * n * act_width),
            rewards: Vec::with_capacity(t_max * n),
            starts: Vec::with_capacity(t_max * n),
            values: Vec::with_capacity(t_max * n),
            log_probs: Vec::with_capacity(t_max * n),
        };
        let mut stopped = false;
        let sample_freq = self.cfg.sde_sample_freq;
        for t in 0..t_max {
            if self.uses_sde() && (t == 0 || (sample_freq > 0 && t as i64 % sample_freq == 0)) {
                let log_std = self.log_std.as_ref().expect("gSDE has log_std");
                self.exploration = draw_exploration(log_std, n, &mut self.rng);
            }
            let (out, features) = self.policy_out(&obs);
            let values = self.values(&obs);
            let first = r.actions.len();
            self.sample(&out, &features, &mut r.actions, &mut r.log_probs);
            let actions = self.env_actions(&r.actions[first..]);
            let step = envs.step(&actions)?;
            let mut next = step.obs.to_vec();
            let mut rewards = step.rewards.to_vec();
            let done: Vec<bool> = step.terminated.iter().zip(step.truncated).map(|(a, b)| *a || *b).collect();
            // Bootstrap truncated episodes from their final observation's value.
            let truncated: Vec<(usize, Vec<f32>)> = (0..n)
                .filter(|&i| step.truncated[i] && !step.terminated[i])
                .filter_map(|i| step.final_obs[i].as_ref().map(|o| (i, o.to_vec())))
                .collect();
            self.steps += n as u64;
            for episode in step.episodes {
                if monitor(Event::Episode { step: self.steps, episode }).is_break() {
                    stopped = true;
                }
            }
            if let Some(norm) = &mut self.obs_norm {
                norm.stats.update(&next);
            }
            self.normalize(&mut next);
            if let Some(norm) = &mut self.rew_norm {
                rewards = norm.apply(&rewards, |i| done[i]);
            }
            if !truncated.is_empty() {
                let mut finals: Vec<f32> = truncated.iter().flat_map(|(_, o)| o.iter().copied()).collect();
                self.normalize(&mut finals);
                for ((i, _), v) in truncated.iter().zip(self.values(&finals)) {
                    rewards[*i] += self.cfg.gamma * v as f64;
                }
            }
            r.obs.extend_from_slice(&obs);
            r.rewards.extend(rewards.iter().map(|&x| x as f32));
            r.starts.extend_from_slice(&starts);
            r.values.extend_from_slice(&values);
            obs = next;
            starts = done.iter().map(|&d| if d { 1.0 } else { 0.0 }).collect();
            if monitor(Event::Progress { step: self.steps }).is_break() {
                stopped = true;
            }
            if stopped {
                break;
            }
        }
        let last_values = self.values(&obs);
        self.current = Some((obs, starts));
        Ok((!stopped).then_some((r, last_values)))
    }

    /// Generalised advantage estimates and returns (Stable-Baselines3's recursion).
    fn advantages(&self, r: &Rollout, last_values: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = self.cfg.n_envs;
        let len = r.rewards.len();
        let (gamma, lambda) = (self.cfg.gamma as f32, self.cfg.gae_lambda as f32);
        let last_done = &self.current.as_ref().expect("collect sets current").1;
        let mut adv = vec![0.0f32; len];
        let mut gae = vec![0.0f32; n];
        for t in (0..len / n).rev() {
            for i in 0..n {
                let k = t * n + i;
                let (next_value, next_non_terminal) = if (t + 1) * n >= len {
                    (last_values[i], 1.0 - last_done[i])
                } else {
                    (r.values[k + n], 1.0 - r.starts[k + n])
                };
                let delta = r.rewards[k] + gamma * next_value * next_non_terminal - r.values[k];
                gae[i] = delta + gamma * lambda * next_non_terminal * gae[i];
                adv[k] = gae[i];
            }
        }
        let returns = adv.iter().zip(&r.values).map(|(a, v)| a + v).collect();
        (adv, returns)
    }

    /// Log-probabilities of `actions` and entropies under the current policy for rows `obs`.
    fn evaluate_actions(&self, obs: &Tensor, actions: &Tensor, need_entropy: bool) -> (Tensor, Option<Tensor>) {
        let features = self.actor.features(obs);
        let out = self.actor.head_forward(&features);
        match &self.head {
            Head::Categorical { .. } => {
                let log_p = out.log_softmax(-1, Kind::Float);
                let taken = log_p.gather(1, actions, false);
                let entropy = need_entropy.then(|| -(log_p.exp() * &log_p).sum_dim_intlist(-1, true, Kind::Float));
                (taken, entropy)
            }
            Head::Gaussian { sde: true, .. } => {
                let sigma2 = self.log_std.as_ref().expect("gSDE has log_std").exp().square();
                let var = features.detach().square().matmul(&sigma2) + 1e-6;
                let lp = ((actions - &out).square() / &var * -0.5 - var.log() * 0.5 - LOG_SQRT_2PI).sum_dim_intlist(
                    -1,
                    false,
                    Kind::Float,
                );
                let entropy = need_entropy
                    .then(|| (var.log() * 0.5 + 0.5 + LOG_SQRT_2PI).sum_dim_intlist(-1, false, Kind::Float));
                (lp, entropy)
            }
            Head::Gaussian { .. } => {
                let log_std = self.log_std.as_ref().expect("Gaussian head has log_std");
                let z = (actions - &out) * (-log_std).exp();
                let lp = (z.square() * -0.5 - log_std - LOG_SQRT_2PI).sum_dim_intlist(-1, false, Kind::Float);
                let entropy =
                    need_entropy.then(|| (log_std + 0.5 + LOG_SQRT_2PI).sum(Kind::Float).expand([lp.size()[0]], false));
                (lp, entropy)
            }
        }
    }

    /// Tensors of the rows `index` of a rollout (all rows when `None`), advantages normalised
    /// in Rust when configured; every per-row quantity is a `[rows, 1]` column.
    fn minibatch(&self, r: &Rollout, adv: &[f32], returns: &[f32], index: Option<&[usize]>) -> Minibatch {
        let all: Vec<usize>;
        let index = match index {
            Some(index) => index,
            None => {
                all = (0..r.rewards.len()).collect();
                &all
            }
        };
        let n = index.len() as i64;
        let d = self.obs_dim;
        let column = |v: &[f32]| Tensor::from_slice(&index.iter().map(|&i| v[i]).collect::<Vec<f32>>()).view([n, 1]);
        let obs: Vec<f32> = index.iter().flat_map(|&i| r.obs[i * d..(i + 1) * d].iter().copied()).collect();
        let actions = match self.head {
            Head::Categorical { .. } => {
                Tensor::from_slice(&index.iter().map(|&i| r.actions[i] as i64).collect::<Vec<i64>>()).view([n, 1])
            }
            Head::Gaussian { dim, .. } => {
                let a: Vec<f32> = index.iter().flat_map(|&i| r.actions[i * dim..(i + 1) * dim].iter().copied()).collect();
                rows(&a, dim)
            }
        };
        let mut mb_adv: Vec<f32> = index.iter().map(|&i| adv[i]).collect();
        if self.cfg.normalize_advantage && mb_adv.len() > 1 {
            let m = mb_adv.iter().map(|&a| a as f64).sum::<f64>() / mb_adv.len() as f64;
            let var = mb_adv.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / (mb_adv.len() - 1) as f64;
            let scale = 1.0 / (var.sqrt() + 1e-8);
            mb_adv.iter_mut().for_each(|a| *a = ((*a as f64 - m) * scale) as f32);
        }
        Minibatch {
            obs: rows(&obs, d),
            actions,
            old_log_probs: column(&r.log_probs),
            old_values: column(&r.values),
            advantages: Tensor::from_slice(&mb_adv).view([n, 1]),
            returns: column(returns),
        }
    }

    fn update(&mut self, r: &Rollout, last_values: &[f32], progress: f64) -> Result<(), AgentError> {
        let (adv, returns) = self.advantages(r, last_values);
        let len = r.rewards.len();
        let lr = self.cfg.learning_rate.at(progress);
        let clip = self.cfg.clip_range.at(progress);
        let batch = self.cfg.batch_size.min(len);
        // One minibatch spanning the rollout is the same every epoch: build it once.
        let whole = (batch == len).then(|| self.minibatch(r, &adv, &returns, None));
        let mut order: Vec<usize> = (0..len).collect();
        'epochs: for _ in 0..self.cfg.n_epochs {
            if whole.is_none() {
                order.shuffle(&mut self.rng);
            }
            for chunk in order.chunks(batch) {
                let built;
                let mb = match &whole {
                    Some(mb) => mb,
                    None => {
                        built = self.minibatch(r, &adv, &returns, Some(chunk));
                        &built
                    }
                };
                let (log_prob, entropy) = self.evaluate_actions(&mb.obs, &mb.actions, self.cfg.ent_coef != 0.0);
                let log_ratio = &log_prob - &mb.old_log_probs;
                let ratio = log_ratio.exp();
                let surrogate =
                    (&mb.advantages * &ratio).min_other(&(&mb.advantages * ratio.clamp(1.0 - clip, 1.0 + clip)));
                let values = self.critic.forward(&mb.obs);
                let values = match self.cfg.clip_range_vf {
                    Some(c) => &mb.old_values + (&values - &mb.old_values).clamp(-c, c),
                    None => values,
                };
                let value_loss = values.mse_loss(&mb.returns, tch::Reduction::Mean);
                let mut loss = value_loss * self.cfg.vf_coef - surrogate.mean(Kind::Float);
                if let Some(entropy) = entropy {
                    loss = loss - entropy.mean(Kind::Float) * self.cfg.ent_coef;
                }
                if let Some(target) = self.cfg.target_kl {
                    let kl = tch::no_grad(|| ((&ratio - 1.0) - &log_ratio).mean(Kind::Float).double_value(&[]));
                    if kl > 1.5 * target {
                        break 'epochs;
                    }
                }
                self.opt.backward_step(&loss, lr, Some(self.cfg.max_grad_norm));
            }
        }
        Ok(())
    }
}

/// One minibatch's tensors.
struct Minibatch {
    obs: Tensor,
    actions: Tensor,
    old_log_probs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
}

impl Agent for Ppo {
    fn config(&self) -> AgentConfig {
        AgentConfig::Ppo(self.cfg.clone())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn learn(&mut self, envs: &mut VecEnv, total: u64, monitor: &mut Monitor<'_>) -> Result<Outcome, AgentError> {
        super::check_envs(envs, self.cfg.n_envs)?;
        while self.steps < total {
            let Some((rollout, last_values)) = self.collect(envs, monitor)? else {
                return Ok(Outcome::Stopped);
            };
            let progress = self.steps as f64 / total as f64;
            self.update(&rollout, &last_values, progress)?;
        }
        Ok(Outcome::Finished)
    }

    fn act(&self, obs: &[f32], deterministic: bool, rng: &mut StdRng) -> Vec<Action> {
        let mut obs = obs.to_vec();
        self.normalize(&mut obs);
        let (out, features) = self.policy_out(&obs);
        let values: Vec<f32> = match &self.head {
            Head::Categorical { n } => out
                .chunks_exact(*n)
                .map(|logits| {
                    if deterministic {
                        argmax(logits) as f32
                    } else {
                        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
                        let mut u = rng.random::<f64>() * exps.iter().sum::<f64>();
                        exps.iter()
                            .position(|e| {
                                let hit = u < *e;
                                u -= e;
                                hit
                            })
                            .unwrap_or(*n - 1) as f32
                    }
                })
                .collect(),
            Head::Gaussian { dim, sde: true, .. } => {
                if deterministic {
                    out
                } else {
                    let w = self.draw_exploration(1, rng);
                    let (noise, _) = self.sde_noise(&features, &w, *dim);
                    out.iter().zip(noise).map(|(m, e)| (*m as f64 + e) as f32).collect()
                }
            }
            Head::Gaussian { .. } => {
                if deterministic {
                    out
                } else {
                    let log_std = to_vec(self.log_std.as_ref().expect("Gaussian head has log_std"));
                    out.iter()
                        .enumerate()
                        .map(|(k, m)| {
                            let eps: f64 = rng.sample(StandardNormal);
                            (*m as f64 + (log_std[k % log_std.len()] as f64).exp() * eps) as f32
                        })
                        .collect()
                }
            }
        };
        self.env_actions(&values)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = sorted_variables(&self.vs);
        out.extend(self.opt.state("optim"));
        if let Some(norm) = &self.obs_norm {
            out.extend(norm.stats.state("obs_rms"));
        }
        if let Some(norm) = &self.rew_norm {
            out.extend(norm.stats.state("ret_rms"));
        }
        out
    }

    fn weight_names(&self) -> Vec<String> {
        sorted_variables(&self.vs).into_iter().map(|(name, _)| name).collect()
    }

    fn restore(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>, steps: u64) -> Result<(), AgentError> {
        copy_tensors(&sorted_variables(&self.vs), get)?;
        self.opt.load_state("optim", get).map_err(AgentError::State)?;
        if let Some(norm) = &mut self.obs_norm {
            norm.stats.load_state("obs_rms", get).map_err(AgentError::State)?;
        }
        if let Some(norm) = &mut self.rew_norm {
            norm.stats.load_state("ret_rms", get).map_err(AgentError::State)?;
        }
        self.steps = steps;
        self.current = None;
        Ok(())
    }
}

/// Draws `count` gSDE matrices `W ~ N(0, exp(log_std)²)`, flattened.
pub(crate) fn draw_exploration(log_std: &Tensor, count: usize, rng: &mut StdRng) -> Vec<f32> {
    let std = to_vec(&log_std.exp());
    (0..count).flat_map(|_| std.iter().map(|s| s * rng.sample::<f32, _>(StandardNormal)).collect::<Vec<_>>()).collect()
}

/// The index of the largest value (the first on ties, as `argmax`).
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
