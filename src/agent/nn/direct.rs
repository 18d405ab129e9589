//! Networks run without libtorch's operators, with the numbers of their own libtorch passes.
//!
//! A small network's pass is mostly overhead in libtorch: each operation costs 2 to 10 µs of
//! dispatch, shape checks and allocation before any arithmetic (a 256 × 64 × 64 `linear` takes
//! 42 µs through libtorch and 27 µs as the BLAS call it makes; an 8-row one 10 µs and 2 µs), and
//! PPO on CartPole-v1 runs about 40 000 such passes. Here a pass makes the BLAS calls libtorch
//! makes (`blas.rs`: MKL's `sgemm_` with the arguments libtorch's `addmm` chooses, MKL's vector
//! `tanh` for acting), the activations and their derivatives through reproductions of libtorch's
//! kernels, and the bias gradients through a reproduction of its cascade sum (`kernels.rs`),
//! over buffers aligned as libtorch aligns its own. Each network is its own pass, so the bits are
//! those of [`Mlp`](super::Mlp)'s passes at every shape: `direct_passes_equal_the_networks_own`
//! compares training outputs, acting outputs and features, and every gradient, bit for bit, with
//! one libtorch thread (the reproducibility contract). Where a piece does not apply (another CPU,
//! a platform without MKL, an operation libtorch would split among threads), that piece runs
//! libtorch's own operation on the same memory.

use tch::{Kind, Tensor};

use super::blas::{self, Buf, Mat, addmm};
use super::{Activation, kernels};
use crate::agent::optim::Adam;

/// One linear layer: views of its parameters and, for a trained network, of their gradients.
struct Layer {
    inputs: usize,
    outputs: usize,
    weight: Tensor,
    bias: Tensor,
    grads: Option<(Tensor, Tensor)>,
}

/// The floats of a parameter or gradient view (contiguous; owned by the optimiser or the target
/// network's variable store, and only ever written in place).
fn view_floats(t: &Tensor) -> *mut f32 {
    debug_assert!(t.is_contiguous() && t.kind() == Kind::Float);
    t.data_ptr() as *mut f32
}

/// A network laid out as [`Mlp`](super::Mlp) lays it out (`{name}.trunk.{i}`, `{name}.head`),
/// over an optimiser's parameters and gradients, or over a target network's parameters.
pub(crate) struct DirectMlp {
    layers: Vec<Layer>,
    activation: Activation,
}

/// What a training pass keeps for the backward pass: each hidden layer's output, and the
/// network's output.
pub(crate) struct DirectPass {
    rows: usize,
    hidden: Vec<Buf>,
    output: Buf,
}

impl DirectPass {
    /// The network's output, `[rows, out]` row-major.
    pub(crate) fn output(&self) -> &[f32] {
        self.output.as_slice()
    }
}

impl DirectMlp {
    /// The network `name` (its trunk's depth `depth`) over `opt`'s parameters and gradients.
    pub(crate) fn new(opt: &Adam, name: &str, depth: usize, activation: Activation) -> Option<Self> {
        Self::over(|n| opt.stacked(&[n.to_string()]).map(|(p, g)| (p, Some(g))), name, depth, activation)
    }

    /// The network `name` over parameters that are not trained (a target network's, in `vs`):
    /// forward passes only.
    pub(crate) fn fixed(vs: &tch::nn::VarStore, name: &str, depth: usize, activation: Activation) -> Option<Self> {
        let vars = vs.variables();
        Self::over(|n| vars.get(n).map(|t| (t.shallow_clone(), None)), name, depth, activation)
    }

    /// The network over `param(name)`: each parameter's tensor and its gradient's view.
    fn over(
        param: impl Fn(&str) -> Option<(Tensor, Option<Tensor>)>,
        name: &str,
        depth: usize,
        activation: Activation,
    ) -> Option<Self> {
        let names = (0..depth).map(|i| format!("{name}.trunk.{i}")).chain([format!("{name}.head")]);
        let layers = names
            .map(|layer| {
                let ((weight, dw), (bias, db)) = (param(&format!("{layer}.weight"))?, param(&format!("{layer}.bias"))?);
                let size = weight.size();
                let (outputs, inputs) = (size[size.len() - 2] as usize, size[size.len() - 1] as usize);
                let grads = dw.zip(db);
                let floats = |t: &Tensor, n: usize| t.is_contiguous() && t.kind() == Kind::Float && t.numel() == n;
                let usable = floats(&weight, outputs * inputs)
                    && floats(&bias, outputs)
                    && grads.as_ref().is_none_or(|(dw, db)| floats(dw, outputs * inputs) && floats(db, outputs));
                usable.then_some(Layer { inputs, outputs, weight, bias, grads })
            })
            .collect::<Option<Vec<_>>>()?;
        // Each layer reads the previous one's output.
        let chained = layers.windows(2).all(|w| w[0].outputs == w[1].inputs);
        chained.then_some(DirectMlp { layers, activation })
    }

