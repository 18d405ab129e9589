//! The action distributions of the agents, computed in Rust on copied-out network outputs:
//! categorical (logits), diagonal Gaussian, and generalised state-dependent exploration
//! (gSDE: noise `features · W` with `W ~ N(0, σ²)`).

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;
use tch::Tensor;

use super::to_vec;

/// `ln √(2π)`, the constant of a Gaussian's log-density.
pub(crate) const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// Draws `count` gSDE matrices `W ~ N(0, exp(log_std)²)`, flattened.
pub(crate) fn draw_exploration(log_std: &Tensor, count: usize, rng: &mut StdRng) -> Vec<f32> {
    let std = to_vec(&log_std.exp());
    (0..count).flat_map(|_| std.iter().map(|s| s * rng.sample::<f32, _>(StandardNormal)).collect::<Vec<_>>()).collect()
}

/// The index of the largest value (the first on ties, as `argmax`).
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

