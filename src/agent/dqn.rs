//! Deep Q-Networks (Mnih et al. 2015) as Stable-Baselines3 implements them: a replay buffer,
//! a target network refreshed every `target_update_interval` environment steps (Polyak
//! averaging with `tau`, a hard copy at `tau = 1`), a linearly decaying epsilon-greedy
//! exploration, `gradient_steps` updates every `train_freq` steps, the Huber loss, and Double
//! DQN as an option. Truncated episodes are bootstrapped (the replay buffer marks only
//! terminations as done).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::nn;

use super::MAX_ROWS;
use super::distributions::argmax;
use super::engine::Net;
use super::nn::{Mlp, MlpConfig};
use super::off_policy::{self, OffPolicy, ProgressAt, Shape, StopAt};
use super::optim::FlatParams;
use super::optim::Optimizer;
use super::replay::{ReplayBuffer, Rows};
use super::schedule::linear_decay;
use super::state::{agent_state, training_state};
use super::stats::TrainStats;
use super::{
    Agent, AgentConfig, AgentError, Algo, Distill, Monitor, Outcome, Schedule, check, check_envs, obs_dim,
    sorted_variables, variable_names,
};
use crate::env::{Action, Space, VecEnv};

/// DQN's hyperparameters; defaults are Stable-Baselines3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Environments stepped together.
    pub n_envs: usize,
    /// Adam's learning rate.
    pub learning_rate: Schedule,
    /// Replay buffer capacity (transitions).
    pub buffer_size: usize,
    /// Steps of uniformly random actions before learning starts.
    pub learning_starts: u64,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Target network update coefficient (1: hard copy).
    pub tau: f64,
    /// Discount factor.
    pub gamma: f64,
    /// Train every this many (vector) steps...
    pub train_freq: u64,
    /// ... with this many gradient steps (`-1`: as many as environment steps were collected).
    pub gradient_steps: i64,
    /// Environment steps between target network updates.
    pub target_update_interval: u64,
    /// The fraction of the budget over which epsilon decays.
    pub exploration_fraction: f64,
    /// Epsilon at the start.
    pub exploration_initial_eps: f64,
    /// Epsilon after the decay (and in stochastic evaluation).
    pub exploration_final_eps: f64,
    /// Gradient clipping (global norm).
    pub max_grad_norm: f64,
    /// Double DQN (van Hasselt et al. 2016): the online network picks the next action, the
    /// target network values it.
    pub double_q: bool,
    /// Next observations read from the replay's next rows rather than stored again
    /// (Stable-Baselines3's name; here exact: the same transitions and training bit for bit, about
    /// half an image replay's memory).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optimize_memory_usage: bool,
    /// The Q network.
    pub net: MlpConfig,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            n_envs: 1,
            learning_rate: Schedule::Constant(1e-4),
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 32,
            tau: 1.0,
            gamma: 0.99,
            train_freq: 4,
            gradient_steps: 1,
            target_update_interval: 10_000,
            exploration_fraction: 0.1,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.05,
            max_grad_norm: 10.0,
            double_q: false,
            optimize_memory_usage: false,
            net: MlpConfig::relu(&[64, 64]),
        }
    }
}

impl DqnConfig {
    fn validate(&self) -> Result<(), AgentError> {
        check("n_envs", self.n_envs >= 1, "must be at least 1")?;
        check("buffer_size", self.buffer_size >= 1, "must be at least 1")?;
        check("batch_size", (1..=MAX_ROWS).contains(&self.batch_size), &format!("must lie in [1, {MAX_ROWS}]"))?;
        check("train_freq", self.train_freq >= 1, "must be at least 1")?;
        check("target_update_interval", self.target_update_interval >= 1, "must be at least 1")?;
        check("gradient_steps", self.gradient_steps >= -1, "must be -1 (as many as steps collected) or more")?;
        check("tau", self.tau > 0.0 && self.tau <= 1.0, "must lie in (0, 1]")?;
        check("gamma", (0.0..=1.0).contains(&self.gamma), "must lie in [0, 1]")?;
        for (field, eps) in [
            ("exploration_initial_eps", self.exploration_initial_eps),
            ("exploration_final_eps", self.exploration_final_eps),
            ("exploration_fraction", self.exploration_fraction),
        ] {
            check(field, (0.0..=1.0).contains(&eps), "must lie in [0, 1]")?;
        }
        self.net.validate()
    }
}

