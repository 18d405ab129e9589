//! Soft Actor-Critic (Haarnoja et al. 2018) as Stable-Baselines3 implements it: twin Q networks
//! with Polyak-averaged targets, a tanh-squashed Gaussian actor with the change-of-variables
//! correction `log π(a) = log N(u) - Σ log(1 - tanh(u)² + 1e-6)`, automatic entropy tuning
//! towards `-dim(A)`, and actions rescaled from `[-1, 1]` to the space's bounds.
//!
//! With `use_sde`, exploration is generalised state-dependent (gSDE, Raffin et al. 2022): the
//! noise is `features(s) · W`, with `W ~ N(0, σ²)` a `[features, actions]` matrix redrawn every
//! `sde_sample_freq` steps (or once per rollout), so that exploration is smooth in time; this is
//! what solves MountainCarContinuous-v0.
//!
//! Noise is drawn in Rust from the agent's generator. With a `log σ` head (every preset but
//! MountainCarContinuous's gSDE) the networks run in the engine (`agent::engine`: the same bits on
//! every CPU) for acting and the hand-written gradient step; gSDE's step keeps autograd on the
//! libtorch modules.

mod actor;
mod update;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module};

use super::MAX_ROWS;
use super::engine::{Net, math};
use super::nn::{Mlp, MlpConfig};
use super::off_policy::{self, OffPolicy, ProgressAt, Shape, StopAt};
use super::optim::{FlatParams, Optimizer};
use super::replay::ReplayBuffer;
use super::state::{agent_state, training_state};
use super::stats::TrainStats;
use super::{
    Agent, AgentConfig, AgentError, Algo, Distill, Monitor, Outcome, Schedule, box_bounds, check, check_envs, obs_dim,
    snapshot, sorted_variables, variable_names,
};
use crate::env::{Action, Space, VecEnv};
use actor::{Draw, Noise, Teacher};

/// The entropy coefficient: tuned automatically from an initial value, or fixed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum EntCoef {
    /// Tuned towards the target entropy, starting from this value.
    Auto(f64),
    /// Fixed at this value.
    Fixed(f64),
}

/// SAC's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Adam's learning rate (actor, critics and entropy coefficient).
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
    /// The entropy coefficient α.
    pub ent_coef: EntCoef,
    /// Defaults to `-dim(A)`.
    pub target_entropy: Option<f64>,
    /// Gradient steps between target updates.
    pub target_update_interval: usize,
    /// Generalised state-dependent exploration (gSDE) instead of a state-dependent `log σ` head.
    pub use_sde: bool,
    /// Steps between redraws of the gSDE matrix; `-1` redraws once per rollout.
    pub sde_sample_freq: i64,
    /// Initial log standard deviation of the gSDE weights.
    pub log_std_init: f64,
    /// Actor and critic networks.
    pub net: MlpConfig,
}

impl Default for SacConfig {
    fn default() -> Self {
        SacConfig {
            n_envs: 1,
            learning_rate: Schedule::Constant(3e-4),
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            ent_coef: EntCoef::Auto(1.0),
            target_entropy: None,
            target_update_interval: 1,
            use_sde: false,
            sde_sample_freq: -1,
            log_std_init: -3.0,
            net: MlpConfig::relu(&[256, 256]),
        }
    }
}

impl SacConfig {
    fn validate(&self) -> Result<(), AgentError> {
        check("n_envs", self.n_envs >= 1, "must be at least 1")?;
        check(
            "net.encoder",
            self.net.encoder.is_none(),
            "SAC's critics read the observation with the action: convolutional encoders are for PPO, A2C and DQN",
        )?;
        check("buffer_size", self.buffer_size >= 1, "must be at least 1")?;
        check("batch_size", (1..=MAX_ROWS).contains(&self.batch_size), &format!("must lie in [1, {MAX_ROWS}]"))?;
        check("train_freq", self.train_freq >= 1, "must be at least 1")?;
        check("target_update_interval", self.target_update_interval >= 1, "must be at least 1")?;
        check("tau", self.tau > 0.0 && self.tau <= 1.0, "must lie in (0, 1]")?;
        check("gamma", (0.0..=1.0).contains(&self.gamma), "must lie in [0, 1]")?;
        let coef = match self.ent_coef {
            EntCoef::Auto(v) | EntCoef::Fixed(v) => v,
        };
        check("ent_coef", coef > 0.0 && coef.is_finite(), "must be positive")?;
        check(
            "use_sde",
            !self.use_sde || self.net.added.is_empty(),
            "gSDE trains through libtorch's autograd, which added layers are not run through: use a log σ head",
        )?;
        self.net.validate()
    }
}

