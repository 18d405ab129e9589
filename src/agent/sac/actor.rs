//! SAC's actor: a Gaussian over pre-squash actions whose noise scale is a `log σ` head on the
//! features (or gSDE's `[features, actions]` matrix), squashed by `tanh`; sampling a
//! differentiable batch for the losses ([`Sac::sample`]), acting while training and for stochastic
//! evaluation ([`Sac::explore`]), and the distillation term.

use rand::Rng;
use rand_distr::StandardNormal;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::super::distributions::{
    draw_exploration, gaussian_kl, gaussian_log_prob_std, gaussian_log_prob_var, gsde_noise_only, gsde_variance,
    squash_correction,
};
use super::super::nn::Mlp;
use super::super::{Distill, rows, to_vec};
use super::Sac;
use crate::agent::state::TrainingPart;

/// The range the `log σ` head is clamped to, as Stable-Baselines3.
pub(super) const LOG_STD_MIN: f64 = -20.0;
/// See [`LOG_STD_MIN`].
pub(super) const LOG_STD_MAX: f64 = 2.0;
/// gSDE clips the mean before squashing, as Stable-Baselines3's `clip_mean`.
pub(super) const SDE_CLIP_MEAN: f64 = 2.0;

/// How the actor's noise is scaled.
pub(super) enum Noise {
    /// `actor.log_std`: a linear head on the features.
    Head(nn::Linear),
    /// `actor.log_std`: the `[features, actions]` gSDE log standard deviations, and the
    /// exploration matrix in use while acting.
    Sde { log_std: Tensor, exploration: Vec<f32> },
}

/// The gSDE exploration matrix in use (nothing for a `log σ` head).
impl TrainingPart for Noise {
    fn save_training(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        if let Noise::Sde { exploration, .. } = self {
            exploration.save_training(name, out);
        }
    }

    fn load_training(
        &mut self,
        name: &str,
        get: &mut dyn FnMut(&str) -> Option<Tensor>,
    ) -> Result<(), crate::agent::AgentError> {
        match self {
            Noise::Sde { exploration, .. } => exploration.load_training(name, get),
            Noise::Head(_) => Ok(()),
        }
    }
}

/// A frozen copy of the actor to distil from.
pub(super) struct Teacher {
    pub(super) _vs: nn::VarStore,
    pub(super) actor: Mlp,
    pub(super) noise: Noise,
    pub(super) distill: Distill,
}

/// Where [`Sac::explore`] draws its noise (see there for how the two differ).
#[derive(Clone, Copy)]
pub(super) enum Draw {
    /// While training, from the agent's generator.
    Training,
    /// Stochastic evaluation, from the caller's generator, leaving the agent untouched.
    Evaluation,
}

/// What the actor computes for a batch: squashed actions in `[-1, 1]` and their log-probs.
pub(super) struct Sampled {
    pub(super) actions: Tensor,
    pub(super) log_prob: Tensor,
}

impl Sac {
    /// Draws `[rows, cols]` standard normal values from the agent's generator.
    pub(super) fn normal(&mut self, rows: usize, cols: usize) -> Tensor {
        Tensor::from_slice(&self.normal_values(rows * cols)).view([rows as i64, cols as i64])
    }

