//! DIAYN, "diversity is all you need" (Eysenbach et al. 2018), the skill discovery of
//! [`Objective::Diayn`](super::objective::Objective::Diayn): each training episode draws a skill
//! `z` uniformly from `K`; the policy and the critic read the observation with `z` appended as
//! one-hot features; a discriminator `q(z | s')` is trained by cross-entropy to tell the skill
//! from the next observation; the reward is `log q(z | s') - log p(z)` = `log q(z | s') + log K`,
//! high where the skills visit states the others do not.
//!
//! The discriminator reads observations normalised by running statistics of its own (clipped to
//! ±5, as RND's networks), runs in the project's engine, and trains on each rollout with PPO's
//! epochs and minibatches. Departures from the paper: PPO instead of SAC, and the entropy of the
//! policy left to PPO's own `ent_coef`.

use rand::Rng;
use rand::seq::SliceRandom;
use tch::{Tensor, nn};

use super::distributions::{categorical_log_probs, categorical_probs};
use super::engine::Net;
use super::error::AgentError;
use super::nn::{Mlp, with_seed};
use super::normalize::ObsNormalizer;
use super::objective::DiaynConfig;
use super::optim::Optimizer;
use super::state::StatePart;
use super::tensors::{copy_tensors, sorted_variables};

/// The discriminator's seed: apart from the agent's own networks' draws.
const SEED_OFFSET: u64 = 0x4449_4159;

/// DIAYN's discriminator, its statistics and the skills in play.
pub(crate) struct Diayn {
    cfg: DiaynConfig,
    env_dim: usize,
    vs: nn::VarStore,
    opt: Optimizer,
    net: Net,
    obs: ObsNormalizer,
    /// Each training environment's skill in its current episode (as `f32`, saved with the
    /// training state).
    pub(crate) current: Vec<f32>,
}

impl Diayn {
    /// DIAYN for `env_dim` observations from `n_envs` environments, the discriminator drawn
    /// from `seed`.
    pub(crate) fn new(cfg: DiaynConfig, env_dim: usize, n_envs: usize, seed: u64) -> Self {
        let net = cfg.net();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        with_seed(seed.wrapping_add(SEED_OFFSET), || {
            Mlp::new(&(vs.root() / "diayn" / "discriminator"), &net, env_dim, cfg.skills, 1.0);
        });
        let opt = Optimizer::adam(sorted_variables(&vs), 1e-8);
        let discriminator = opt.params().mlp("diayn.discriminator", &net).expect("the discriminator's parameters");
        let mut obs = ObsNormalizer::new(env_dim);
        obs.clip = 5.0;
        Diayn { cfg, env_dim, vs, opt, net: discriminator, obs, current: vec![0.0; n_envs] }
    }

    /// The skill followed outside training.
    pub(crate) fn acting_skill(&self) -> usize {
        self.cfg.skill
    }

    /// Environment `i` starts an episode: it draws its skill.
    pub(crate) fn draw(&mut self, i: usize, rng: &mut impl Rng) {
        self.current[i] = rng.random_range(0..self.cfg.skills) as f32;
    }

    /// The skill of each training environment.
    pub(crate) fn current(&self) -> Vec<usize> {
        self.current.iter().map(|&z| z as usize).collect()
    }

    /// Rows of observations with their rows' skills appended as one-hot features.
    pub(crate) fn augment(&self, obs: &[f32], skill: impl Fn(usize) -> usize) -> Vec<f32> {
        let (d, k) = (self.env_dim, self.cfg.skills);
        let mut out = Vec::with_capacity(obs.len() / d * (d + k));
        for (i, row) in obs.chunks_exact(d).enumerate() {
            out.extend_from_slice(row);
            let z = skill(i);
            out.extend((0..k).map(|j| if j == z { 1.0 } else { 0.0 }));
        }
        out
    }

    /// The discriminator's logits for rows of raw observations.
    fn logits(&self, raw: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut x = raw.to_vec();
        self.obs.apply(&mut x);
        let logits = self.net.infer(self.opt.params().values(), &x, x.len() / self.env_dim);
        (x, logits)
    }

    /// The rewards `log q(z | s') + log K` of a rollout's next observations and their skills,
    /// after merging the observations into the statistics; and their mean.
    pub(crate) fn rewards(&mut self, raw: &[f32], skills: &[usize]) -> (Vec<f32>, f64) {
        self.obs.stats.update(raw);
        let (_, logits) = self.logits(raw);
        let k = self.cfg.skills;
        let log_k = libm::log(k as f64);
        let mut log_p = vec![0.0; k];
        let rewards: Vec<f32> = logits
            .chunks_exact(k)
            .zip(skills)
            .map(|(l, &z)| {
                categorical_log_probs(l, &mut log_p);
                (log_p[z] + log_k) as f32
            })
            .collect();
        let mean = rewards.iter().map(|&r| r as f64).sum::<f64>() / rewards.len().max(1) as f64;
        (rewards, mean)
    }