/// A SAC agent.
pub struct Sac {
    cfg: SacConfig,
    seed: u64,
    action_space: Space,
    obs_dim: usize,
    act_dim: usize,
    low: Vec<f32>,
    high: Vec<f32>,
    vs: nn::VarStore,
    actor: Mlp,
    noise: Noise,
    critics: [Mlp; 2],
    target_vs: nn::VarStore,
    targets: [Mlp; 2],
    /// The engine's networks: the actor (trunk and mean head) and its `log σ` head over
    /// `actor_opt`'s buffer, the critics over `critic_opt`'s, and the targets over
    /// `target_params` (laid out like the critics' buffer, so that a Polyak update is one pass).
    actor_net: Net,
    log_std_net: Option<Net>,
    critic_nets: [Net; 2],
    target_nets: [Net; 2],
    target_params: FlatParams,
    log_ent_coef: Tensor,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
    ent_opt: Option<Optimizer>,
    target_entropy: f64,
    buffer: ReplayBuffer,
    rng: super::AgentRng,
    steps: u64,
    gradient_steps: u64,
    current: Option<Vec<f32>>,
    teacher: Option<Teacher>,
    /// The gradient steps' scalars until the loop reports them.
    stats: TrainStats,
}

impl Sac {
    /// A SAC agent for these spaces (Box actions), its networks seeded with `seed`.
    pub fn new(cfg: SacConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        cfg.validate()?;
        let obs_dim = obs_dim(Algo::Sac, obs_space)?;
        let (low, high) = box_bounds(Algo::Sac, action_space)?;
        let act_dim = low.len();
        cfg.net.check_size(obs_dim + act_dim, act_dim.max(1))?;
        let latent = *cfg.net.hidden.last().unwrap_or(&obs_dim) as i64;
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut target_vs = nn::VarStore::new(tch::Device::Cpu);
        let init_coef = match cfg.ent_coef {
            EntCoef::Auto(v) | EntCoef::Fixed(v) => v,
        };
        let (actor, noise, critics, targets, log_ent_coef) = super::nn::with_seed(seed, || {
            let root = vs.root();
            let actor_path = &root / "actor";
            let actor = Mlp::new(&actor_path, &cfg.net, obs_dim, act_dim, 1.0);
            let noise = if cfg.use_sde {
                let log_std = actor_path.var("log_std", &[latent, act_dim as i64], nn::Init::Const(cfg.log_std_init));
                Noise::Sde { log_std, exploration: vec![0.0; latent as usize * act_dim] }
            } else {
                Noise::Head(super::nn::torch_linear(&actor_path / "log_std", latent as usize, act_dim))
            };
            let q_in = obs_dim + act_dim;
            let critic = |p: nn::Path, i: usize| Mlp::new(&(&p / format!("q{i}")), &cfg.net, q_in, 1, 1.0);
            let critics = [critic(&root / "critic", 0), critic(&root / "critic", 1)];
            let targets =
                [critic(target_vs.root() / "critic_target", 0), critic(target_vs.root() / "critic_target", 1)];
            let log_ent_coef = root.var("log_ent_coef", &[1], nn::Init::Const(init_coef.ln()));
            (actor, noise, critics, targets, log_ent_coef)
        });
        target_vs.freeze();
        let named = sorted_variables(&vs);
        let part = |prefix: &str| -> Vec<(String, Tensor)> {
            named.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
        };
        let actor_opt = Optimizer::adam(part("actor."), 1e-8);
        let critic_opt = Optimizer::adam(part("critic."), 1e-8);
        // The targets' parameters in one buffer laid out as the critics' (names sorted alike).
        let target_params = FlatParams::new(sorted_variables(&target_vs));
        let actor_net = actor_opt.params().mlp("actor", &cfg.net).expect("the actor's parameters");
        let log_std_net = match noise {
            Noise::Head(_) => Some(actor_opt.params().linear("actor.log_std").expect("the log σ head")),
            Noise::Sde { .. } => None,
        };
        let nets = |params: &FlatParams, prefix: &str| {
            [0, 1].map(|k| params.mlp(&format!("{prefix}.q{k}"), &cfg.net).expect("the critics' parameters"))
        };
        let critic_nets = nets(critic_opt.params(), "critic");
        let target_nets = nets(&target_params, "critic_target");
        let ent_opt = matches!(cfg.ent_coef, EntCoef::Auto(_)).then(|| Optimizer::adam(part("log_ent_coef"), 1e-8));
        if ent_opt.is_none() {
            let _ = log_ent_coef.shallow_clone().set_requires_grad(false);
        }
        let buffer = ReplayBuffer::new(cfg.buffer_size, obs_dim, act_dim);
        let mut sac = Sac {
            action_space: action_space.clone(),
            seed,
            obs_dim,
            act_dim,
            low,
            high,
            vs,
            actor,
            noise,
            critics,
            target_vs,
            targets,
            actor_net,
            log_std_net,
            critic_nets,
            target_nets,
            target_params,
            log_ent_coef,
            actor_opt,
            critic_opt,
            ent_opt,
            target_entropy: cfg.target_entropy.unwrap_or(-(act_dim as f64)),
            buffer,
            rng: super::AgentRng::seed_from_u64(seed),
            steps: 0,
            gradient_steps: 0,
            current: None,
            teacher: None,
            stats: TrainStats::default(),
            cfg,
        };
        sac.update_targets(1.0);
        Ok(sac)
    }

