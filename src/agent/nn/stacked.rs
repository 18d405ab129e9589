//! Networks of one shape run as one. Their parameters keep their own names (the checkpoint
//! contract), but matching parameters lie at equally spaced offsets of one flat buffer (an
//! optimiser's, or a target network's), so that layer `i` of all `k` networks is one
//! `[k, out, in]` view and each layer of a pass is one batched product (`baddbmm`/`bmm`)
//! instead of `k`. libtorch's batched product computes each slice as the unbatched product
//! (`addmm`, `mm`) does, bit for bit, except where the unbatched one is a matrix-vector product
//! (an output one column wide): PPO stacks its actor's and critic's trunks (hidden widths)
//! and keeps its heads apart, so its numbers did not move; SAC stacks its twin critics whole.

use tch::Tensor;

use super::Activation;
use crate::agent::optim::{Adam, FlatParams};

/// One stacked layer: weights `[k, out, in]`, biases `[k, out]`, and (for trained networks) the
/// views of the gradient buffer that receive their gradients.
struct Layer {
    weight: Tensor,
    bias: Tensor,
    grads: Option<(Tensor, Tensor)>,
}

/// `k` networks of one shape, layer by layer, all reading the same input rows.
pub(crate) struct Stacked {
    networks: i64,
    layers: Vec<Layer>,
    activation: Activation,
    /// Whether the last layer's output goes through the activation (a trunk) or not (a network
    /// ending in a linear head).
    activate_last: bool,
}

/// What a backward pass needs of a forward one: each layer's input and the output,
/// `[k, rows, width]`.
pub(crate) struct StackedActs {
    inputs: Vec<Tensor>,
    output: Tensor,
}

impl Stacked {
    /// `networks` networks over the parameters and gradients of `opt`: `names` holds, for each
    /// layer, the weights' names then the biases' (one name per network each), which must be
    /// equally spaced in the optimiser's order (`None` when they are not).
    pub(crate) fn trained<N: AsRef<[String]>>(
        opt: &Adam,
        networks: usize,
        names: &[N],
        activation: Activation,
        activate_last: bool,
    ) -> Option<Self> {
        Self::build(networks, names, activation, activate_last, |w, b| {
            let ((weight, dw), (bias, db)) = (opt.stacked(w)?, opt.stacked(b)?);
            Some(Layer { weight, bias, grads: Some((dw, db)) })
        })
    }

    /// Networks that are not trained (targets), over `params`, named as in [`Stacked::trained`].
    pub(crate) fn fixed<N: AsRef<[String]>>(
        params: &FlatParams,
        networks: usize,
        names: &[N],
        activation: Activation,
        activate_last: bool,
    ) -> Option<Self> {
        Self::build(networks, names, activation, activate_last, |w, b| {
            let (weight, bias) = (params.stacked(params.flat(), w)?, params.stacked(params.flat(), b)?);
            Some(Layer { weight, bias, grads: None })
        })
    }

    fn build<N: AsRef<[String]>>(
        networks: usize,
        names: &[N],
        activation: Activation,
        activate_last: bool,
        layer: impl Fn(&[String], &[String]) -> Option<Layer>,
    ) -> Option<Self> {
        let layers =
            names.chunks_exact(2).map(|wb| layer(wb[0].as_ref(), wb[1].as_ref())).collect::<Option<Vec<_>>>()?;
        let networks = networks as i64;
        (layers.iter().all(|l| l.weight.size()[0] == networks)).then_some(Stacked {
            networks,
            layers,
            activation,
            activate_last,
        })
    }

    /// Every network's output `[k, rows, out]` for the input rows `x` (`[rows, in]`, shared by
    /// all), without autograd; with `cache`, what a backward pass needs. Without layers, the
    /// input repeated.
    pub(crate) fn forward(&self, x: &Tensor, cache: bool) -> (Tensor, Option<StackedActs>) {
        tch::no_grad(|| {
            let size = x.size();
            let mut h = x.unsqueeze(0).expand([self.networks, size[0], size[1]], false);
            let mut inputs = Vec::with_capacity(if cache { self.layers.len() } else { 0 });
            let last = self.layers.len().saturating_sub(1);
            for (i, layer) in self.layers.iter().enumerate() {
                let activated = i < last || self.activate_last;
                let scale = if activated { self.activation.prescale() } else { 1.0 };
                let mut next = layer.bias.unsqueeze(1).baddbmm(&h, &layer.weight.transpose(1, 2), scale, scale);
                if activated {
                    self.activation.apply_prescaled_(&mut next);
                }
                if cache {
                    inputs.push(h);
                }
                h = next;
            }
            let acts = cache.then(|| StackedActs { inputs, output: h.shallow_clone() });
            (h, acts)
        })
    }

    /// Back-propagates `grad_out` (`[k, rows, out]`, the loss's gradient with respect to each
    /// network's output) through all of them: with `weights`, writes the parameters' gradients
    /// into the optimiser's views; with `input_columns = Some(c)`, returns the gradient with
    /// respect to the input's columns from `c` on, summed over the networks.
    pub(crate) fn backward(
        &self,
        acts: &StackedActs,
        grad_out: &Tensor,
        weights: bool,
        input_columns: Option<i64>,
    ) -> Option<Tensor> {
        tch::no_grad(|| {
            let mut grad = match self.activate_last && !self.layers.is_empty() {
                true => self.activation.backward(grad_out, &acts.output),
                false => grad_out.shallow_clone(),
            };
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
