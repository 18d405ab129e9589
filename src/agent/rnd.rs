//! Random network distillation (Burda et al. 2018), the intrinsic reward of
//! [`Objective::Rnd`](super::objective::Objective::Rnd): a target network, drawn at random and
//! never trained, embeds each observation; a predictor is trained to reproduce the embedding on
//! the observations the agent visits; the intrinsic reward of a transition is the predictor's
//! squared error on its next observation, high where the agent has rarely been.
//!
//! As the paper: both networks read observations normalised by running statistics of their own
//! and clipped to `±obs_clip`; the reward is divided by the running standard deviation of the
//! intrinsic discounted return (non-episodic unless `episodic`); the predictor trains on the
//! rollout's next observations with PPO's epochs and minibatches. Both networks run in the
//! project's engine, so the reward is the same on every CPU.
//!
//! Two departures, said here: the observation statistics are updated with each rollout before
//! its rewards are computed (the paper warms them up with random steps first), and the
//! return's statistics step by step, as Stable-Baselines3's `VecNormalize` does for rewards.

use rand::Rng;
use rand::seq::SliceRandom;
use tch::{Tensor, nn};

use super::engine::Net;
use super::error::AgentError;
use super::nn::{Mlp, with_seed};
use super::normalize::{ObsNormalizer, RewardNormalizer};
use super::objective::RndConfig;
use super::optim::{FlatParams, Optimizer};
use super::state::{StatePart, TrainingPart};
use super::tensors::{copy_tensors, sorted_variables};

/// The networks and statistics of random network distillation.
pub(crate) struct Rnd {
    cfg: RndConfig,
    obs_dim: usize,
    target_vs: nn::VarStore,
    target: FlatParams,
    target_net: Net,
    predictor_vs: nn::VarStore,
    opt: Optimizer,
    predictor: Net,
    obs: ObsNormalizer,
    returns: RewardNormalizer,
}

/// The seed of the two networks: apart from the agent's own networks' draws.
const SEED_OFFSET: u64 = 0x524e_4400;

impl Rnd {
    /// RND for `obs_dim` observations from `n_envs` environments, its intrinsic return
    /// discounted by `gamma`, its networks drawn from `seed`.
    pub(crate) fn new(cfg: RndConfig, obs_dim: usize, n_envs: usize, gamma: f64, seed: u64) -> Self {
        let net = cfg.net();
        let mut target_vs = nn::VarStore::new(tch::Device::Cpu);
        let predictor_vs = nn::VarStore::new(tch::Device::Cpu);
        with_seed(seed.wrapping_add(SEED_OFFSET), || {
            Mlp::new(&(target_vs.root() / "rnd" / "target"), &net, obs_dim, cfg.embedding, 1.0);
            Mlp::new(&(predictor_vs.root() / "rnd" / "predictor"), &net, obs_dim, cfg.embedding, 1.0);
        });
        target_vs.freeze();
        let target = FlatParams::new(sorted_variables(&target_vs));
        let target_net = target.mlp("rnd.target", &net).expect("the target's parameters");
        let opt = Optimizer::adam(sorted_variables(&predictor_vs), 1e-8);
        let predictor = opt.params().mlp("rnd.predictor", &net).expect("the predictor's parameters");
        let mut obs = ObsNormalizer::new(obs_dim);
        obs.clip = cfg.obs_clip;
        let mut returns = RewardNormalizer::new(n_envs, gamma);
        returns.set_clip(f64::INFINITY);
        Rnd { cfg, obs_dim, target_vs, target, target_net, predictor_vs, opt, predictor, obs, returns }
    }

    /// Whether the intrinsic return stops at episode ends.
    pub(crate) fn episodic(&self) -> bool {
        self.cfg.episodic
    }

    /// Rows of raw observations as the two networks read them.
    fn inputs(&self, raw: &[f32]) -> Vec<f32> {
        let mut x = raw.to_vec();
        self.obs.apply(&mut x);
        x
    }

    /// The predictor's mean squared error per row of raw observations: the unscaled
    /// intrinsic reward.
    pub(crate) fn errors(&self, raw: &[f32]) -> Vec<f32> {
        let x = self.inputs(raw);
        let rows = x.len() / self.obs_dim;
        let t = self.target_net.infer(self.target.values(), &x, rows);
        let p = self.predictor.infer(self.opt.params().values(), &x, rows);
        let e = self.cfg.embedding;
        (0..rows)
            .map(|i| {
                let squares = (0..e).map(|j| (p[i * e + j] - t[i * e + j]).powi(2));
                squares.fold(0.0f32, |acc, s| acc + s) / e as f32
            })
            .collect()
    }

    /// The intrinsic rewards of a rollout's next observations (`[steps * n_envs]` rows,
    /// step-major), after merging them into the observation statistics; `ends[k]` says that
    /// row `k` ended an episode (which ends the intrinsic return only when `episodic`).
    /// Returns the rewards scaled by the return's deviation and the mean unscaled reward.
    pub(crate) fn rewards(&mut self, raw: &[f32], ends: &[bool]) -> (Vec<f32>, f64) {
        self.obs.stats.update(raw);
        let errors = self.errors(raw);
        let mean = errors.iter().map(|&e| e as f64).sum::<f64>() / errors.len().max(1) as f64;
        let n = self.returns.returns().len();
        let mut scaled = Vec::with_capacity(errors.len());
        for (errs, ends) in errors.chunks_exact(n).zip(ends.chunks_exact(n)) {
            let rewards: Vec<f64> = errs.iter().map(|&e| e as f64).collect();
            let episodic = self.cfg.episodic;
            scaled.extend(self.returns.apply(&rewards, |i| episodic && ends[i]).into_iter().map(|r| r as f32));
        }
        (scaled, mean)
    }

