//! PPO's loss (Schulman et al. 2017, eq. 9): the clipped surrogate
//! `-E[min(r A, clip(r, 1 ± ε) A)]`, the (optionally clipped) value loss, the entropy bonus and,
//! with a teacher, the distillation term `w · KL(π_teacher ‖ π)`; once as an autograd graph
//! ([`Ppo::loss`]) and once differentiated by hand ([`Ppo::manual_gradients`], checked against
//! autograd by `manual_gradients_match_autograd`).

use tch::nn::Module;
use tch::{Kind, Tensor};

use super::super::distributions::{
    LOG_SQRT_2PI, categorical_entropy, categorical_kl, categorical_log_probs, categorical_probs, gaussian_entropy_std,
    gaussian_entropy_var, gaussian_kl, gaussian_log_prob_std, gaussian_log_prob_var, gsde_variance,
};
use super::super::engine::Net;
use super::super::nn::Mlp;
use super::super::optim::FlatParams;
use super::super::stats::TrainStats;
use super::super::{Distill, rows, snapshot, sorted_variables, to_vec};
use super::rollout::Minibatch;
use super::{Head, Ppo};

/// A minibatch's terms as Stable-Baselines3 logs them (`train/...`; [`Losses::record`]), with
/// the approximate KL divergence that stops an update early.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Losses {
    /// The clipped surrogate's loss, `-mean(min(r A, clip(r, 1 ± ε) A))`.
    pub policy: f64,
    /// The (clipped) value prediction's mean squared error.
    pub value: f64,
    /// The policy's mean entropy.
    pub entropy: f64,
    /// The approximate KL divergence from the rollout's policy, `mean((r - 1) - log r)`.
    pub kl: f64,
    /// The share of rows whose ratio left `1 ± ε`.
    pub clip_fraction: f64,
    /// A2C's policy loss, `-mean(A log π)` (the same gradient as the surrogate's at ratio 1).
    pub a2c_policy: f64,
}

impl Losses {
    /// Adds the terms to `stats` under SB3's tags (A2C's for an A2C: `train/policy_loss`, no KL
    /// nor clipping); `train/loss` is the loss without distillation.
    pub(super) fn record(&self, cfg: &super::PpoConfig, a2c: bool, stats: &mut TrainStats) {
        let policy = if a2c { self.a2c_policy } else { self.policy };
        stats.add(if a2c { "train/policy_loss" } else { "train/policy_gradient_loss" }, policy);
        stats.add("train/value_loss", self.value);
        stats.add("train/entropy_loss", -self.entropy);
        if !a2c {
            stats.add("train/approx_kl", self.kl);
            stats.add("train/clip_fraction", self.clip_fraction);
        }
        stats.add("train/loss", policy + cfg.vf_coef * self.value - cfg.ent_coef * self.entropy);
    }
}

/// A frozen copy of the actor to distil from, run in the engine.
pub(super) struct Teacher {
    _vs: tch::nn::VarStore,
    params: FlatParams,
    /// The shared trunk the actor's head reads (with `share_trunk`).
    shared: Option<Net>,
    actor: Net,
    log_std: Option<Tensor>,
    distill: Distill,
}

impl Ppo {
    /// Makes a frozen copy of the actor as it is now the teacher to distil from.
    pub(super) fn install_teacher(&mut self, distill: Distill) {
        let out = match &self.head {
            Head::Categorical { n } => *n,
            Head::Gaussian { dim, .. } => *dim,
        };
        let (cfg, obs_dim) = (&self.cfg, self.obs_dim);
        let log_std_shape = self.log_std.as_ref().map(|t| t.size());
        // The actor as the agent builds it: its own network, or the shared trunk and its head.
        let (actor_net, heads_read) = match cfg.share_trunk {
            true => (cfg.head_net(), self.nets[0].features_width()),
            false => (cfg.net.clone(), obs_dim),
        };
        let (vs, log_std) = snapshot(&self.vs, &["actor.", "shared."], |root| {
            if cfg.share_trunk {
                Mlp::torso(&(root / "shared"), &cfg.net, obs_dim);
            }
            Mlp::new(&(root / "actor"), &actor_net, heads_read, out, 0.01);
            log_std_shape.map(|shape| (root / "actor").var("log_std", &shape, tch::nn::Init::Const(0.0)))
        });
        let params = FlatParams::new(sorted_variables(&vs));
        let actor = params.mlp("actor", &actor_net).expect("the teacher's actor");
        let shared = cfg.share_trunk.then(|| params.torso("shared", &cfg.net).expect("the teacher's trunk"));
        self.teacher = Some(Teacher { _vs: vs, params, shared, actor, log_std, distill });
    }

