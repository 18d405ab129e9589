//! SAC's twin critics as one network of stacked layers. Each critic keeps its named parameters
//! (`critic.q0.trunk.0.weight`, `critic.q1.trunk.0.weight`, ...: the checkpoint contract), but
//! the two networks' matching parameters lie next to each other in one flat buffer (the critic
//! optimiser's, or the target networks' own), so that layer `i` of both is one `[2, out, in]`
//! view and each layer of a pass is one batched product (`baddbmm`/`bmm`) instead of two.
//! Gradients are written by hand into the matching views of the optimiser's gradient buffer.

use tch::Tensor;

use super::super::nn::Activation;
use super::super::optim::{Adam, FlatParams};

/// The names of the twin critics' parameters under `prefix` (`critic` or `critic_target`), in
/// the interleaved order that stacks them: for each layer, weight then bias, network 0 then 1.
pub(super) fn twin_order(prefix: &str, layers: usize) -> Vec<[String; 2]> {
    let layer = |i: usize| if i + 1 < layers { format!("trunk.{i}") } else { "head".to_string() };
    (0..layers)
        .flat_map(|i| ["weight", "bias"].map(|part| [0, 1].map(|k| format!("{prefix}.q{k}.{}.{part}", layer(i)))))
        .collect()
}

/// One stacked layer: weights `[2, out, in]`, biases `[2, out]`, and (for the online critics)
/// the views of the gradient buffer that receive their gradients.
struct Layer {
    weight: Tensor,
    bias: Tensor,
    grads: Option<(Tensor, Tensor)>,
}

/// Both critics, layer by layer.
pub(super) struct Twin {
    layers: Vec<Layer>,
    activation: Activation,
}

/// What a backward pass needs of a forward one: each layer's input, `[2, rows, in]`.
pub(super) struct TwinActs {
    inputs: Vec<Tensor>,
}

impl Twin {
    /// The online critics, over the parameters and gradients of `opt`, whose parameters must be
    /// in [`twin_order`] (`None` when they are not).
    pub(super) fn online(opt: &Adam, layers: usize, activation: Activation) -> Option<Self> {
        let pairs = twin_order("critic", layers);
        let layers = pairs
            .chunks_exact(2)
            .map(|wb| {
                let (weight, dw) = opt.stacked(&wb[0])?;
                let (bias, db) = opt.stacked(&wb[1])?;
                Some(Layer { weight, bias, grads: Some((dw, db)) })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Twin { layers, activation })
    }

    /// The target critics, over `params` (laid out in [`twin_order`] of `critic_target`).
    pub(super) fn target(params: &FlatParams, layers: usize, activation: Activation) -> Option<Self> {
        let pairs = twin_order("critic_target", layers);
        let layers = pairs
            .chunks_exact(2)
            .map(|wb| {
                let weight = params.stacked(params.flat(), &wb[0])?;
                let bias = params.stacked(params.flat(), &wb[1])?;
                Some(Layer { weight, bias, grads: None })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Twin { layers, activation })
    }

    /// Both critics' values `[2, rows, 1]` for the input rows `x` (`[rows, in]`: observations and
    /// actions side by side), without autograd; with `cache`, the inputs a backward pass needs.
    pub(super) fn forward(&self, x: &Tensor, cache: bool) -> (Tensor, Option<TwinActs>) {
        tch::no_grad(|| {
            let size = x.size();
            let mut h = x.unsqueeze(0).expand([2, size[0], size[1]], false);
            let mut inputs = Vec::with_capacity(if cache { self.layers.len() } else { 0 });
            let last = self.layers.len() - 1;
            for (i, layer) in self.layers.iter().enumerate() {
                let mut next = layer.bias.unsqueeze(1).baddbmm(&h, &layer.weight.transpose(1, 2), 1.0, 1.0);
                if i < last {
                    self.activation.apply_(&mut next);
                }
                if cache {
                    inputs.push(h);
                }
                h = next;
            }
            (h, cache.then_some(TwinActs { inputs }))
        })
    }

    /// Back-propagates `grad_out` (`[2, rows, 1]`, the loss's gradient with respect to each
    /// critic's values) through both critics: with `weights`, writes the parameters' gradients
    /// into the optimiser's views; with `input_columns = Some(c)`, returns the gradient with
    /// respect to the input's columns from `c` on (the actions), summed over the two critics.
    pub(super) fn backward(
        &self,
        acts: &TwinActs,
        grad_out: &Tensor,
        weights: bool,
        input_columns: Option<i64>,
    ) -> Option<Tensor> {
        tch::no_grad(|| {
            let mut grad = grad_out.shallow_clone();
            for (i, layer) in self.layers.iter().enumerate().rev() {
                let input = &acts.inputs[i];
                if weights && let Some((dw, db)) = &layer.grads {
                    let _ = grad.transpose(1, 2).bmm_out(dw, input);
                    let _ = grad.sum_intlist_out(db, [1i64].as_slice(), false, None::<tch::Kind>);
                }
                if i > 0 {
                    grad = self.activation.backward(&grad.bmm(&layer.weight), input);
                } else if let Some(from) = input_columns {
                    let width = layer.weight.size()[2] - from;
                    return Some(grad.bmm(&layer.weight.narrow(2, from, width)).sum_dim_intlist(
                        [0i64].as_slice(),
                        false,
                        None::<tch::Kind>,
                    ));
                }
            }
            None
        })
    }
}
