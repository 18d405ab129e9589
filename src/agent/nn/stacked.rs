//! Networks of one shape run as one. Their parameters keep their own names (the checkpoint
//! contract), but matching parameters lie at equally spaced offsets of one flat buffer (an
//! optimiser's, or a target network's), so that layer `i` of all `k` networks is one
//! `[k, out, in]` view and each layer of a pass is one batched product (`baddbmm`/`bmm`)
//! instead of `k`.
//!
//! **When a stacked pass equals the networks' own passes bit for bit** (one libtorch thread):
//! libtorch's batched product computes each slice as the unbatched product (`addmm`, `mm`)
//! does, except for a slice of fewer than [`BATCHED_MIN`] multiply-adds (it sums those with its
//! own loop, in another order: [`Stacked`] gives each network its own product there) and for an
//! output one column wide (the unbatched product is then a matrix-vector product). Element-wise
//! operations treat a tensor in blocks of 16 floats (two AVX2 vectors) and its last `n mod 16`
//! elements with scalar code that rounds `sigmoid` differently, and MKL's small products depend
//! on their operands' alignment: every layer's width must be a multiple of 16 for a network's
//! slice to start on a block, as it does alone. A single network (`k = 1`) always equals its own
//! pass. SAC stacks its twin critics whole, heads included, and its numbers are those of the
//! stacked pass. (PPO's and DQN's networks run in the engine, `agent::engine`, instead; SAC's
//! are to follow.)

use tch::Tensor;

use super::Activation;
use crate::agent::optim::{Adam, FlatParams};

/// The multiply-adds per slice from which libtorch's batched products compute each slice as the
/// unbatched product does (below, `bmm`/`baddbmm` loop in their own order).
const BATCHED_MIN: i64 = 400;

/// One stacked layer: weights `[k, out, in]`, biases `[k, out]`, and (for trained networks) the
/// views of the gradient buffer that receive their gradients.
struct Layer {
    weight: Tensor,
    bias: Tensor,
    grads: Option<(Tensor, Tensor)>,
}

/// Where stacked networks' parameters live.
#[derive(Clone, Copy)]
pub(crate) enum Params<'a> {
    /// An optimiser's buffers: the passes write the parameters' gradients into its views.
    Trained(&'a Adam),
    /// A buffer of parameters that are not trained (targets).
    Fixed(&'a FlatParams),
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
    /// `networks` networks over `params`: `names` holds, for each layer, the weights' names then
    /// the biases' (one name per network each), which must be equally spaced in the buffer's
    /// order (`None` when they are not).
    pub(crate) fn new<N: AsRef<[String]>>(
        params: Params<'_>,
        networks: usize,
        names: &[N],
        activation: Activation,
        activate_last: bool,
    ) -> Option<Self> {
        let layer = |wb: &[N]| {
            let (w, b) = (wb[0].as_ref(), wb[1].as_ref());
            Some(match params {
                Params::Trained(opt) => {
                    let ((weight, dw), (bias, db)) = (opt.stacked(w)?, opt.stacked(b)?);
                    Layer { weight, bias, grads: Some((dw, db)) }
                }
                Params::Fixed(flat) => {
                    let (weight, bias) = (flat.stacked(flat.flat(), w)?, flat.stacked(flat.flat(), b)?);
                    Layer { weight, bias, grads: None }
                }
            })
        };
        let layers = names.chunks_exact(2).map(layer).collect::<Option<Vec<_>>>()?;
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
                let mut next = self.affine(layer, &h, scale);
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
                let batched = Self::batched(layer, input);
                if weights && let Some((dw, db)) = &layer.grads {
                    let _ = product(&grad.transpose(1, 2), input, batched, Some(dw));
                    let _ = grad.sum_intlist_out(db, [1i64].as_slice(), false, None::<tch::Kind>);
                }
                if i > 0 {
                    grad = self.activation.backward(&product(&grad, &layer.weight, batched, None), input);
                } else if let Some(from) = input_columns {
                    let width = layer.weight.size()[2] - from;
                    let columns = layer.weight.narrow(2, from, width);
                    return Some(product(&grad, &columns, batched, None).sum_dim_intlist(
                        [0i64].as_slice(),
                        false,
                        None::<tch::Kind>,
                    ));
                }
            }
            None
        })
    }

    /// Whether a layer's products on these input rows are large enough to batch ([`BATCHED_MIN`]).
    fn batched(layer: &Layer, input: &Tensor) -> bool {
        let (rows, size) = (input.size()[1], layer.weight.size());
        rows * size[1] * size[2] >= BATCHED_MIN
    }

    /// `scale · (bias + h × weightᵀ)` for every network, `[k, rows, out]`: the bits of the
    /// unbatched `addmm` times `scale` (a power of two: `baddbmm` folds it in exactly).
    fn affine(&self, layer: &Layer, h: &Tensor, scale: f64) -> Tensor {
        if Self::batched(layer, h) {
            return layer.bias.unsqueeze(1).baddbmm(h, &layer.weight.transpose(1, 2), scale, scale);
        }
        let slices: Vec<Tensor> =
            (0..self.networks).map(|k| h.get(k).linear(&layer.weight.get(k), Some(layer.bias.get(k)))).collect();
        let out = Tensor::stack(&slices, 0);
        if scale == 1.0 { out } else { out * scale }
    }
}

/// `a × b` for every network (`[k, m, n]`), into `out` when given: one batched product, or one
/// product a network where the slices are too small to batch exactly.
fn product(a: &Tensor, b: &Tensor, batched: bool, out: Option<&Tensor>) -> Tensor {
    match (batched, out) {
        (true, Some(out)) => a.bmm_out(out, b),
        (true, None) => a.bmm(b),
        (false, Some(out)) => {
            for k in 0..a.size()[0] {
                let _ = a.get(k).mm_out(&out.get(k), &b.get(k));
            }
            out.shallow_clone()
        }
        (false, None) => Tensor::stack(&(0..a.size()[0]).map(|k| a.get(k).mm(&b.get(k))).collect::<Vec<_>>(), 0),
    }
}