    /// Moves the targets towards the critics by `tau` (one pass over the flat buffers, which share
    /// a layout).
    fn update_targets(&mut self, tau: f64) {
        self.target_params.lerp_towards(self.critic_opt.params(), tau);
    }

    fn set_critics_trainable(&self, trainable: bool) {
        for (name, p) in sorted_variables(&self.vs) {
            if name.starts_with("critic.") {
                let _ = p.set_requires_grad(trainable);
            }
        }
    }

    fn q_values(nets: &[Mlp; 2], obs: &Tensor, actions: &Tensor) -> (Tensor, Tensor) {
        let x = Tensor::cat(&[obs, actions], 1);
        (nets[0].forward(&x), nets[1].forward(&x))
    }

    /// `[-1, 1]` actions to the space's bounds.
    fn to_env(&self, squashed: &[f32]) -> Vec<Action> {
        off_policy::to_bounds(squashed, &self.low, &self.high)
    }

    /// `steps` gradient steps at learning rate `lr` ([`Sac::gradient_step`]), the targets moving
    /// every `target_update_interval` gradient steps.
    fn updates(&mut self, steps: usize, lr: f64) {
        for _ in 0..steps {
            let batch = self.buffer.sample_rows(self.cfg.batch_size, &mut self.rng);
            self.gradient_step(&batch, lr);
            self.gradient_steps += 1;
            if self.gradient_steps.is_multiple_of(self.cfg.target_update_interval as u64) {
                self.update_targets(self.cfg.tau);
            }
        }
        self.stats.add("train/learning_rate", lr);
        if let Some(w) = self.teacher.as_ref().map(|t| t.distill.weight_at(self.steps)).filter(|&w| w > 0.0) {
            self.stats.add("transfer/distill_weight", w);
        }
    }
}