/// A DQN agent.
pub struct Dqn {
    cfg: DqnConfig,
    seed: u64,
    action_space: Space,
    obs_dim: usize,
    n_actions: usize,
    vs: nn::VarStore,
    /// The online network's libtorch modules: the autograd reference in tests (training runs
    /// `net`).
    #[cfg_attr(not(test), allow(dead_code))]
    q: Mlp,
    target_vs: nn::VarStore,
    opt: Optimizer,
    /// The online network in the engine, over the optimiser's buffer: acting, targets and the
    /// hand-written gradient.
    net: Net,
    /// The target network's parameters (the tensors of `target_vs`, laid out as the optimiser's
    /// buffer) and its table.
    target: FlatParams,
    target_net: Net,
    buffer: ReplayBuffer,
    rng: super::AgentRng,
    steps: u64,
    vec_steps: u64,
    current: Option<Vec<f32>>,
    /// Epsilon at the last exploring step, and the trainings' scalars until the loop reports them.
    epsilon: f64,
    stats: TrainStats,
}

impl Dqn {
    /// A DQN agent for these spaces (Discrete actions), its network seeded with `seed`.
    pub fn new(mut cfg: DqnConfig, obs_space: &Space, action_space: &Space, seed: u64) -> Result<Self, AgentError> {
        cfg.validate()?;
        cfg.net = cfg.net.for_observation(obs_space, false)?;
        let obs_dim = obs_dim(Algo::Dqn, obs_space)?;
        let Space::Discrete { n: n_actions } = *action_space else {
            return Err(AgentError::Unsupported(format!(
                "DQN supports {}; this action space is {action_space} (use SAC or PPO)",
                Algo::Dqn.supports()
            )));
        };
        cfg.net.check_size(obs_dim, n_actions)?;
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut target_vs = nn::VarStore::new(tch::Device::Cpu);
        let q = super::nn::with_seed(seed, || {
            let q = Mlp::new(&(vs.root() / "q"), &cfg.net, obs_dim, n_actions, 1.0);
            // The target's variables live in `target_vs` (overwritten by `update_target` below).
            Mlp::new(&(target_vs.root() / "q_target"), &cfg.net, obs_dim, n_actions, 1.0);
            q
        });
        target_vs.freeze();
        let opt = Optimizer::adam(sorted_variables(&vs), 1e-8);
        // The target's parameters in one buffer laid out as the optimiser's (names sorted alike).
        let target = FlatParams::new(sorted_variables(&target_vs));
        let net = opt.params().mlp("q", &cfg.net).expect("the network's parameters");
        let target_net = target.mlp("q_target", &cfg.net).expect("the target's parameters");
        // Images of bytes (and grids of 0 and 1) take a quarter of the memory as bytes.
        let bytes = matches!(obs_space, Space::Box { low, high, .. }
            if low.iter().chain(high).all(|&v| (0.0..=255.0).contains(&v)));
        let mut buffer = match bytes {
            true => ReplayBuffer::for_bytes(cfg.buffer_size, obs_dim, 1),
            false => ReplayBuffer::new(cfg.buffer_size, obs_dim, 1),
        };
        if cfg.optimize_memory_usage {
            buffer = buffer.sharing_frames(cfg.n_envs);
        }
        let mut dqn = Dqn {
            action_space: action_space.clone(),
            seed,
            obs_dim,
            n_actions,
            vs,
            q,
            target_vs,
            opt,
            net,
            target,
            target_net,
            buffer,
            rng: super::AgentRng::seed_from_u64(seed),
            steps: 0,
            vec_steps: 0,
            current: None,
            epsilon: 1.0,
            stats: TrainStats::default(),
            cfg,
        };
        dqn.update_target(1.0);
        Ok(dqn)
    }

    fn update_target(&mut self, tau: f64) {
        self.target.lerp_towards(self.opt.params(), tau);
    }

    /// The online network's Q-values for rows of observations, `[n, n_actions]` row-major.
    fn q_values(&self, obs: &[f32]) -> Vec<f32> {
        self.net.infer(self.opt.params().values(), obs, obs.len() / self.obs_dim)
    }

    fn greedy(&self, obs: &[f32]) -> Vec<usize> {
        self.q_values(obs).chunks_exact(self.n_actions).map(argmax).collect()
    }

