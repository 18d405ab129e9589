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
use super::state::agent_state;
use super::{
    Agent, AgentConfig, AgentError, Algo, Distill, Event, Monitor, Outcome, Schedule, check, obs_dim, report,
    rows, snapshot, sorted_variables, to_vec,
};
use crate::env::{Action, Space, VecEnv};
use super::distributions::{LOG_SQRT_2PI, argmax, draw_exploration};
use super::nn::{Mlp, MlpConfig};
use super::MAX_ROWS;


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
        check(
            "n_steps",
            self.n_steps.saturating_mul(self.n_envs) <= MAX_ROWS,
            &format!("n_steps * n_envs (one rollout) must be at most {MAX_ROWS}"),
        )?;
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
    action_space: Space,
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
    teacher: Option<Teacher>,
}

/// A frozen copy of the actor to distil from.
struct Teacher {
    _vs: nn::VarStore,
    actor: Mlp,
    log_std: Option<Tensor>,
    distill: Distill,
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
        let (actor, critic, log_std) = super::nn::with_seed(seed, || {
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
            action_space: action_space.clone(),
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
            teacher: None,
            cfg,
        })
    }

    /// The distillation teacher and its weight now, while the weight is above zero.
    fn active_teacher(&self) -> Option<(&Teacher, f64)> {
        let teacher = self.teacher.as_ref()?;
        let w = teacher.distill.weight_at(self.steps);
        (w > 0.0).then_some((teacher, w))
    }

    /// `w * mean KL(π_teacher ‖ π)` over rows `obs`, as an autograd graph.
    fn distill_loss(&self, obs: &Tensor) -> Option<Tensor> {
        let (teacher, w) = self.active_teacher()?;
        let (t_features, t_out) = tch::no_grad(|| {
            let f = teacher.actor.features(obs);
            let out = teacher.actor.head_forward(&f);
            (f, out)
        });
        let features = self.actor.features(obs);
        let out = self.actor.head_forward(&features);
        let kl = match &self.head {
            Head::Categorical { .. } => {
                let (lp_t, lp_s) = (t_out.log_softmax(-1, Kind::Float), out.log_softmax(-1, Kind::Float));
                (lp_t.exp() * (lp_t - lp_s)).sum_dim_intlist(-1, false, Kind::Float)
            }
            Head::Gaussian { sde, .. } => {
                let (ls_s, ls_t) = (self.log_std.as_ref().expect("Gaussian head"), teacher.log_std.as_ref().expect("Gaussian head"));
                let (var_s, var_t) = if *sde {
                    (
                        features.detach().square().matmul(&ls_s.exp().square()) + 1e-6,
                        t_features.square().matmul(&ls_t.exp().square()) + 1e-6,
                    )
                } else {
                    ((ls_s * 2.0).exp().expand_as(&out), (ls_t * 2.0).exp().expand_as(&out))
                };
                ((var_s.log() - var_t.log() + (&var_t + (&t_out - &out).square()) / &var_s - 1.0) * 0.5)
                    .sum_dim_intlist(-1, false, Kind::Float)
            }
        };
        Some(kl.mean(Kind::Float) * w)
    }

    /// Adds the gradient of [`Ppo::distill_loss`] with respect to the actor's outputs (`out`,
    /// `[b, out_dim]`) and plain Gaussian `log_std` to `g_out` and `g_log_std`.
    fn distill_gradients(&self, obs: &Tensor, out: &[f32], g_out: &mut [f32], g_log_std: &mut [f64]) {
        let Some((teacher, w)) = self.active_teacher() else { return };
        let t_out = to_vec(&tch::no_grad(|| teacher.actor.forward(obs)));
        let dim = g_out.len() / obs.size()[0] as usize;
        let scale = w / (out.len() / dim) as f64;
        match &self.head {
            Head::Categorical { .. } => {
                let softmax = |z: &[f32]| -> Vec<f64> {
                    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    e.into_iter().map(|v| v / sum).collect()
                };
                for ((g, s), t) in g_out.chunks_exact_mut(dim).zip(out.chunks_exact(dim)).zip(t_out.chunks_exact(dim)) {
                    let (p_s, p_t) = (softmax(s), softmax(t));
                    for k in 0..dim {
                        g[k] += (scale * (p_s[k] - p_t[k])) as f32;
                    }
                }
            }
            Head::Gaussian { .. } => {
                let ls_s = to_vec(self.log_std.as_ref().expect("Gaussian head"));
                let ls_t = to_vec(teacher.log_std.as_ref().expect("Gaussian head"));
                for ((g, s), t) in g_out.chunks_exact_mut(dim).zip(out.chunks_exact(dim)).zip(t_out.chunks_exact(dim)) {
                    for j in 0..dim {
                        let var_s = (2.0 * ls_s[j] as f64).exp();
                        let var_t = (2.0 * ls_t[j] as f64).exp();
                        let diff = s[j] as f64 - t[j] as f64;
                        g[j] += (scale * diff / var_s) as f32;
                        g_log_std[j] += scale * (1.0 - (var_t + diff * diff) / var_s);
                    }
                }
            }
        }
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
            stopped |= report(monitor, self.steps, step.episodes);
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
                    true,
                    Kind::Float,
                );
                let entropy =
                    need_entropy.then(|| (var.log() * 0.5 + 0.5 + LOG_SQRT_2PI).sum_dim_intlist(-1, true, Kind::Float));
                (lp, entropy)
            }
            Head::Gaussian { .. } => {
                let log_std = self.log_std.as_ref().expect("Gaussian head has log_std");
                let z = (actions - &out) * (-log_std).exp();
                let lp = (z.square() * -0.5 - log_std - LOG_SQRT_2PI).sum_dim_intlist(-1, true, Kind::Float);
                let entropy = need_entropy.then(|| (log_std + 0.5 + LOG_SQRT_2PI).sum(Kind::Float));
                (lp, entropy)
            }
        }
    }

    /// The rows `index` of a rollout (all rows when `None`), advantages normalised in Rust when
    /// configured.
    fn minibatch(&self, r: &Rollout, adv: &[f32], returns: &[f32], index: Option<&[usize]>) -> Minibatch {
        let all: Vec<usize>;
        let index = match index {
            Some(index) => index,
            None => {
                all = (0..r.rewards.len()).collect();
                &all
            }
        };
        let d = self.obs_dim;
        let width = r.actions.len() / r.rewards.len();
        let pick = |v: &[f32], w: usize| -> Vec<f32> {
            index.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect()
        };
        let mut advantages = pick(adv, 1);
        if self.cfg.normalize_advantage && advantages.len() > 1 {
            let n = advantages.len() as f64;
            let m = advantages.iter().map(|&a| a as f64).sum::<f64>() / n;
            let var = advantages.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
            let scale = 1.0 / (var.sqrt() + 1e-8);
            advantages.iter_mut().for_each(|a| *a = ((*a as f64 - m) * scale) as f32);
        }
        Minibatch {
            obs: rows(&pick(&r.obs, d), d),
            actions: pick(&r.actions, width),
            old_log_probs: pick(&r.log_probs, 1),
            old_values: pick(&r.values, 1),
            advantages,
            returns: pick(returns, 1),
        }
    }

    /// The PPO loss of a minibatch as an autograd graph, and the approximate KL divergence
    /// from the rollout's policy.
    fn loss(&self, mb: &Minibatch, clip: f64) -> (Tensor, f64) {
        let n = mb.len() as i64;
        let column = |v: &[f32]| Tensor::from_slice(v).view([n, 1]);
        let actions = match self.head {
            Head::Categorical { .. } => {
                Tensor::from_slice(&mb.actions.iter().map(|&a| a as i64).collect::<Vec<i64>>()).view([n, 1])
            }
            Head::Gaussian { dim, .. } => rows(&mb.actions, dim),
        };
        let (advantages, old_values) = (column(&mb.advantages), column(&mb.old_values));
        let (log_prob, entropy) = self.evaluate_actions(&mb.obs, &actions, self.cfg.ent_coef != 0.0);
        let log_ratio = &log_prob - column(&mb.old_log_probs);
        let ratio = log_ratio.exp();
        let surrogate = (&advantages * &ratio).min_other(&(&advantages * ratio.clamp(1.0 - clip, 1.0 + clip)));
        let values = self.critic.forward(&mb.obs);
        let values = match self.cfg.clip_range_vf {
            Some(c) => &old_values + (&values - &old_values).clamp(-c, c),
            None => values,
        };
        let value_loss = values.mse_loss(&column(&mb.returns), tch::Reduction::Mean);
        let mut loss = value_loss * self.cfg.vf_coef - surrogate.mean(Kind::Float);
        if let Some(entropy) = entropy {
            loss -= entropy.mean(Kind::Float) * self.cfg.ent_coef;
        }
        if let Some(distill) = self.distill_loss(&mb.obs) {
            loss += distill;
        }
        let kl = tch::no_grad(|| ((&ratio - 1.0) - &log_ratio).mean(Kind::Float).double_value(&[]));
        (loss, kl)
    }

    /// The gradient of the same loss computed by hand, written into the optimiser's gradient
    /// buffer: two forward passes without autograd, the loss's derivatives with respect to the
    /// networks' outputs in Rust, and each network's backward pass as a few matrix products
    /// ([`Mlp::backward`]). Returns the approximate KL divergence. Categorical and plain Gaussian
    /// policies only (gSDE takes the autograd path).
    fn manual_gradients(&mut self, mb: &Minibatch, clip: f64) -> f64 {
        let (out_t, actor_acts) = self.actor.forward_cached(&mb.obs);
        let (values_t, critic_acts) = self.critic.forward_cached(&mb.obs);
        let (out, values) = (to_vec(&out_t), to_vec(&values_t));
        let b = mb.len();
        let inv_b = 1.0 / b as f64;
        let ent_coef = self.cfg.ent_coef;
        let mut g_out = vec![0.0f32; out.len()];
        let mut kl = 0.0;
        // d(policy loss)/d(log-prob) for row i, given its log-prob.
        let mut d_log_prob = |i: usize, lp: f64| {
            let log_ratio = lp - mb.old_log_probs[i] as f64;
            let ratio = log_ratio.exp();
            kl += (ratio - 1.0) - log_ratio;
            let adv = mb.advantages[i] as f64;
            if adv * ratio <= adv * ratio.clamp(1.0 - clip, 1.0 + clip) { -adv * ratio * inv_b } else { 0.0 }
        };
        let mut g_log_std = Vec::new();
        match &self.head {
            Head::Categorical { n } => {
                let n = *n;
                let mut log_p = vec![0.0f64; n];
                for i in 0..b {
                    let z = &out[i * n..(i + 1) * n];
                    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                    log_p.iter_mut().zip(z).for_each(|(l, &v)| *l = v as f64 - lse);
                    let a = mb.actions[i] as usize;
                    let d = d_log_prob(i, log_p[a]);
                    let entropy: f64 = -log_p.iter().map(|l| l.exp() * l).sum::<f64>();
                    for k in 0..n {
                        let p = log_p[k].exp();
                        let one_hot = if k == a { 1.0 } else { 0.0 };
                        g_out[i * n + k] = (d * (one_hot - p) + ent_coef * inv_b * p * (log_p[k] + entropy)) as f32;
                    }
                }
            }
            Head::Gaussian { dim, .. } => {
                let dim = *dim;
                let log_std: Vec<f64> = to_vec(self.log_std.as_ref().expect("Gaussian head has log_std"))
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                g_log_std = vec![-ent_coef; dim];
                for i in 0..b {
                    let mut lp = 0.0;
                    let mut z = vec![0.0f64; dim];
                    for j in 0..dim {
                        z[j] = (mb.actions[i * dim + j] as f64 - out[i * dim + j] as f64) * (-log_std[j]).exp();
                        lp += -0.5 * z[j] * z[j] - log_std[j] - LOG_SQRT_2PI;
                    }
                    let d = d_log_prob(i, lp);
                    for j in 0..dim {
                        g_out[i * dim + j] = (d * z[j] * (-log_std[j]).exp()) as f32;
                        g_log_std[j] += d * (z[j] * z[j] - 1.0);
                    }
                }
            }
        }
        self.distill_gradients(&mb.obs, &out, &mut g_out, &mut g_log_std);
        let mut g_values = vec![0.0f32; b];
        for i in 0..b {
            let (v, old) = (values[i] as f64, mb.old_values[i] as f64);
            let (v, pass) = match self.cfg.clip_range_vf {
                Some(c) => (old + (v - old).clamp(-c, c), (v - old).abs() <= c),
                None => (v, true),
            };
            if pass {
                g_values[i] = (self.cfg.vf_coef * 2.0 * (v - mb.returns[i] as f64) * inv_b) as f32;
            }
        }
        let out_dim = (out.len() / b) as i64;
        let mut sink = self.opt.gradient_views();
        self.actor.backward(&actor_acts, &Tensor::from_slice(&g_out).view([b as i64, out_dim]), &mut sink);
        self.critic.backward(&critic_acts, &Tensor::from_slice(&g_values).view([b as i64, 1]), &mut sink);
        if let Some(log_std) = &self.log_std
            && let Some(mut view) = sink(log_std)
        {
            let g: Vec<f32> = g_log_std.iter().map(|&g| g as f32).collect();
            tch::no_grad(|| view.copy_(&Tensor::from_slice(&g)));
        }
        kl * inv_b
    }

    fn update(&mut self, r: &Rollout, last_values: &[f32], progress: f64) -> Result<(), AgentError> {
        self.opt.advance(self.steps);
        let (adv, returns) = self.advantages(r, last_values);
        let len = r.rewards.len();
        let lr = self.cfg.learning_rate.at(progress);
        let clip = self.cfg.clip_range.at(progress);
        let batch = self.cfg.batch_size.min(len);
        let manual = !self.uses_sde();
        // One minibatch spanning the rollout is the same every epoch: build it once.
        let whole = (batch == len).then(|| self.minibatch(r, &adv, &returns, None));
        let mut order: Vec<usize> = (0..len).collect();
        for _ in 0..self.cfg.n_epochs {
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
                let kl = if manual {
                    self.manual_gradients(mb, clip)
                } else {
                    let (loss, kl) = self.loss(mb, clip);
                    self.opt.compute_gradients(&loss);
                    kl
                };
                // As Stable-Baselines3: stop the update before a step that follows too large a
                // policy change.
                if self.cfg.target_kl.is_some_and(|target| kl > 1.5 * target) {
                    return Ok(());
                }
                self.opt.step_with_gradients(lr, Some(self.cfg.max_grad_norm));
            }
        }
        Ok(())
    }
}