    /// The share of rows whose skill the discriminator names (its most likely skill).
    #[cfg(test)]
    pub(crate) fn accuracy(&self, raw: &[f32], skills: &[usize]) -> f64 {
        let (_, logits) = self.logits(raw);
        let hits = logits.chunks_exact(self.cfg.skills).zip(skills).filter(|(l, z)| super::distributions::argmax(l) == **z);
        hits.count() as f64 / skills.len().max(1) as f64
    }

    /// Trains the discriminator by cross-entropy on rows of raw observations and their skills:
    /// `epochs` passes of shuffled minibatches of `batch` rows.
    pub(crate) fn train(&mut self, raw: &[f32], skills: &[usize], epochs: usize, batch: usize, rng: &mut impl Rng) {
        let (d, k) = (self.env_dim, self.cfg.skills);
        let mut x = raw.to_vec();
        self.obs.apply(&mut x);
        let mut order: Vec<usize> = (0..skills.len()).collect();
        for _ in 0..epochs {
            order.shuffle(rng);
            for chunk in order.chunks(batch.max(1)) {
                let xb: Vec<f32> = chunk.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
                let pass = self.net.forward(self.opt.params().values(), &xb, chunk.len());
                // d/dlogits of the mean cross-entropy: (softmax - one-hot) / rows.
                let scale = 1.0 / chunk.len() as f64;
                let mut grad = Vec::with_capacity(chunk.len() * k);
                for (r, &i) in chunk.iter().enumerate() {
                    let p = categorical_probs(&pass.output()[r * k..(r + 1) * k]);
                    grad.extend(p.iter().enumerate().map(|(j, &p)| ((p - f64::from(j == skills[i])) * scale) as f32));
                }
                let (params, grads) = self.opt.values_and_gradients();
                self.net.backward(params, &xb, &pass, &grad, None, grads);
                self.opt.step_with_gradients(self.cfg.learning_rate, None);
            }
        }
    }
}

/// The discriminator, its optimiser and statistics, under `diayn.`.
impl StatePart for Diayn {
    fn save(&self, _: &str, out: &mut Vec<(String, Tensor)>) {
        out.extend(sorted_variables(&self.vs));
        out.extend(self.opt.state("diayn.optim"));
        self.obs.save("diayn.obs_rms", out);
    }

    fn load(&mut self, _: &str, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<(), AgentError> {
        copy_tensors(&sorted_variables(&self.vs), get)?;
        self.opt.load_state("diayn.optim", get)?;
        self.obs.load("diayn.obs_rms", get)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Skills that visit different states are told apart: after training on states where each
    /// skill keeps to its own region, the discriminator names the skill of held-out states of
    /// those regions far above chance, and their reward `log q(z|s') + log K` is positive.
    #[test]
    fn the_discriminator_tells_skills_apart_by_the_states_they_visit() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(0);
        let cfg = DiaynConfig { skills: 4, ..DiaynConfig::default() };
        let mut diayn = Diayn::new(cfg, 2, 4, 0);
        let states = |n: usize, rng: &mut rand_chacha::ChaCha12Rng| {
            let skills: Vec<usize> = (0..n).map(|_| rng.random_range(0..4)).collect();
            let raw: Vec<f32> = skills
                .iter()
                .flat_map(|&z| [z as f32 + 0.3 * rng.random::<f32>(), (z % 2) as f32 - 0.3 * rng.random::<f32>()])
                .collect();
            (raw, skills)
        };
        let (raw, skills) = states(512, &mut rng);
        let (before, _) = diayn.rewards(&raw, &skills);
        for _ in 0..20 {
            diayn.train(&raw, &skills, 2, 64, &mut rng);
        }
        let (held_out, their_skills) = states(256, &mut rng);
        let accuracy = diayn.accuracy(&held_out, &their_skills);
        let (after, mean) = diayn.rewards(&held_out, &their_skills);
        assert!(accuracy > 0.9, "accuracy {accuracy} (chance 0.25)");
        assert!(mean > 1.0 && after.len() == 256 && before.len() == 512, "mean reward {mean} (ln 4 = 1.39 at certainty)");
    }

    /// The skill's one-hot features follow each row's observation.
    #[test]
    fn skills_are_appended_as_one_hot_features() {
        let diayn = Diayn::new(DiaynConfig { skills: 3, ..DiaynConfig::default() }, 2, 2, 0);
        let x = diayn.augment(&[1.0, 2.0, 3.0, 4.0], |i| [2, 0][i]);
        assert_eq!(x, vec![1.0, 2.0, 0.0, 0.0, 1.0, 3.0, 4.0, 1.0, 0.0, 0.0]);
    }
}