    /// The TD targets `r + γ (1 - done) max_a' Q_target(s', a')` of a batch (Double DQN: the
    /// online network picks `a'`).
    fn targets(&self, batch: &Rows) -> Vec<f32> {
        let a = self.n_actions;
        let n = batch.rewards.len();
        let next_q = self.target_net.infer(self.target.values(), &batch.next_obs, n);
        let picks: Vec<usize> = match self.cfg.double_q {
            true => self.q_values(&batch.next_obs).chunks_exact(a).map(argmax).collect(),
            false => next_q.chunks_exact(a).map(argmax).collect(),
        };
        let (rewards, dones) = (&batch.rewards, &batch.dones);
        let gamma = self.cfg.gamma as f32;
        (0..n).map(|i| rewards[i] + (1.0 - dones[i]) * next_q[i * a + picks[i]] * gamma).collect()
    }

    /// The Huber loss's gradient computed by hand into the optimiser's gradient buffer: its
    /// derivative with respect to the chosen actions' Q-values is `clamp(q - target, ±1) / n`,
    /// and the engine's backward pass carries it through the network.
    fn manual_gradients(&mut self, batch: &Rows) -> f64 {
        let target = self.targets(batch);
        let (n, a) = (target.len(), self.n_actions);
        let x = &batch.obs;
        let pass = self.net.forward(self.opt.params().values(), x, n);
        let q = pass.output();
        let actions = &batch.actions;
        let mut grad = vec![0.0f32; n * a];
        let mut huber = 0.0;
        for i in 0..n {
            let k = i * a + actions[i] as usize;
            let error = q[k] - target[i];
            grad[k] = error.clamp(-1.0, 1.0) / n as f32;
            let e = (error as f64).abs();
            huber += if e < 1.0 { 0.5 * e * e } else { e - 0.5 };
        }
        let (params, grads) = self.opt.values_and_gradients();
        self.net.backward(params, x, &pass, &grad, None, grads);
        huber / n as f64
    }

    /// `gradient_steps` minibatch updates at learning rate `lr`.
    fn updates(&mut self, gradient_steps: usize, lr: f64) {
        for _ in 0..gradient_steps {
            let batch = self.buffer.sample_rows(self.cfg.batch_size, &mut self.rng);
            let loss = self.manual_gradients(&batch);
            self.opt.step_with_gradients(lr, Some(self.cfg.max_grad_norm));
            self.stats.add("train/loss", loss);
            self.stats.add_grad_norm(&self.opt, "train/grad_norm");
        }
        self.stats.add("train/learning_rate", lr);
        self.stats.add("rollout/exploration_rate", self.epsilon);
    }
}

impl Agent for Dqn {
    fn config(&self) -> AgentConfig {
        AgentConfig::Dqn(self.cfg.clone())
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
        self.greedy(obs)
            .into_iter()
            .map(|a| {
                if !deterministic && rng.random::<f64>() < self.cfg.exploration_final_eps {
                    Action::Discrete(rng.random_range(0..self.n_actions))
                } else {
                    Action::Discrete(a)
                }
            })
            .collect()
    }

    fn outputs(&self, obs: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
        vec![("q", self.q_values(obs))]
    }

    agent_state!(vs, target_vs, "optim": opt);
    training_state!(rng, vec_steps, current, buffer);

    fn weight_names(&self) -> Vec<String> {
        variable_names(&self.vs)
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![("optim", &mut self.opt)]
    }

    fn replay(&self) -> Option<&ReplayBuffer> {
        Some(&self.buffer)
    }

    fn replay_mut(&mut self) -> Option<&mut ReplayBuffer> {
        Some(&mut self.buffer)
    }

    fn sync_targets(&mut self) {
        self.update_target(1.0);
    }

    fn set_teacher(&mut self, _: Distill) -> Result<(), AgentError> {
        Err(AgentError::Unsupported(
            "distill needs a policy with an action distribution (PPO, SAC); DQN's greedy Q policy has none \
             (use l2_init to keep the Q network near the source instead)"
                .into(),
        ))
    }
}