/// One minibatch: observations as a tensor, the rest as rows in Rust.
struct Minibatch {
    obs: Tensor,
    actions: Vec<f32>,
    old_log_probs: Vec<f32>,
    old_values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

impl Minibatch {
    fn len(&self) -> usize {
        self.returns.len()
    }
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
        super::check_envs(envs, self.cfg.n_envs, self.obs_dim, &self.action_space)?;
        while self.steps < total {
            let Some((rollout, last_values)) = self.collect(envs, monitor)? else {
                return Ok(Outcome::Stopped);
            };
            let progress = self.steps as f64 / total as f64;
            self.update(&rollout, &last_values, progress)?;
            if monitor(Event::Checkpoint { step: self.steps }).is_break() {
                return Ok(Outcome::Stopped);
            }
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

    agent_state!(vs, "optim": opt, "obs_rms": obs_norm, "ret_rms": rew_norm);

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Adam)> {
        vec![("optim", &mut self.opt)]
    }

    fn set_teacher(&mut self, distill: Distill) -> Result<(), AgentError> {
        let out = match &self.head {
            Head::Categorical { n } => *n,
            Head::Gaussian { dim, .. } => *dim,
        };
        let (cfg, obs_dim) = (&self.cfg, self.obs_dim);
        let log_std_shape = self.log_std.as_ref().map(|t| t.size());
        let (vs, (actor, log_std)) = snapshot(&self.vs, "actor.", |root| {
            let actor = Mlp::new(&(root / "actor"), &cfg.net, obs_dim, out, 0.01);
            let log_std = log_std_shape.map(|shape| (root / "actor").var("log_std", &shape, nn::Init::Const(0.0)));
            (actor, log_std)
        });
        self.teacher = Some(Teacher { _vs: vs, actor, log_std, distill });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EnvSpec, Registry};