    /// Draws `count` standard normal values from the agent's generator.
    pub(super) fn normal_values(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.rng.sample::<f32, _>(StandardNormal)).collect()
    }

    /// Samples squashed actions with log-probabilities for a batch (differentiable): the
    /// reparameterised `u = mean + σ ε` (with gSDE `u = mean + features · (σ ⊙ ε)`, one fresh
    /// matrix for the batch), `a = tanh(u)`, `log π(a) = log N(u) - Σ log(1 - a² + 1e-6)`.
    /// Unlike [`Sac::explore`] its noise stays in the graph, so that `σ` gets a gradient.
    pub(super) fn sample(&mut self, obs: &Tensor) -> Sampled {
        let n = obs.size()[0] as usize;
        let features = self.actor.features(obs);
        let mean = Self::mean(&self.actor, &self.noise, &features);
        let (u, gaussian_lp) = match &self.noise {
            Noise::Head(head) => {
                let log_std = head.forward(&features).clamp(LOG_STD_MIN, LOG_STD_MAX);
                let eps = self.normal(n, self.act_dim);
                let u = &mean + log_std.exp() * &eps;
                let lp = gaussian_log_prob_std(&eps, &log_std, false);
                (u, lp)
            }
            Noise::Sde { log_std, .. } => {
                let log_std = log_std.shallow_clone();
                let latent = features.detach();
                let std = log_std.exp();
                let eps = self.normal(latent.size()[1] as usize, self.act_dim);
                let noise = latent.matmul(&(&std * eps));
                let variance = latent.square().matmul(&std.square()) + 1e-6;
                let u = &mean + &noise;
                let lp = gaussian_log_prob_var(&noise, &variance, false);
                (u, lp)
            }
        };
        let actions = u.tanh();
        let correction = squash_correction(&actions);
        Sampled { actions, log_prob: gaussian_lp - correction }
    }

    /// The actor's Gaussian before the squashing, for rows `obs`: means and variances.
    pub(super) fn gaussian(actor: &Mlp, noise: &Noise, obs: &Tensor) -> (Tensor, Tensor) {
        let features = actor.features(obs);
        let mean = actor.head_forward(&features);
        match noise {
            Noise::Head(head) => (mean, (head.forward(&features).clamp(LOG_STD_MIN, LOG_STD_MAX) * 2.0).exp()),
            Noise::Sde { log_std, .. } => {
                (mean.clamp(-SDE_CLIP_MEAN, SDE_CLIP_MEAN), gsde_variance(&features, log_std))
            }
        }
    }

    /// `w * mean KL(π_teacher ‖ π)` over rows `obs` (Gaussians before the squashing, which is
    /// the same for both), while the distillation weight is above zero.
    pub(super) fn distill_loss(&self, obs: &Tensor) -> Option<Tensor> {
        let teacher = self.teacher.as_ref()?;
        let w = teacher.distill.weight_at(self.steps);
        if w <= 0.0 {
            return None;
        }
        let (mean_t, var_t) = tch::no_grad(|| Self::gaussian(&teacher.actor, &teacher.noise, obs));
        let (mean, var) = Self::gaussian(&self.actor, &self.noise, obs);
        Some(gaussian_kl(&mean_t, &var_t, &mean, &var).mean(Kind::Float) * w)
    }

    /// The actor's means for rows of features (clipped with gSDE, as Stable-Baselines3).
    pub(super) fn mean(actor: &Mlp, noise: &Noise, features: &Tensor) -> Tensor {
        let mean = actor.head_forward(features);
        match noise {
            Noise::Sde { .. } => mean.clamp(-SDE_CLIP_MEAN, SDE_CLIP_MEAN),
            Noise::Head(_) => mean,
        }
    }

    /// Redraws the gSDE exploration matrix used while acting.
    pub(super) fn reset_noise(&mut self) {
        if let Noise::Sde { log_std, exploration } = &mut self.noise {
            *exploration = draw_exploration(log_std, 1, &mut self.rng);
        }
    }

    /// Exploratory actions `tanh(mean + noise)` in `[-1, 1]` for raw observation rows: SAC's
    /// stochastic acting, while training (`Draw::Training`) and for stochastic evaluation
    /// (`Draw::Evaluation`). [`Sac::sample`] is the other sampler: a differentiable batch for the
    /// losses.
    ///
    /// The two draws differ, and keep differing because unifying them would change every SAC
    /// run: training adds `f64` noise (`f64` normals, or the agent's current gSDE matrix applied
    /// in `f64`); evaluation adds `f32` noise (`f32` normals, or a fresh gSDE matrix drawn from
    /// `rng` and applied by libtorch). The random draws come in the same order in both.
    pub(super) fn explore(
        actor: &Mlp,
        noise: &Noise,
        obs_dim: usize,
        obs: &[f32],
        rng: &mut impl Rng,
        draw: Draw,
    ) -> Vec<f32> {
        let x = rows(obs, obs_dim);
        tch::no_grad(|| {
            let features = actor.features(&x);
            let mean = to_vec(&Self::mean(actor, noise, &features));
            match (noise, draw) {
                (Noise::Head(head), _) => {
                    let log_std = to_vec(&head.forward(&features).clamp(LOG_STD_MIN, LOG_STD_MAX));
                    mean.iter()
                        .zip(&log_std)
                        .map(|(m, ls)| match draw {
                            Draw::Training => {
                                (*m as f64 + (*ls as f64).exp() * rng.sample::<f64, _>(StandardNormal)).tanh() as f32
                            }
                            Draw::Evaluation => {
                                (m + (*ls as f64).exp() as f32 * rng.sample::<f32, _>(StandardNormal)).tanh()
                            }
                        })
                        .collect()
                }
                (Noise::Sde { log_std, exploration }, Draw::Training) => {
                    let (latent, dim) = (log_std.size()[0] as usize, mean.len() / (obs.len() / obs_dim));
                    let noise = gsde_noise_only(&to_vec(&features), exploration, latent, dim);
                    mean.iter().zip(noise).map(|(m, e)| (*m as f64 + e).tanh() as f32).collect()
                }
                (Noise::Sde { log_std, .. }, Draw::Evaluation) => {
                    let dim = log_std.size()[1];
                    let w = Tensor::from_slice(&draw_exploration(log_std, 1, rng)).view([-1, dim]);
                    mean.iter().zip(to_vec(&features.matmul(&w))).map(|(m, e)| (m + e).tanh()).collect()
                }
            }
        })
    }
}
