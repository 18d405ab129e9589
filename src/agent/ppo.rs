//! Proximal Policy Optimisation (Schulman et al. 2017) as Stable-Baselines3 implements it:
//! vectorised rollouts, GAE, the clipped surrogate, an optionally clipped value loss, an entropy
//! bonus, per-minibatch advantage normalisation, gradient clipping and linear schedules.
//! Truncated episodes are bootstrapped from the value of their final observation; terminated
//! ones are not.
//!
//! ```text
//! until the step budget is spent:
//!     collect n_steps × n_envs transitions with the current policy      (ppo/rollout.rs)
//!     advantages and returns by GAE(γ, λ)                                (ppo/rollout.rs)
//!     scheduled guidance takes effect (Adam::advance)
//!     for each of n_epochs epochs, for each shuffled minibatch:
//!         gradient of the clipped loss (+ distillation), by hand or by autograd (ppo/loss.rs)
//!         stop the update when the approximate KL exceeds 1.5 × target_kl
//!         Adam step with the gradient clipped to max_grad_norm
//!     Event::Checkpoint
//! ```
//!
//! Speed: acting runs without autograd on one `[num_envs, obs_dim]` tensor per step and samples
//! in Rust from the copied-out logits or means (one copy per step, no libtorch round trips);
//! a minibatch that spans the whole rollout skips the gathers; categorical and plain Gaussian
//! policies take the hand-written gradient (gSDE takes autograd's). Acting and the hand-written
//! gradient run the actor and the critic in the project's engine ([`Net`]: the same bits on
//! every CPU); the gSDE path differentiates the libtorch modules with autograd.

mod config;
mod loss;
mod rollout;
mod tasks;

pub use config::PpoConfig;
pub use tasks::TaskNets;

use std::borrow::Cow;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tch::Tensor;
use tch::nn;

use super::distributions::{
    argmax, categorical_probs, categorical_sample, draw_exploration, gaussian_sample, gsde_noise_only,
};
use super::engine::Net;
use super::nn::Mlp;
use super::normalize::{ObsNormalizer, RewardNormalizer};
use super::optim::Optimizer;
use super::intrinsic::Intrinsic;
use super::state::{agent_state, training_state};
use super::stats::TrainStats;
use super::{
    Agent, AgentConfig, AgentError, Algo, Distill, Event, Monitor, Outcome, advance_guidance, obs_dim,
    rows, sorted_variables, to_vec, update_stats, variable_names,
};
use crate::env::{Action, Space, VecEnv};
use loss::Teacher;
use rollout::Rollout;

/// What the actor's and the critic's heads read for `rows` rows `obs`: the shared trunk's
/// features (its parameters in `params`), or without one the rows themselves.
fn heads_input<'a>(shared: Option<&Net>, params: &[f32], obs: &'a [f32], rows: usize) -> Cow<'a, [f32]> {
    match shared {
        Some(net) => Cow::Owned(net.infer(params, obs, rows)),
        None => Cow::Borrowed(obs),
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
    /// With `share_trunk`, the trunk the two heads read (`shared.*`).
    shared: Option<Mlp>,
    actor: Mlp,
    critic: Mlp,
    /// The actor and the critic in the engine, over the optimiser's buffer: acting, values and
    /// the hand-written gradient (with `share_trunk`, their heads).
    nets: [Net; 2],
    /// The shared trunk in the engine.
    shared_net: Option<Net>,
    /// Where `actor.log_std` lives in the optimiser's buffer (Gaussian heads).
    log_std_offset: Option<usize>,
    /// `actor.log_std`: `[act_dim]` for the Gaussian head, `[features, act_dim]` with gSDE.
    log_std: Option<Tensor>,
    /// The gSDE exploration matrices in use, one `[features, act_dim]` per environment.
    exploration: Vec<f32>,
    opt: Optimizer,
    obs_norm: Option<ObsNormalizer>,
    rew_norm: Option<RewardNormalizer>,
    /// The intrinsic reward of a reward-free agent (see [`Objective`]).
    intrinsic: Option<Intrinsic>,
    rng: super::AgentRng,
    steps: u64,
    /// The (normalised) observations to act on next and which environments just started an
    /// episode; `None` until the first call to `learn`.
    current: Option<(Vec<f32>, Vec<f32>)>,
    teacher: Option<Teacher>,
    /// The updates' scalars until the loop reports them.
    stats: TrainStats,
    /// Set when this agent is an A2C (see [`super::a2c`]): its configuration, which
    /// [`Agent::config`] reports.
    a2c: Option<super::A2cConfig>,
}

