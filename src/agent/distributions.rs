//! The action distributions of the agents, in the two forms they are used in:
//!
//! - **on copied-out network outputs, in Rust (`f64`)**: sampling while acting, and the
//!   log-probabilities, probabilities and variances that hand-written gradients need;
//! - **on tensors (autograd)**: log-probabilities, entropies and KL divergences inside losses.
//!
//! The families: categorical (logits), diagonal Gaussian (means and `log σ`), the squashed
//! Gaussian of SAC (`tanh` of a Gaussian, with the change-of-variables correction) and
//! generalised state-dependent exploration (gSDE, Raffin et al. 2022: noise `features · W` with
//! `W ~ N(0, σ²)` a `[features, actions]` matrix, so that the variance of action `j` is
//! `Σ_k features_k² σ_kj²`).
//!
//! Every function keeps the exact arithmetic its callers had (the order of operations and the
//! precision of each step), so that runs stay bit-for-bit reproducible across this refactor.

use rand::Rng;
use rand_distr::StandardNormal;
use tch::{Kind, Tensor};

use super::engine::math;

/// `ln √(2π)`, the constant of a Gaussian's log-density.
pub(crate) const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// The variance added to gSDE's (which vanishes with the features), as Stable-Baselines3.
const SDE_EPS: f64 = 1e-6;

// ---------------------------------------------------------------------------------------------
// Rust forms, on copied-out outputs
// ---------------------------------------------------------------------------------------------

/// The index of the largest value (the first on ties, as `argmax`): a categorical policy's mode
/// and a Q-network's greedy action.
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Samples an action from `logits` by inverting the cumulative distribution with one uniform
/// draw; returns it with its log-probability.
pub(crate) fn categorical_sample(logits: &[f32], rng: &mut impl Rng) -> (usize, f64) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| libm::exp((l - max) as f64)).collect();
    let total: f64 = exps.iter().sum();
    let mut u = rng.random::<f64>() * total;
    let mut a = logits.len() - 1;
    for (i, e) in exps.iter().enumerate() {
        if u < *e {
            a = i;
            break;
        }
        u -= e;
    }
    (a, (logits[a] - max) as f64 - libm::log(total))
}

/// Writes `log softmax(logits)` into `log_p` (log-sum-exp in `f64`).
pub(crate) fn categorical_log_probs(logits: &[f32], log_p: &mut [f64]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + libm::log(logits.iter().map(|&v| libm::exp(v as f64 - max)).sum::<f64>());
    log_p.iter_mut().zip(logits).for_each(|(l, &v)| *l = v as f64 - lse);
}