/// DQN in the off-policy loop: blocks of one vector step (an `Event::Checkpoint` after each),
/// epsilon and the learning rate at the progress before the step, the target network refreshed
/// every `target_update_interval / n_envs` vector steps, training every `train_freq` vector
/// steps, and a stop that the monitor asks for taking effect after the step's training.
impl OffPolicy for Dqn {
    fn shape(&self) -> Shape {
        Shape {
            n_envs: self.cfg.n_envs,
            block: 1,
            round: self.cfg.train_freq,
            learning_starts: self.cfg.learning_starts,
            learning_rate: self.cfg.learning_rate,
            progress: ProgressAt::BeforeStep,
            stop: StopAt::AfterTraining,
        }
    }

    fn loop_state(&mut self) -> (&mut u64, &mut Option<Vec<f32>>, &mut ReplayBuffer) {
        (&mut self.steps, &mut self.current, &mut self.buffer)
    }

    /// Uniformly random actions before `learning_starts`, then epsilon-greedy.
    fn act_exploring(&mut self, obs: &[f32], _: u64, progress: f64) -> (Vec<Action>, Vec<f32>) {
        let n = self.cfg.n_envs;
        let eps = linear_decay(
            self.cfg.exploration_initial_eps,
            self.cfg.exploration_final_eps,
            self.cfg.exploration_fraction,
            progress,
        );
        self.epsilon = eps;
        let actions: Vec<usize> = if self.steps < self.cfg.learning_starts {
            (0..n).map(|_| self.rng.random_range(0..self.n_actions)).collect()
        } else {
            let greedy = self.greedy(obs);
            greedy
                .into_iter()
                .map(|a| if self.rng.random::<f64>() < eps { self.rng.random_range(0..self.n_actions) } else { a })
                .collect()
        };
        (actions.iter().map(|&a| Action::Discrete(a)).collect(), actions.iter().map(|&a| a as f32).collect())
    }

    fn after_step(&mut self) {
        self.vec_steps += 1;
        let target_every = (self.cfg.target_update_interval / self.cfg.n_envs as u64).max(1);
        if self.vec_steps.is_multiple_of(target_every) {
            self.update_target(self.cfg.tau);
        }
    }

    fn train_due(&self) -> bool {
        self.vec_steps.is_multiple_of(self.cfg.train_freq)
    }

    /// `gradient_steps` updates (`-1`: as many as environment steps since the last training).
    fn train(&mut self, lr: f64) {
        let steps = match self.cfg.gradient_steps {
            g if g < 0 => self.cfg.train_freq as usize * self.cfg.n_envs,
            g => g as usize,
        };
        self.updates(steps, lr);
    }

    fn stats(&mut self) -> &mut TrainStats {
        &mut self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EnvSpec, Registry};
    use tch::nn::Module;
    use tch::{Kind, Reduction};

    /// The hand-written gradient equals autograd's for the Huber loss, with errors on both sides
    /// of the Huber threshold, for DQN and Double DQN.
    #[test]
    fn manual_gradients_match_autograd() {
        let env = Registry::builtin().make(&EnvSpec::new("Acrobot-v1")).unwrap();
        for double_q in [false, true] {
            let cfg = DqnConfig { double_q, net: MlpConfig::relu(&[32, 16]), ..Default::default() };
            let mut dqn = Dqn::new(cfg, env.observation_space(), env.action_space(), 4).unwrap();
            let mut rng = StdRng::seed_from_u64(5);
            for _ in 0..100 {
                let o: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                let next: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                let action = rng.random_range(0..3) as f32;
                dqn.buffer.push(&o, &[action], rng.random_range(-3.0..3.0), &next, rng.random_bool(0.2));
            }
            let batch = dqn.buffer.sample_rows(48, &mut rng);
            let target = tch::Tensor::from_slice(&dqn.targets(&batch)).view([-1, 1]);
            let obs = tch::Tensor::from_slice(&batch.obs).view([48, 6]);
            let actions = tch::Tensor::from_slice(&batch.actions).view([48, 1]).to_kind(Kind::Int64);
            let current = dqn.q.forward(&obs).gather(1, &actions, false);
            let loss = current.smooth_l1_loss(&target, Reduction::Mean, 1.0);
            dqn.opt.compute_gradients(&loss);
            let auto = dqn.opt.gradients().copy();
            dqn.manual_gradients(&batch);
            let manual = dqn.opt.gradients().copy();
            let err = (&auto - &manual).abs().max().double_value(&[]);
            let scale = auto.abs().max().double_value(&[]);
            assert!(scale > 1e-3 && err <= 1e-5 * scale.max(1.0), "double_q {double_q}: {err} (scale {scale})");
        }
    }
}