impl Ppo {
    /// A PPO agent for these spaces (Discrete or Box actions), its networks seeded with `seed`.
    pub fn new(cfg: PpoConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        cfg.validate()?;
        Self::build(cfg, None, obs_space, action_space, seed)
    }

    /// The agent: PPO's, or with `a2c` the A2C that PPO's machinery runs ([`Ppo::a2c`]).
    pub(super) fn build(
        mut cfg: PpoConfig,
        a2c: Option<super::A2cConfig>,
        obs_space: &Space,
        action_space: &Space,
        seed: u64,
    ) -> Result<Self, AgentError> {
        let algo = if a2c.is_some() { Algo::A2c } else { Algo::Ppo };
        cfg.net = cfg.net.for_observation(obs_space, cfg.tasks.is_some() || cfg.objective.skills() > 0)?;
        super::check(
            "net.hidden",
            !cfg.share_trunk || cfg.net.parts.is_empty() || !cfg.net.hidden.is_empty(),
            "a trunk shared over a dictionary observation's parts needs a hidden layer to join them",
        )?;
        // The networks read the observation and, with DIAYN, the skill as one-hot features.
        let env_dim = obs_dim(algo, obs_space)?;
        let obs_dim = env_dim + cfg.objective.skills();
        let head = match action_space {
            Space::Discrete { n } => Head::Categorical { n: *n },
            _ => {
                let (low, high) = super::box_bounds(algo, action_space)?;
                Head::Gaussian { dim: low.len(), low, high, sde: cfg.use_sde }
            }
        };
        let out = match &head {
            Head::Categorical { n } => *n,
            Head::Gaussian { dim, .. } => *dim,
        };
        if let Some(tasks) = &cfg.tasks {
            tasks.check_spaces(env_dim, out)?;
        }
        cfg.net.check_size(obs_dim, out.max(1))?;
        let critic_net = cfg.critic_net();
        critic_net.check_size(obs_dim, 1)?;
        let latent = cfg.net.hidden.last().copied().unwrap_or_else(|| cfg.net.trunk_inputs(obs_dim));
        // With a shared trunk, the actor and the critic are heads reading its features.
        let (actor_net, critic_net, heads_read) = match cfg.share_trunk {
            true => (cfg.head_net(), cfg.head_net(), latent),
            false => (cfg.net.clone(), critic_net, obs_dim),
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (shared, actor, critic, log_std) = super::nn::with_seed(seed, || {
            let root = vs.root();
            let shared = cfg.share_trunk.then(|| Mlp::torso(&(&root / "shared"), &cfg.net, obs_dim));
            let actor = Mlp::new(&(&root / "actor"), &actor_net, heads_read, out, 0.01);
            let critic = Mlp::new(&(&root / "critic"), &critic_net, heads_read, 1, 1.0);
            let log_std = match head {
                Head::Gaussian { dim, sde, .. } => {
                    let shape = if sde { vec![latent as i64, dim as i64] } else { vec![dim as i64] };
                    Some((&root / "actor").var("log_std", &shape, nn::Init::Const(cfg.log_std_init)))
                }
                Head::Categorical { .. } => None,
            };
            (shared, actor, critic, log_std)
        });
        // A2C's RMSprop, or Adam with SB3's ε for actor-critic policies.
        let opt = match &a2c {
            Some(a) if a.use_rms_prop => Optimizer::rms_prop(sorted_variables(&vs), 0.99, a.rms_prop_eps),
            _ => Optimizer::adam(sorted_variables(&vs), 1e-5),
        };
        let nets = [("actor", &actor_net), ("critic", &critic_net)].map(|(name, net)| {
            opt.params().mlp(name, net).expect("the networks' parameters")
        });
        let shared_net =
            cfg.share_trunk.then(|| opt.params().torso("shared", &cfg.net).expect("the shared trunk's parameters"));
        let log_std_offset = opt.params().slot("actor.log_std").map(|(offset, _)| offset);
        let mut obs_norm = cfg.normalize_obs.then(|| ObsNormalizer::new(env_dim));
        if let (Some(norm), Some(tasks)) = (&mut obs_norm, &cfg.tasks) {
            norm.keep_last = tasks.len();
        }
        // A reward-free agent never reads the task's reward, so it has no statistics of it.
        let rew_norm =
            (cfg.normalize_reward && cfg.objective.is_reward()).then(|| RewardNormalizer::new(cfg.n_envs, cfg.gamma));
        let intrinsic = Intrinsic::new(&cfg.objective, env_dim, cfg.n_envs, cfg.gamma, seed);
        Ok(Ppo {
            action_space: action_space.clone(),
            seed,
            obs_dim,
            head,
            vs,
            shared,
            actor,
            critic,
            nets,
            shared_net,
            log_std_offset,
            log_std,
            exploration: Vec::new(),
            opt,
            obs_norm,
            rew_norm,
            intrinsic,
            rng: super::AgentRng::seed_from_u64(seed),
            steps: 0,
            current: None,
            teacher: None,
            stats: TrainStats::default(),
            a2c,
            cfg,
        })
    }

    /// What the actor and the critic read for rows `obs`: the shared trunk's features, or the
    /// rows themselves.
    fn heads_input<'a>(&self, obs: &'a [f32]) -> Cow<'a, [f32]> {
        heads_input(self.shared_net.as_ref(), self.opt.params().values(), obs, obs.len() / self.obs_dim)
    }

    /// The actor's outputs for rows: logits or means `[n, out]`, and with gSDE the features.
    fn policy_out(&self, obs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        self.policy_of(&self.heads_input(obs), obs)
    }

    /// [`Ppo::policy_out`] from the heads' input `x` of rows `obs`.
    fn policy_of(&self, x: &[f32], obs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let pass = self.nets[0].forward(self.opt.params().values(), x, obs.len() / self.obs_dim);
        let features = match self.uses_sde() {
            true => self.nets[0].features(&pass, x).to_vec(),
            false => Vec::new(),
        };
        let mut out = pass.into_output();
        self.mask_logits(obs, &mut out);
        (out, features)
    }

    /// [`Ppo::policy_out`] and the values of the same rows (a shared trunk run once for both).
    fn policy_and_values(&self, obs: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = self.heads_input(obs);
        let (out, features) = self.policy_of(&x, obs);
        (out, features, self.values_of(&x, obs.len() / self.obs_dim))
    }

    fn uses_sde(&self) -> bool {
        matches!(self.head, Head::Gaussian { sde: true, .. })
    }

    /// `actor.log_std` of a Gaussian head.
    fn log_std(&self) -> &Tensor {
        self.log_std.as_ref().expect("Gaussian head has log_std")
    }

    fn values(&self, obs: &[f32]) -> Vec<f32> {
        self.values_of(&self.heads_input(obs), obs.len() / self.obs_dim)
    }

    /// The critic's values from the heads' input `x` of `rows` rows.
    fn values_of(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.nets[1].infer(self.opt.params().values(), x, rows)
    }

    fn normalize(&self, obs: &mut [f32]) {
        if let Some(norm) = &self.obs_norm {
            norm.apply(obs);
            self.zero_other_blocks(obs);
        }
    }

    fn update(&mut self, r: &Rollout, last_values: &[f32], progress: f64) -> Result<(), AgentError> {
        advance_guidance(self, self.steps);
        let (adv, returns) = self.advantages(r, last_values);
        let len = r.rewards.len();
        let lr = self.cfg.learning_rate.at(progress);
        let clip = self.cfg.clip_range.at(progress);
        let batch = self.cfg.batch_size.min(len);
        let manual = !self.uses_sde();
        self.record_rollout(r, &returns, lr, clip);
        // One minibatch spanning the rollout is the same every epoch: build it once.
        let whole = (batch == len).then(|| self.minibatch(r, &adv, &returns, None));
        if let Some(intrinsic) = &mut self.intrinsic {
            intrinsic.train(&r.next_raw, &r.skills, self.cfg.n_epochs, batch, &mut self.rng);
        }
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
                let terms = if manual {
                    self.manual_gradients(mb, clip)
                } else {
                    let (loss, terms) = self.loss(mb, clip);
                    self.opt.compute_gradients(&loss);
                    terms
                };
                terms.record(&self.cfg, self.a2c.is_some(), &mut self.stats);
                // As Stable-Baselines3: stop the update before a step that follows too large a
                // policy change.
                if self.cfg.target_kl.is_some_and(|target| terms.kl > 1.5 * target) {
                    return Ok(());
                }
                self.opt.step_with_gradients(lr, Some(self.cfg.max_grad_norm));
                self.stats.add_grad_norm(&self.opt, "train/grad_norm");
            }
        }
        Ok(())
    }
}