    /// The distillation teacher and its weight now, while the weight is above zero.
    pub(super) fn active_teacher(&self) -> Option<(&Teacher, f64)> {
        let teacher = self.teacher.as_ref()?;
        let w = teacher.distill.weight_at(self.steps);
        (w > 0.0).then_some((teacher, w))
    }

    /// `w * mean KL(π_teacher ‖ π)` over rows `obs`, as an autograd graph (the teacher's outputs
    /// from the engine, constants of the graph).
    pub(super) fn distill_loss(&self, obs: &[f32]) -> Option<Tensor> {
        let (teacher, w) = self.active_teacher()?;
        let n = obs.len() / self.obs_dim;
        let x = super::heads_input(teacher.shared.as_ref(), teacher.params.values(), obs, n);
        let pass = teacher.actor.forward(teacher.params.values(), &x, n);
        let t_features = rows(teacher.actor.features(&pass, &x), teacher.actor.features_width());
        let t_out = rows(pass.output(), teacher.actor.outputs());
        let obs = rows(obs, self.obs_dim);
        let features = self.actor.features(&self.heads_forward(&obs));
        let out = self.actor.head_forward(&features);
        let kl = match &self.head {
            Head::Categorical { .. } => {
                let (lp_t, lp_s) = (t_out.log_softmax(-1, Kind::Float), out.log_softmax(-1, Kind::Float));
                categorical_kl(&lp_t, &lp_s)
            }
            Head::Gaussian { sde, .. } => {
                let (ls_s, ls_t) = (self.log_std(), teacher.log_std.as_ref().expect("Gaussian head"));
                let (var_s, var_t) = if *sde {
                    (gsde_variance(&features, ls_s), gsde_variance(&t_features, ls_t))
                } else {
                    ((ls_s * 2.0).exp().expand_as(&out), (ls_t * 2.0).exp().expand_as(&out))
                };
                gaussian_kl(&t_out, &var_t, &out, &var_s)
            }
        };
        Some(kl.mean(Kind::Float) * w)
    }

    /// Adds the gradient of [`Ppo::distill_loss`] with respect to the actor's outputs (`out`,
    /// `[b, out_dim]`) and plain Gaussian `log_std` to `g_out` and `g_log_std`.
    pub(super) fn distill_gradients(&self, obs: &[f32], out: &[f32], g_out: &mut [f32], g_log_std: &mut [f64]) {
        let Some((teacher, w)) = self.active_teacher() else { return };
        let n = obs.len() / self.obs_dim;
        let x = super::heads_input(teacher.shared.as_ref(), teacher.params.values(), obs, n);
        let t_out = teacher.actor.infer(teacher.params.values(), &x, n);
        let dim = g_out.len() / n;
        let scale = w / (out.len() / dim) as f64;
        match &self.head {
            Head::Categorical { .. } => {
                for ((g, s), t) in g_out.chunks_exact_mut(dim).zip(out.chunks_exact(dim)).zip(t_out.chunks_exact(dim)) {
                    let (p_s, p_t) = (categorical_probs(s), categorical_probs(t));
                    for k in 0..dim {
                        g[k] += (scale * (p_s[k] - p_t[k])) as f32;
                    }
                }
            }
            Head::Gaussian { .. } => {
                let ls_s = to_vec(self.log_std());
                let ls_t = to_vec(teacher.log_std.as_ref().expect("Gaussian head"));
                for ((g, s), t) in g_out.chunks_exact_mut(dim).zip(out.chunks_exact(dim)).zip(t_out.chunks_exact(dim)) {
                    for j in 0..dim {
                        let var_s = libm::exp(2.0 * ls_s[j] as f64);
                        let var_t = libm::exp(2.0 * ls_t[j] as f64);
                        let diff = s[j] as f64 - t[j] as f64;
                        g[j] += (scale * diff / var_s) as f32;
                        g_log_std[j] += scale * (1.0 - (var_t + diff * diff) / var_s);
                    }
                }
            }
        }
    }

    /// What the actor and the critic read, as an autograd graph: the shared trunk's features of
    /// rows `obs`, or the rows.
    fn heads_forward(&self, obs: &Tensor) -> Tensor {
        match &self.shared {
            Some(trunk) => trunk.forward(obs),
            None => obs.shallow_clone(),
        }
    }