    /// The hand-written gradient equals autograd's, for a discrete and a continuous policy,
    /// with clipping, value clipping and the entropy bonus all active, without and with a
    /// distillation teacher (a copy of the actor taken before its weights were perturbed).
    #[test]
    fn manual_gradients_match_autograd() {
        for (env_id, with_teacher) in
            [("CartPole-v1", false), ("Pendulum-v1", false), ("CartPole-v1", true), ("Pendulum-v1", true)]
        {
            let env = Registry::builtin().make(&EnvSpec::new(env_id)).unwrap();
            let cfg = PpoConfig { ent_coef: 0.05, clip_range_vf: Some(0.1), ..Default::default() };
            let mut ppo = Ppo::new(cfg, env.observation_space(), env.action_space(), 1).unwrap();
            if with_teacher {
                ppo.set_teacher(Distill { weight: 2.0, decay_steps: 100 }).unwrap();
                tch::no_grad(|| {
                    for (name, mut t) in ppo.vs.variables() {
                        if name.starts_with("actor.") {
                            let _ = t.g_add_(&(t.randn_like() * 0.3));
                        }
                    }
                });
                assert!(ppo.distill_loss(&Tensor::zeros([2, ppo.obs_dim as i64], tch::kind::FLOAT_CPU)).is_some());
            }
            let mut rng = StdRng::seed_from_u64(2);
            let b = 64;
            let obs: Vec<f32> = (0..b * ppo.obs_dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let (out, _) = ppo.policy_out(&obs);
            let (mut actions, mut log_probs) = (Vec::new(), Vec::new());
            ppo.sample(&out, &[], &mut actions, &mut log_probs);
            // Old log-probs away from the current ones, so that some ratios leave the clip range.
            let old_log_probs = log_probs.iter().map(|lp| lp + rng.random_range(-0.5..0.5)).collect();
            let mb = Minibatch {
                obs: rows(&obs, ppo.obs_dim),
                actions,
                old_log_probs,
                old_values: (0..b).map(|_| rng.random_range(-1.0..1.0)).collect(),
                advantages: (0..b).map(|_| rng.random_range(-2.0..2.0)).collect(),
                returns: (0..b).map(|_| rng.random_range(-1.0..1.0)).collect(),
            };
            let (loss, kl_auto) = ppo.loss(&mb, 0.2);
            ppo.opt.compute_gradients(&loss);
            let auto = ppo.opt.gradients().copy();
            let kl_manual = ppo.manual_gradients(&mb, 0.2);
            let manual = ppo.opt.gradients().copy();
            let err = (&auto - &manual).abs().max().double_value(&[]);
            let scale = auto.abs().max().double_value(&[]);
            assert!(scale > 1e-3, "{env_id}: gradients vanish");
            assert!(err <= 1e-4 * scale.max(1.0), "{env_id}: max difference {err} (largest gradient {scale})");
            assert!((kl_auto - kl_manual).abs() < 1e-5, "{env_id}: kl {kl_auto} vs {kl_manual}");
        }
    }
}