impl Agent for Ppo {
    fn config(&self) -> AgentConfig {
        match &self.a2c {
            Some(a2c) => AgentConfig::A2c(a2c.clone()),
            None => AgentConfig::Ppo(self.cfg.clone()),
        }
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn learn(&mut self, envs: &mut VecEnv, total: u64, monitor: &mut Monitor<'_>) -> Result<Outcome, AgentError> {
        super::check_envs(envs, self.cfg.n_envs, self.env_dim(), &self.action_space)?;
        while self.steps < total {
            let Some((rollout, last_values)) = self.collect(envs, monitor)? else {
                return Ok(Outcome::Stopped);
            };
            let progress = self.steps as f64 / total as f64;
            self.update(&rollout, &last_values, progress)?;
            let stats = self.stats.take();
            let stats = update_stats(self, stats);
            if monitor(Event::Update { step: self.steps, stats: &stats }).is_break()
                || monitor(Event::Checkpoint { step: self.steps }).is_break() {
                return Ok(Outcome::Stopped);
            }
        }
        Ok(Outcome::Finished)
    }

    fn act(&self, obs: &[f32], deterministic: bool, rng: &mut StdRng) -> Vec<Action> {
        let obs = self.acting_input(obs);
        let (out, features) = self.policy_out(&obs);
        let values: Vec<f32> = match &self.head {
            Head::Categorical { n } => out
                .chunks_exact(*n)
                .map(|logits| if deterministic { argmax(logits) } else { categorical_sample(logits, rng).0 } as f32)
                .collect(),
            _ if deterministic => out,
            Head::Gaussian { dim, sde: true, .. } => {
                let w = draw_exploration(&to_vec(self.log_std()), 1, rng);
                let latent = self.log_std().size()[0] as usize;
                let noise = gsde_noise_only(&features, &w, latent, *dim);
                out.iter().zip(noise).map(|(m, e)| (*m as f64 + e) as f32).collect()
            }
            Head::Gaussian { .. } => {
                let mut values = Vec::with_capacity(out.len());
                gaussian_sample(&out, &to_vec(self.log_std()), rng, &mut values);
                values
            }
        };
        self.env_actions(&values)
    }

    fn outputs(&self, obs: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
        let obs = self.acting_input(obs);
        let (out, features, values) = self.policy_and_values(&obs);
        let value = ("value", values);
        match &self.head {
            Head::Categorical { n } => {
                let probs = out.chunks_exact(*n).flat_map(categorical_probs).map(|p| p as f32).collect();
                vec![("probs", probs), value]
            }
            Head::Gaussian { dim, sde, .. } => {
                let std = tch::no_grad(|| match sde {
                    // gSDE: the variance of features · W, W ~ N(0, exp(log_std)²), plus 1e-6.
                    true => {
                        let latent = self.log_std().size()[0] as usize;
                        let f = rows(&features, latent);
                        to_vec(&(f.square().matmul(&self.log_std().exp().square()) + 1e-6).sqrt())
                    }
                    false => to_vec(&self.log_std().exp().expand([(out.len() / dim) as i64, *dim as i64], false)),
                });
                vec![("mean", out), ("std", std), value]
            }
        }
    }

    fn load_normalizers(&mut self, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        use super::state::StatePart;
        self.obs_norm.load("obs_rms", get)?;
        self.rew_norm.load("ret_rms", get)
    }

    agent_state!(vs, "optim": opt, "obs_rms": obs_norm, "ret_rms": rew_norm, "": intrinsic);
    training_state!(rng, current, exploration, rew_norm, intrinsic);

    fn weight_names(&self) -> Vec<String> {
        variable_names(&self.vs)
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![("optim", &mut self.opt)]
    }

    fn set_teacher(&mut self, distill: Distill) -> Result<(), AgentError> {
        self.install_teacher(distill);
        Ok(())
    }
}