/// `softmax(logits)` in `f64`.
pub(crate) fn categorical_probs(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits.iter().map(|&v| libm::exp(v as f64 - max)).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// One draw from a diagonal Gaussian: `mean + exp(log_std) · ε` with `ε ~ N(0, 1)` in `f64`, one
/// draw per dimension in order (`log_std` cycles when `mean` holds several rows); pushes the
/// values to `out` and returns the log-density of the draw when it is one row.
pub(crate) fn gaussian_sample(mean: &[f32], log_std: &[f32], rng: &mut impl Rng, out: &mut Vec<f32>) -> f64 {
    let mut lp = 0.0f64;
    for (k, m) in mean.iter().enumerate() {
        let ls = log_std[k % log_std.len()];
        let eps: f64 = rng.sample(StandardNormal);
        out.push((*m as f64 + libm::exp(ls as f64) * eps) as f32);
        lp += -0.5 * eps * eps - ls as f64 - LOG_SQRT_2PI;
    }
    lp
}

/// Draws `count` gSDE matrices `W ~ N(0, exp(log_std)²)`, flattened (`f32` normals, one per
/// entry, matrix after matrix), for the `[features, dim]` values `log_std`.
pub(crate) fn draw_exploration(log_std: &[f32], count: usize, rng: &mut impl Rng) -> Vec<f32> {
    let std: Vec<f32> = log_std.iter().map(|&l| math::exp(l)).collect();
    (0..count).flat_map(|_| std.iter().map(|s| s * rng.sample::<f32, _>(StandardNormal)).collect::<Vec<_>>()).collect()
}

/// gSDE's noise `features · W` and its per-dimension variance `Σ_k features_k² σ_kj² + 1e-6`
/// (`f64`) for rows of features and matrices `W` (one per row, cycling), with `log_std` the
/// `[features, dim]` log standard deviations.
pub(crate) fn gsde_noise(log_std: &[f32], features: &[f32], matrices: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let sigma2: Vec<f64> = log_std.iter().map(|&l| (math::exp(l) as f64).powi(2)).collect();
    let latent = sigma2.len() / dim;
    let mut var = Vec::with_capacity(features.len() / latent * dim);
    for f in features.chunks_exact(latent) {
        for j in 0..dim {
            var.push((0..latent).map(|k| (f[k] as f64).powi(2) * sigma2[k * dim + j]).sum::<f64>() + SDE_EPS);
        }
    }
    (gsde_noise_only(features, matrices, latent, dim), var)
}

/// gSDE's noise `features · W` alone (what acting needs: no variances, no copy of `log_std`),
/// for rows of `latent` features and `[latent, dim]` matrices (one per row, cycling).
pub(crate) fn gsde_noise_only(features: &[f32], matrices: &[f32], latent: usize, dim: usize) -> Vec<f64> {
    let per_matrix = latent * dim;
    let n_matrices = matrices.len() / per_matrix;
    let mut noise = Vec::with_capacity(features.len() / latent * dim);
    for (row, f) in features.chunks_exact(latent).enumerate() {
        let w = &matrices[(row % n_matrices) * per_matrix..][..per_matrix];
        for j in 0..dim {
            noise.push((0..latent).map(|k| f[k] as f64 * w[k * dim + j] as f64).sum());
        }
    }
    noise
}

/// The log-density of one row of Gaussian noise with per-dimension variances `var`.
pub(crate) fn gaussian_log_density(noise: &[f64], var: &[f64]) -> f64 {
    noise.iter().zip(var).map(|(e, v)| -0.5 * e * e / v - 0.5 * libm::log(*v) - LOG_SQRT_2PI).sum()
}

// ---------------------------------------------------------------------------------------------
// Tensor forms (autograd), on `[rows, dim]` outputs
// ---------------------------------------------------------------------------------------------

/// The entropy of categorical rows from their log-probabilities, `[rows, 1]`.
pub(crate) fn categorical_entropy(log_p: &Tensor) -> Tensor {
    -(log_p.exp() * log_p).sum_dim_intlist(-1, true, Kind::Float)
}

/// `KL(p_teacher ‖ p)` per row, from log-probabilities, `[rows]`.
pub(crate) fn categorical_kl(log_p_teacher: &Tensor, log_p: &Tensor) -> Tensor {
    (log_p_teacher.exp() * (log_p_teacher - log_p)).sum_dim_intlist(-1, false, Kind::Float)
}

/// The log-density of standardised Gaussian deviations `z = (x - mean) / σ`, summed over the
/// last dimension: `Σ -z²/2 - log σ - ln √(2π)`.
pub(crate) fn gaussian_log_prob_std(z: &Tensor, log_std: &Tensor, keepdim: bool) -> Tensor {
    (z.square() * -0.5 - log_std - LOG_SQRT_2PI).sum_dim_intlist(-1, keepdim, Kind::Float)
}

/// The log-density of Gaussian deviations `diff = x - mean` with variances `var`, summed over
/// the last dimension: `Σ -diff²/(2 var) - ln(var)/2 - ln √(2π)`.
pub(crate) fn gaussian_log_prob_var(diff: &Tensor, var: &Tensor, keepdim: bool) -> Tensor {
    (diff.square() / var * -0.5 - var.log() * 0.5 - LOG_SQRT_2PI).sum_dim_intlist(-1, keepdim, Kind::Float)
}

/// The entropy of a diagonal Gaussian with state-independent `log σ` (a scalar).
pub(crate) fn gaussian_entropy_std(log_std: &Tensor) -> Tensor {
    (log_std + 0.5 + LOG_SQRT_2PI).sum(Kind::Float)
}

/// The entropy of diagonal Gaussian rows with variances `var`, `[rows, 1]`.
pub(crate) fn gaussian_entropy_var(var: &Tensor) -> Tensor {
    (var.log() * 0.5 + 0.5 + LOG_SQRT_2PI).sum_dim_intlist(-1, true, Kind::Float)
}

/// `KL(N(mean_t, var_t) ‖ N(mean, var))` per row, summed over dimensions, `[rows]`.
pub(crate) fn gaussian_kl(mean_t: &Tensor, var_t: &Tensor, mean: &Tensor, var: &Tensor) -> Tensor {
    ((var.log() - var_t.log() + (var_t + (mean_t - mean).square()) / var - 1.0) * 0.5).sum_dim_intlist(
        -1,
        false,
        Kind::Float,
    )
}

/// gSDE's action variances `features² · σ² + 1e-6` (the features detached, as
/// Stable-Baselines3), `[rows, dim]`.
pub(crate) fn gsde_variance(features: &Tensor, log_std: &Tensor) -> Tensor {
    features.detach().square().matmul(&log_std.exp().square()) + SDE_EPS
}

/// The tanh squashing's log-Jacobian `Σ log(1 - tanh(u)² + 1e-6)` for squashed actions, `[rows]`:
/// subtracted from the Gaussian's log-density it gives the squashed action's.
pub(crate) fn squash_correction(actions: &Tensor) -> Tensor {
    (-actions.square() + (1.0 + 1e-6)).log().sum_dim_intlist(-1, false, Kind::Float)
}