impl Agent for Sac {
    fn config(&self) -> AgentConfig {
        AgentConfig::Sac(self.cfg.clone())
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

    fn act(&self, obs: &[f32], deterministic: bool, rng: &mut StdRng) -> Vec<Action> {
        let squashed = if deterministic {
            self.actor_out(obs).mean.into_iter().map(math::tanh).collect()
        } else {
            Self::explore(&self.noise, &self.actor_out(obs), rng, Draw::Evaluation)
        };
        self.to_env(&squashed)
    }

    fn outputs(&self, obs: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
        let action: Vec<f32> = self.actor_out(obs).mean.into_iter().map(math::tanh).collect();
        let x = self.critic_input(obs, &action);
        let n = obs.len() / self.obs_dim;
        let params = self.critic_opt.params().values();
        let [q0, q1] = [0, 1].map(|k| self.critic_nets[k].infer(params, &x, n));
        vec![("action", action), ("q0", q0), ("q1", q1)]
    }

    agent_state!(vs, target_vs, "optim.actor": actor_opt, "optim.critic": critic_opt, "optim.ent_coef": ent_opt);
    training_state!(rng, gradient_steps, current, buffer, noise);

    fn weight_names(&self) -> Vec<String> {
        variable_names(&self.vs)
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        let mut out = vec![("optim.actor", &mut self.actor_opt), ("optim.critic", &mut self.critic_opt)];
        out.extend(self.ent_opt.as_mut().map(|o| ("optim.ent_coef", o)));
        out
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

    fn set_teacher(&mut self, distill: Distill) -> Result<(), AgentError> {
        let (cfg, obs_dim, act_dim) = (&self.cfg, self.obs_dim, self.act_dim);
        let latent = *cfg.net.hidden.last().unwrap_or(&obs_dim) as i64;
        let (vs, (actor, noise)) = snapshot(&self.vs, &["actor."], |root| {
            let path = root / "actor";
            let actor = Mlp::new(&path, &cfg.net, obs_dim, act_dim, 1.0);
            let noise = if cfg.use_sde {
                let log_std = path.var("log_std", &[latent, act_dim as i64], nn::Init::Const(0.0));
                Noise::Sde { log_std, exploration: Vec::new() }
            } else {
                Noise::Head(super::nn::torch_linear(&path / "log_std", latent as usize, act_dim))
            };
            (actor, noise)
        });
        let params = FlatParams::new(sorted_variables(&vs));
        let actor_net = params.mlp("actor", &cfg.net).expect("the teacher's actor");
        let log_std_net = params.linear("actor.log_std");
        self.teacher = Some(Teacher { _vs: vs, params, actor, actor_net, log_std_net, noise, distill });
        Ok(())
    }
}

/// SAC in the off-policy loop: blocks of `train_freq` vector steps (an `Event::Checkpoint` after
/// each), the gSDE matrix redrawn at each block's start and every `sde_sample_freq` steps within
/// it, the learning rate at the progress after the block, and a stop that the monitor asks for
/// taking effect at once.
impl OffPolicy for Sac {
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

    fn begin_block(&mut self) {
        self.reset_noise();
    }

    /// Uniformly random actions in `[-1, 1]` before `learning_starts`, then [`Sac::explore`].
    fn act_exploring(&mut self, obs: &[f32], k: u64, _: f64) -> (Vec<Action>, Vec<f32>) {
        if self.cfg.use_sde
            && self.cfg.sde_sample_freq > 0
            && k > 0
            && k.is_multiple_of(self.cfg.sde_sample_freq as u64)
        {
            self.reset_noise();
        }
        let squashed: Vec<f32> = if self.steps < self.cfg.learning_starts {
            (0..self.cfg.n_envs * self.act_dim).map(|_| self.rng.random_range(-1.0f32..=1.0)).collect()
        } else {
            let out = self.actor_out(obs);
            Self::explore(&self.noise, &out, &mut self.rng, Draw::Training)
        };
        (self.to_env(&squashed), squashed)
    }

    fn train(&mut self, lr: f64) {
        self.updates(self.cfg.gradient_steps, lr);
    }

    fn stats(&mut self) -> &mut TrainStats {
        &mut self.stats
    }
}
