//! SAC's twin critics as one network of stacked layers ([`Stacked`]). Each critic keeps its
//! named parameters (`critic.q0.trunk.0.weight`, `critic.q1.trunk.0.weight`, ...: the checkpoint
//! contract), but the two networks' matching parameters lie next to each other in one flat
//! buffer (the critic optimiser's, or the target networks' own), so that layer `i` of both is
//! one `[2, out, in]` view and each layer of a pass is one batched product instead of two.

use super::super::nn::{Activation, Stacked, StackedParams};
use super::super::optim::{Adam, FlatParams};

/// The names of the twin critics' parameters under `prefix` (`critic` or `critic_target`), in
/// the interleaved order that stacks them: for each layer, weight then bias, network 0 then 1.
pub(super) fn twin_order(prefix: &str, layers: usize) -> Vec<[String; 2]> {
    let layer = |i: usize| if i + 1 < layers { format!("trunk.{i}") } else { "head".to_string() };
    (0..layers)
        .flat_map(|i| ["weight", "bias"].map(|part| [0, 1].map(|k| format!("{prefix}.q{k}.{}.{part}", layer(i)))))
        .collect()
}

/// The online critics, over the parameters and gradients of `opt`, whose parameters must be in
/// [`twin_order`] (`None` when they are not).
pub(super) fn online(opt: &Adam, layers: usize, activation: Activation) -> Option<Stacked> {
    Stacked::new(StackedParams::Trained(opt), 2, &twin_order("critic", layers), activation, false)
}

/// The target critics, over `params` (laid out in [`twin_order`] of `critic_target`).
pub(super) fn target(params: &FlatParams, layers: usize, activation: Activation) -> Option<Stacked> {
    Stacked::new(StackedParams::Fixed(params), 2, &twin_order("critic_target", layers), activation, false)
}
