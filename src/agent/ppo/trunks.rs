//! The actor's and the critic's trunks for PPO's passes without autograd (acting and the
//! hand-written gradient): one stacked network ([`Stacked`]) when every hidden width is a
//! multiple of [`BLOCK`], else one stacked network of one each. Either way the numbers are
//! those of the two networks' own passes (see `nn/stacked.rs`); stacking only saves operations.

use tch::Tensor;

use super::super::nn::{BLOCK, MlpConfig, Stacked, StackedActs, StackedParams};
use super::super::optim::Adam;

/// The trunks, over the optimiser's parameters and gradients.
pub(super) struct Trunks {
    /// `[both]` or `[actor, critic]`.
    parts: Vec<Stacked>,
}

/// One forward pass: each part's output `[k, rows, width]` and what its backward pass needs.
pub(super) struct Pass {
    outputs: Vec<Tensor>,
    acts: Vec<StackedActs>,
}

impl Trunks {
    pub(super) fn new(opt: &Adam, net: &MlpConfig) -> Self {
        let names = |networks: &[&str]| -> Vec<Vec<String>> {
            (0..net.hidden.len())
                .flat_map(|i| {
                    ["weight", "bias"].map(|part| networks.iter().map(|n| format!("{n}.trunk.{i}.{part}")).collect())
                })
                .collect()
        };
        let groups: &[&[&str]] = match net.hidden.iter().all(|w| w % BLOCK == 0) {
            true => &[&["actor", "critic"]],
            false => &[&["actor"], &["critic"]],
        };
        let parts = groups
            .iter()
            .map(|g| {
                // In name order the critic's parameters follow the actor's at one spacing.
                Stacked::new(StackedParams::Trained(opt), g.len(), &names(g), net.activation, true)
                    .expect("trunks laid out alike")
            })
            .collect();
        Trunks { parts }
    }

    /// Network `j`'s (0: actor, 1: critic) slice of per-part tensors.
    fn slice(&self, parts: &[Tensor], j: i64) -> Tensor {
        match self.parts.len() {
            1 => parts[0].get(j),
            _ => parts[j as usize].get(0),
        }
    }

    /// Both trunks' features for the rows `x`, as the training pass computes them
    /// ([`Stacked::forward`]).
    pub(super) fn forward(&self, x: &Tensor) -> Pass {
        let (outputs, acts) = self
            .parts
            .iter()
            .map(|p| {
                let (out, acts) = p.forward(x, true);
                (out, acts.expect("cached"))
            })
            .unzip();
        Pass { outputs, acts }
    }

    /// Network `j`'s features from a pass.
    pub(super) fn features(&self, pass: &Pass, j: i64) -> Tensor {
        self.slice(&pass.outputs, j)
    }

    /// Both trunks' features `[actor, critic]` as acting computes them ([`Stacked::infer`]).
    pub(super) fn infer(&self, x: &Tensor) -> [Tensor; 2] {
        let outputs: Vec<Tensor> = self.parts.iter().map(|p| p.infer(x)).collect();
        [self.slice(&outputs, 0), self.slice(&outputs, 1)]
    }

    /// Writes the trunks' parameter gradients into the optimiser's views, given the loss's
    /// gradient with respect to each network's features: `write(j, view)` fills network `j`'s
    /// view (the heads' backward passes write there directly).
    pub(super) fn backward(&self, pass: &Pass, write: &mut dyn FnMut(i64, &Tensor)) {
        let grads: Vec<Tensor> = pass.outputs.iter().map(|o| o.empty_like()).collect();
        for j in 0..2 {
            write(j, &self.slice(&grads, j));
        }
        for ((part, acts), grad) in self.parts.iter().zip(&pass.acts).zip(&grads) {
            part.backward(acts, grad, true, None);
        }
    }
}
