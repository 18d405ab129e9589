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
use super::super::engine::{Net, math};
use super::super::nn::Mlp;
use super::super::optim::FlatParams;
use super::super::{Distill, to_vec};
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

/// A frozen copy of the actor to distil from: its libtorch modules (the autograd path) and its
/// engine networks over its own buffer.
pub(super) struct Teacher {
    pub(super) _vs: nn::VarStore,
    pub(super) params: FlatParams,
    pub(super) actor: Mlp,
    pub(super) actor_net: Net,
    pub(super) log_std_net: Option<Net>,
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

/// The actor's outputs for rows of observations, from the engine: the means (clipped with gSDE),
/// and the clamped `log σ` (a `log σ` head) or the features (gSDE).
pub(super) struct ActorOut {
    pub(super) mean: Vec<f32>,
    pub(super) log_std: Vec<f32>,
    pub(super) features: Vec<f32>,
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
            *exploration = draw_exploration(&to_vec(log_std), 1, &mut self.rng);
        }
    }

    /// The actor's outputs for rows `obs`, from the engine.
    pub(super) fn actor_out(&self, obs: &[f32]) -> ActorOut {
        let n = obs.len() / self.obs_dim;
        let params = self.actor_opt.params().values();
        let pass = self.actor_net.forward(params, obs, n);
        let features = self.actor_net.features(&pass, obs);
        match &self.log_std_net {
            Some(head) => {
                let log_std = head.infer(params, features, n);
                let log_std = log_std.into_iter().map(|l| l.clamp(LOG_STD_MIN as f32, LOG_STD_MAX as f32)).collect();
                ActorOut { mean: pass.into_output(), log_std, features: Vec::new() }
            }
            None => {
                let features = features.to_vec();
                let clip = SDE_CLIP_MEAN as f32;
                let mean = pass.into_output().into_iter().map(|m| m.clamp(-clip, clip)).collect();
                ActorOut { mean, log_std: Vec::new(), features }
            }
        }
    }

    /// The critics' input rows: each observation row followed by its action row.
    pub(super) fn critic_input(&self, obs: &[f32], actions: &[f32]) -> Vec<f32> {
        super::super::off_policy::critic_input(obs, actions, self.obs_dim, self.act_dim)
    }

    /// Exploratory actions `tanh(mean + noise)` in `[-1, 1]` for the actor's outputs `out`: SAC's
    /// stochastic acting, while training (`Draw::Training`) and for stochastic evaluation
    /// (`Draw::Evaluation`). [`Sac::sample`] is the other sampler: a differentiable batch for the
    /// losses.
    ///
    /// The two draws differ: training adds `f64` noise (`f64` normals, or the agent's current gSDE
    /// matrix applied in `f64`); evaluation adds `f32` noise (`f32` normals, or a fresh gSDE matrix
    /// drawn from `rng`). The random draws come in the same order in both. `exp` and `tanh` are
    /// the engine's (`f32`) or `libm`'s (`f64`): the same on every CPU.
    pub(super) fn explore(noise: &Noise, out: &ActorOut, rng: &mut impl Rng, draw: Draw) -> Vec<f32> {
        let mean = &out.mean;
        match (noise, draw) {
            (Noise::Head(_), _) => mean
                .iter()
                .zip(&out.log_std)
                .map(|(m, ls)| match draw {
                    Draw::Training => {
                        let e: f64 = rng.sample(StandardNormal);
                        libm::tanh(*m as f64 + libm::exp(*ls as f64) * e) as f32
                    }
                    Draw::Evaluation => math::tanh(m + math::exp(*ls) * rng.sample::<f32, _>(StandardNormal)),
                })
                .collect(),
            (Noise::Sde { log_std, exploration }, draw) => {
                let (latent, dim) = (log_std.size()[0] as usize, log_std.size()[1] as usize);
                let fresh;
                let w = match draw {
                    Draw::Training => exploration,
                    Draw::Evaluation => {
                        fresh = draw_exploration(&to_vec(log_std), 1, rng);
                        &fresh
                    }
                };
                let noise = gsde_noise_only(&out.features, w, latent, dim);
                mean.iter()
                    .zip(noise)
                    .map(|(m, e)| match draw {
                        Draw::Training => libm::tanh(*m as f64 + e) as f32,
                        Draw::Evaluation => math::tanh(m + e as f32),
                    })
                    .collect()
            }
        }
    }
}