    /// `bias + x Wᵀ` for `rows` rows, as libtorch's `linear`.
    fn affine(layer: &Layer, x: &[f32], rows: usize) -> Buf {
        let mut out = Buf::zeros(rows * layer.outputs);
        // SAFETY: the bias view holds `outputs` floats.
        let bias = unsafe { std::slice::from_raw_parts(view_floats(&layer.bias), layer.outputs) };
        for row in out.as_mut_slice().chunks_exact_mut(layer.outputs.max(1)) {
            row.copy_from_slice(bias);
        }
        let w = Mat::new(view_floats(&layer.weight), layer.outputs, layer.inputs);
        // SAFETY: `x` holds `rows × inputs` floats, the weight view `outputs × inputs`, `out`
        // `rows × outputs`; `out` is new.
        unsafe { addmm(out.as_mut_slice().as_mut_ptr(), Mat::new(x.as_ptr(), rows, layer.inputs), w.t(), true) };
        out
    }

    /// The training pass for `rows` rows of `x` (as [`Mlp::forward_cached`](super::Mlp::forward_cached)
    /// computes it: `tanh` in its sigmoid form).
    pub(crate) fn forward(&self, x: &[f32], rows: usize) -> DirectPass {
        assert_eq!(x.len(), rows * self.layers[0].inputs, "rows of the network's input width");
        let mut hidden: Vec<Buf> = Vec::with_capacity(self.layers.len() - 1);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = if i == 0 { x } else { hidden[i - 1].as_slice() };
            let mut out = Self::affine(layer, input, rows);
            if i == last {
                return DirectPass { rows, hidden, output: out };
            }
            match self.activation {
                Activation::Tanh => {
                    if !kernels::tanh_sigmoid_form(out.as_mut_slice(), true) {
                        let mut t = Tensor::from_slice(out.as_slice());
                        self.activation.apply_(&mut t);
                        t.copy_data(out.as_mut_slice(), t.numel());
                    }
                }
                Activation::Relu => kernels::relu(out.as_mut_slice()),
            }
            hidden.push(out);
        }
        unreachable!("a network has a head")
    }

    /// The acting pass (as [`Mlp::features`](super::Mlp::features) then the head compute it:
    /// libtorch's own `tanh`): the output and the trunk's features.
    pub(crate) fn infer(&self, x: &[f32], rows: usize) -> (Buf, Option<Buf>) {
        assert_eq!(x.len(), rows * self.layers[0].inputs, "rows of the network's input width");
        let mut features: Option<Buf> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = features.as_ref().map_or(x, |f| f.as_slice());
            let mut out = Self::affine(layer, input, rows);
            if i + 1 == self.layers.len() {
                return (out, features);
            }
            out = match self.activation {
                Activation::Tanh => {
                    let mut y = Buf::zeros(out.as_slice().len());
                    if !blas::mkl::tanh(out.as_slice(), y.as_mut_slice()) {
                        let t = Tensor::from_slice(out.as_slice()).tanh();
                        t.copy_data(y.as_mut_slice(), t.numel());
                    }
                    y
                }
                Activation::Relu => {
                    kernels::relu(out.as_mut_slice());
                    out
                }
            };
            features = Some(out);
        }
        unreachable!("a network has a head")
    }

    /// Writes every parameter's gradient into the optimiser's views, for the loss's gradient
    /// `grad_out` (`[rows, out]`) with respect to the output of `pass` (on the rows `x`), as
    /// [`Mlp::backward`](super::Mlp::backward) computes them.
    pub(crate) fn backward(&self, x: &[f32], pass: &DirectPass, grad_out: &[f32]) {
        let rows = pass.rows;
        let outputs = pass.hidden.iter().chain([&pass.output]);
        let fits = pass.hidden.len() + 1 == self.layers.len()
            && outputs.zip(&self.layers).all(|(b, l)| b.as_slice().len() == rows * l.outputs);
        assert!(fits && x.len() == rows * self.layers[0].inputs, "a pass of this network on `x`");
        assert_eq!(grad_out.len(), pass.output.as_slice().len(), "a gradient for each output");
        let mut grad = Buf::from_slice(grad_out);
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 { x } else { pass.hidden[i - 1].as_slice() };
            let g = Mat::new(grad.as_slice().as_ptr(), rows, layer.outputs);
            let (dw, db) = layer.grads.as_ref().expect("a trained network");
            // SAFETY: the gradient views hold `outputs × inputs` and `outputs` floats (checked in
            // `over`), apart from every buffer read here.
            let db = unsafe {
                addmm(view_floats(dw), g.t(), Mat::new(input.as_ptr(), rows, layer.inputs), false);
                std::slice::from_raw_parts_mut(view_floats(db), layer.outputs)
            };
            if kernels::column_sums(grad.as_slice(), rows, layer.outputs, db).is_none() {
                let g = Tensor::from_slice(grad.as_slice()).view([rows as i64, layer.outputs as i64]);
                let sums = g.sum_dim_intlist([0i64].as_slice(), false, None::<Kind>);
                sums.copy_data(db, layer.outputs);
            }
            if i == 0 {
                break;
            }
            let mut into = Buf::zeros(rows * layer.inputs);
            let w = Mat::new(view_floats(&layer.weight), layer.outputs, layer.inputs);
            // SAFETY: `into` is new and holds `rows × inputs` floats.
            unsafe { addmm(into.as_mut_slice().as_mut_ptr(), g, w, false) };
            let mut next = Buf::zeros(into.as_slice().len());
            let y = pass.hidden[i - 1].as_slice();
            match self.activation {
                Activation::Tanh => {
                    if !kernels::tanh_backward_into(into.as_slice(), y, next.as_mut_slice()) {
                        let t = Tensor::tanh_backward(&Tensor::from_slice(into.as_slice()), &Tensor::from_slice(y));
                        t.copy_data(next.as_mut_slice(), t.numel());
                    }
                }
                Activation::Relu => kernels::relu_backward_into(into.as_slice(), y, next.as_mut_slice()),
            }
            grad = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::nn::{Mlp, MlpConfig, kernels, tensor_floats, with_seed};
    use crate::agent::{sorted_variables, to_vec};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// A direct pass computes what the network's own libtorch passes compute, bit for bit: the
    /// training pass's output, the acting pass's output and features, and every parameter's
    /// gradient, for shapes on both sides of every threshold above (one libtorch thread: the
    /// reproducibility contract).
    #[test]
    fn direct_passes_equal_the_networks_own() {
        tch::set_num_threads(1);
        for (hidden, activation) in [
            (vec![64, 64], Activation::Tanh),
            (vec![16, 8, 12], Activation::Tanh),
            (vec![5, 7], Activation::Tanh),
            (vec![256, 256], Activation::Relu),
            (vec![16, 32], Activation::Relu),
            (vec![], Activation::Tanh),
        ] {
            for (inputs, outputs) in [(4, 2), (3, 1), (6, 3)] {
                let config = MlpConfig { hidden: hidden.clone(), activation, ortho_init: true };
                let vs = tch::nn::VarStore::new(tch::Device::Cpu);
                let net = with_seed(1, || Mlp::new(&(vs.root() / "net"), &config, inputs, outputs, 0.5));
                let mut opt = Adam::new(sorted_variables(&vs), 1e-3);
                let direct = DirectMlp::new(&opt, "net", hidden.len(), activation).expect("the network's layers");
                for rows in [1usize, 2, 3, 7, 8, 9, 33, 256] {
                    let what = format!("{hidden:?} {activation:?}, {inputs} -> {outputs}, {rows} rows");
                    let x = Tensor::randn([rows as i64, inputs as i64], tch::kind::FLOAT_CPU);
                    // The reference: `Mlp`'s passes on libtorch's own operations.
                    let (own, acts) = kernels::with_libtorch_only(|| net.forward_cached(&x));
                    let pass = direct.forward(tensor_floats(&x), rows);
                    assert_eq!(bits(pass.output()), bits(&to_vec(&own)), "training pass: {what}");

                    let (out, features) = direct.infer(tensor_floats(&x), rows);
                    let own_features = tch::no_grad(|| net.features(&x));
                    let own_out = tch::no_grad(|| net.head_forward(&own_features));
                    assert_eq!(bits(out.as_slice()), bits(&to_vec(&own_out)), "acting pass: {what}");
                    let features = features.as_ref().map_or(tensor_floats(&x), |f| f.as_slice());
                    assert_eq!(bits(features), bits(&to_vec(&own_features)), "acting features: {what}");

                    let g = Tensor::randn([rows as i64, outputs as i64], tch::kind::FLOAT_CPU);
                    let mut sink = opt.gradient_views();
                    kernels::with_libtorch_only(|| net.backward(&acts, &g, &mut sink));
                    drop(sink);
                    let reference = opt.gradients().copy();
                    opt.zero_grad();
                    direct.backward(tensor_floats(&x), &pass, tensor_floats(&g));
                    assert!(opt.gradients().equal(&reference), "gradients: {what}");
                }
            }
        }
    }
}