    /// Trains the predictor on rows of raw observations: `epochs` passes of shuffled
    /// minibatches of `batch` rows, each row kept with probability `update_proportion`.
    pub(crate) fn train(&mut self, raw: &[f32], epochs: usize, batch: usize, rng: &mut impl Rng) {
        let x = self.inputs(raw);
        let rows = x.len() / self.obs_dim;
        let (d, e) = (self.obs_dim, self.cfg.embedding);
        let targets = self.target_net.infer(self.target.values(), &x, rows);
        let mut order: Vec<usize> = (0..rows).collect();
        for _ in 0..epochs {
            order.shuffle(rng);
            for chunk in order.chunks(batch.max(1)) {
                let kept: Vec<usize> = match self.cfg.update_proportion < 1.0 {
                    true => chunk.iter().copied().filter(|_| rng.random::<f64>() < self.cfg.update_proportion).collect(),
                    false => chunk.to_vec(),
                };
                if kept.is_empty() {
                    continue;
                }
                let xb: Vec<f32> = kept.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
                let pass = self.predictor.forward(self.opt.params().values(), &xb, kept.len());
                // d/dp of mean over rows and embedding of (p - t)²
                let scale = 2.0 / (kept.len() * e) as f32;
                let grad: Vec<f32> = kept
                    .iter()
                    .enumerate()
                    .flat_map(|(r, &i)| {
                        let (p, t) = (&pass.output()[r * e..(r + 1) * e], &targets[i * e..(i + 1) * e]);
                        p.iter().zip(t).map(move |(p, t)| (p - t) * scale)
                    })
                    .collect();
                let (params, grads) = self.opt.values_and_gradients();
                self.predictor.backward(params, &xb, &pass, &grad, None, grads);
                self.opt.step_with_gradients(self.cfg.learning_rate, None);
            }
        }
    }
}

/// The two networks, the predictor's optimiser and both statistics, under `rnd.`.
impl StatePart for Rnd {
    fn save(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.extend(sorted_variables(&self.target_vs));
        out.extend(sorted_variables(&self.predictor_vs));
        out.extend(self.opt.state(&format!("{prefix}.optim")));
        self.obs.save(&format!("{prefix}.obs_rms"), out);
        self.returns.save(&format!("{prefix}.ret_rms"), out);
    }

    fn load(&mut self, prefix: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        copy_tensors(&sorted_variables(&self.target_vs), get)?;
        copy_tensors(&sorted_variables(&self.predictor_vs), get)?;
        self.opt.load_state(&format!("{prefix}.optim"), get)?;
        self.obs.load(&format!("{prefix}.obs_rms"), get)?;
        self.returns.load(&format!("{prefix}.ret_rms"), get)
    }
}

/// Each environment's running intrinsic return.
impl TrainingPart for Rnd {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        Some(self.returns.clone()).save_training(name, out);
    }

    fn load_training(&mut self, name: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        let mut returns = Some(self.returns.clone());
        returns.load_training(name, get)?;
        self.returns = returns.expect("kept");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn mean(v: &[f32]) -> f64 {
        v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
    }

    /// The predictor learns the states it is trained on: their intrinsic reward falls far below
    /// what it was, and below that of states never visited.
    #[test]
    fn the_intrinsic_reward_falls_on_states_visited_often() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(0);
        let mut rnd = Rnd::new(RndConfig::default(), 2, 4, 0.99, 3);
        // Visited often: a small region around (-0.5, 0); never visited: far from it.
        let often: Vec<f32> = (0..256).flat_map(|_| [-0.5 + 0.1 * rng.random::<f32>(), 0.01 * rng.random::<f32>()]).collect();
        let never: Vec<f32> = (0..256).flat_map(|_| [2.0 + rng.random::<f32>(), -0.5 - rng.random::<f32>()]).collect();
        rnd.obs.stats.update(&often);
        let before = mean(&rnd.errors(&often));
        for _ in 0..30 {
            rnd.train(&often, 4, 64, &mut rng);
        }
        let (after, novel) = (mean(&rnd.errors(&often)), mean(&rnd.errors(&never)));
        assert!(after < 0.1 * before, "visited states: {before} -> {after}");
        assert!(after < 0.1 * novel, "visited {after}, never visited {novel}");
    }

    /// The scaled reward divides by the deviation of the running intrinsic return, which runs on
    /// through episode ends unless the objective is episodic.
    #[test]
    fn the_intrinsic_return_runs_through_episode_ends_unless_episodic() {
        let rows: Vec<f32> = (0..8).flat_map(|i| [i as f32 * 0.1, 0.0]).collect();
        let ends = [false, true, false, true, false, false, true, true];
        for episodic in [false, true] {
            let mut rnd = Rnd::new(RndConfig { episodic, ..RndConfig::default() }, 2, 2, 0.99, 1);
            rnd.rewards(&rows, &ends);
            let running = rnd.returns.returns().to_vec();
            assert_eq!(running.iter().all(|&r| r == 0.0), episodic, "episodic {episodic}: running returns {running:?}");
        }
    }
}