    /// Log-probabilities of `actions` and entropies under the current policy for the heads'
    /// input `x` ([`Ppo::heads_forward`]).
    fn evaluate_actions(&self, x: &Tensor, actions: &Tensor, need_entropy: bool) -> (Tensor, Option<Tensor>) {
        let features = self.actor.features(x);
        let out = self.actor.head_forward(&features);
        match &self.head {
            Head::Categorical { .. } => {
                let log_p = out.log_softmax(-1, Kind::Float);
                let taken = log_p.gather(1, actions, false);
                let entropy = need_entropy.then(|| categorical_entropy(&log_p));
                (taken, entropy)
            }
            Head::Gaussian { sde: true, .. } => {
                let var = gsde_variance(&features, self.log_std());
                let lp = gaussian_log_prob_var(&(actions - &out), &var, true);
                let entropy = need_entropy.then(|| gaussian_entropy_var(&var));
                (lp, entropy)
            }
            Head::Gaussian { .. } => {
                let log_std = self.log_std();
                let z = (actions - &out) * (-log_std).exp();
                let lp = gaussian_log_prob_std(&z, log_std, true);
                let entropy = need_entropy.then(|| gaussian_entropy_std(log_std));
                (lp, entropy)
            }
        }
    }

    /// The PPO loss of a minibatch as an autograd graph, and its terms.
    pub(super) fn loss(&self, mb: &Minibatch, clip: f64) -> (Tensor, Losses) {
        let n = mb.len() as i64;
        let column = |v: &[f32]| Tensor::from_slice(v).view([n, 1]);
        let actions = match self.head {
            Head::Categorical { .. } => {
                Tensor::from_slice(&mb.actions.iter().map(|&a| a as i64).collect::<Vec<i64>>()).view([n, 1])
            }
            Head::Gaussian { dim, .. } => rows(&mb.actions, dim),
        };
        let (advantages, old_values) = (column(&mb.advantages), column(&mb.old_values));
        let x = self.heads_forward(&rows(&mb.obs, self.obs_dim));
        let (log_prob, entropy) = self.evaluate_actions(&x, &actions, true);
        let log_ratio = &log_prob - column(&mb.old_log_probs);
        let ratio = log_ratio.exp();
        let surrogate = (&advantages * &ratio).min_other(&(&advantages * ratio.clamp(1.0 - clip, 1.0 + clip)));
        let values = self.critic.forward(&x);
        let values = match self.cfg.clip_range_vf {
            Some(c) => &old_values + (&values - &old_values).clamp(-c, c),
            None => values,
        };
        let value_loss = values.mse_loss(&column(&mb.returns), tch::Reduction::Mean);
        let terms = tch::no_grad(|| Losses {
            policy: -surrogate.mean(Kind::Float).double_value(&[]),
            value: value_loss.double_value(&[]),
            entropy: entropy.as_ref().map_or(0.0, |e| e.mean(Kind::Float).double_value(&[])),
            kl: ((&ratio - 1.0) - &log_ratio).mean(Kind::Float).double_value(&[]),
            clip_fraction: (&ratio - 1.0).abs().gt(clip).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]),
            a2c_policy: -(&advantages * &log_prob).mean(Kind::Float).double_value(&[]),
        });
        let mut loss = value_loss * self.cfg.vf_coef - surrogate.mean(Kind::Float);
        if let Some(entropy) = entropy.filter(|_| self.cfg.ent_coef != 0.0) {
            loss -= entropy.mean(Kind::Float) * self.cfg.ent_coef;
        }
        if let Some(distill) = self.distill_loss(&mb.obs) {
            loss += distill;
        }
        (loss, terms)
    }

    /// The gradient of the same loss computed by hand, written into the optimiser's gradient
    /// buffer: each network's forward pass in the engine, the loss's derivatives with respect to
    /// the networks' outputs in Rust, and each network's backward pass in the engine. Returns the
    /// loss's terms. Categorical and plain Gaussian policies only (gSDE takes the autograd path).
    /// A shared trunk runs once; its gradient is the sum of what the two heads send back.
    pub(super) fn manual_gradients(&mut self, mb: &Minibatch, clip: f64) -> Losses {
        let b = mb.len();
        let x = mb.obs.as_slice();
        let shared = self.shared_net.as_ref().map(|net| net.forward(self.opt.params().values(), x, b));
        let heads_input = shared.as_ref().map_or(x, |pass| pass.output());
        let passes = [0, 1].map(|j| self.nets[j].forward(self.opt.params().values(), heads_input, b));
        let (mut out, values) = (std::borrow::Cow::Borrowed(passes[0].output()), passes[1].output());
        if self.cfg.tasks.is_some() {
            self.mask_logits(x, out.to_mut());
        }
        let out = &*out;
        let inv_b = 1.0 / b as f64;
        let ent_coef = self.cfg.ent_coef;
        let mut g_out = vec![0.0f32; out.len()];
        // Sums over the rows, divided by their number at the end.
        let mut sums = Losses::default();
        // d(policy loss)/d(log-prob) for row i, given its log-prob.
        let mut d_log_prob = |i: usize, lp: f64| {
            let log_ratio = lp - mb.old_log_probs[i] as f64;
            let ratio = libm::exp(log_ratio);
            sums.kl += (ratio - 1.0) - log_ratio;
            sums.clip_fraction += f64::from((ratio - 1.0).abs() > clip);
            let adv = mb.advantages[i] as f64;
            let (unclipped, clipped) = (adv * ratio, adv * ratio.clamp(1.0 - clip, 1.0 + clip));
            sums.policy -= unclipped.min(clipped);
            sums.a2c_policy -= adv * lp;
            if unclipped <= clipped { -adv * ratio * inv_b } else { 0.0 }
        };
        let mut g_log_std = Vec::new();
        match &self.head {
            Head::Categorical { n } => {
                let n = *n;
                let mut log_p = vec![0.0f64; n];
                for i in 0..b {
                    let z = &out[i * n..(i + 1) * n];
                    categorical_log_probs(z, &mut log_p);
                    let a = mb.actions[i] as usize;
                    let d = d_log_prob(i, log_p[a]);
                    let entropy: f64 = -log_p.iter().map(|&l| libm::exp(l) * l).sum::<f64>();
                    sums.entropy += entropy;
                    for k in 0..n {
                        let p = libm::exp(log_p[k]);
                        let one_hot = if k == a { 1.0 } else { 0.0 };
                        g_out[i * n + k] = (d * (one_hot - p) + ent_coef * inv_b * p * (log_p[k] + entropy)) as f32;
                    }
                }
            }
            Head::Gaussian { dim, .. } => {
                let dim = *dim;
                let log_std: Vec<f64> = to_vec(self.log_std()).iter().map(|&v| v as f64).collect();
                sums.entropy = b as f64 * log_std.iter().map(|l| l + 0.5 + LOG_SQRT_2PI).sum::<f64>();
                g_log_std = vec![-ent_coef; dim];
                for i in 0..b {
                    let mut lp = 0.0;
                    let mut z = vec![0.0f64; dim];
                    for j in 0..dim {
                        z[j] = (mb.actions[i * dim + j] as f64 - out[i * dim + j] as f64) * libm::exp(-log_std[j]);
                        lp += -0.5 * z[j] * z[j] - log_std[j] - LOG_SQRT_2PI;
                    }
                    let d = d_log_prob(i, lp);
                    for j in 0..dim {
                        g_out[i * dim + j] = (d * z[j] * libm::exp(-log_std[j])) as f32;
                        g_log_std[j] += d * (z[j] * z[j] - 1.0);
                    }
                }
            }
        }
        self.distill_gradients(x, out, &mut g_out, &mut g_log_std);
        let mut g_values = vec![0.0f32; b];
        for i in 0..b {
            let (v, old) = (values[i] as f64, mb.old_values[i] as f64);
            let (v, pass) = match self.cfg.clip_range_vf {
                Some(c) => (old + (v - old).clamp(-c, c), (v - old).abs() <= c),
                None => (v, true),
            };
            let error = v - mb.returns[i] as f64;
            sums.value += error * error;
            if pass {
                g_values[i] = (self.cfg.vf_coef * 2.0 * error * inv_b) as f32;
            }
        }
        // The buffer comes cleared; the backward passes write every network parameter's gradient.
        let (params, grads) = self.opt.values_and_gradients();
        match (&self.shared_net, &shared) {
            (Some(net), Some(pass)) => {
                let [actor, critic] = [(0, &g_out), (1, &g_values)]
                    .map(|(j, g)| self.nets[j].input_gradient(params, heads_input, &passes[j], g, Some(&mut *grads)));
                let sum: Vec<f32> = actor.iter().zip(&critic).map(|(a, c)| a + c).collect();
                net.backward(params, x, pass, &sum, None, grads);
            }
            _ => {
                self.nets[0].backward(params, x, &passes[0], &g_out, None, grads);
                self.nets[1].backward(params, x, &passes[1], &g_values, None, grads);
            }
        }
        if let Some(offset) = self.log_std_offset {
            for (g, &v) in grads[offset..offset + g_log_std.len()].iter_mut().zip(&g_log_std) {
                *g = v as f32;
            }
        }
        Losses {
            policy: sums.policy * inv_b,
            value: sums.value * inv_b,
            entropy: sums.entropy * inv_b,
            kl: sums.kl * inv_b,
            clip_fraction: sums.clip_fraction * inv_b,
            a2c_policy: sums.a2c_policy * inv_b,
        }
    }
}

#[cfg(test)]
mod tests;
