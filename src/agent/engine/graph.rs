//! Networks whose layers do not form one chain: what added layers make of an MLP (residual
//! adapters, LoRA factors on a layer, a frozen column feeding lateral connections, input and
//! output layers). A [`Graph`] is a list of [`Node`]s; value 0 is the input and node `i` writes
//! value `i + 1`, reading only values before it.
//!
//! The arithmetic is the engine's (see [`super`]): a linear node's element `(r, o)` is one chain
//! of fused multiply-adds over the inputs in order, starting at the bias (or at another value,
//! for a lateral connection added into a layer's output, or at zero); a LoRA layer's weight is
//! `W + s·B·A`, each element the chain starting at `W[o][j]` over the rank in order, with `s·B`
//! rounded once. So a layer of an MLP computes the same bits here as in a chain network, and an
//! addition whose last factor is zero (an adapter's up-projection, LoRA's `B`, a lateral weight)
//! adds exactly zero: an augmented network starts as the network it augments, bit for bit.
//!
//! The backward pass walks the nodes last first, accumulating each value's gradient from every
//! node that reads it, in node order (element-wise additions: correctly rounded, in a fixed
//! order). Every parameter of the graph gets its gradient written; a node marked `frozen` (a
//! progressive network's first column, never trained) gets zeros, and its input's gradient still
//! flows through it.

use super::gemm::{self, Start, Strided};
use super::math;
use super::net::{Pass, column_sums};
use crate::agent::nn::Activation;

/// One node of a [`Graph`].
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `y = start + x Wᵀ (+ b)` with `x` the value `from`, `W` at `weight` (`[outputs, inputs]`
    /// row-major, plus `s·B·A` with `lora`), `b` at `bias`, and `start` a value of `outputs`
    /// columns (none: the bias, or zero).
    Linear {
        from: usize,
        weight: usize,
        bias: Option<usize>,
        inputs: usize,
        outputs: usize,
        start: Option<usize>,
        lora: Option<Lora>,
        frozen: bool,
    },
    /// An activation of the value `from`.
    Act { from: usize, activation: Activation },
    /// The sum of two values of the same width (a residual connection).
    Add { a: usize, b: usize },
}

/// Low-rank factors on a linear node: `A` `[rank, inputs]` at `a`, `B` `[outputs, rank]` at `b`,
/// and the factor `s = alpha / rank`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lora {
    pub a: usize,
    pub b: usize,
    pub rank: usize,
    pub scale: f32,
}

/// A network as a graph of nodes.
#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Each value's width (value 0 is the input).
    widths: Vec<usize>,
    /// The head: the linear node whose input is the network's features.
    head: usize,
}

impl Graph {
    /// A graph of `nodes` over `inputs` values a row whose features are the input of node `head`;
    /// `None` when a node reads a value not yet written, widths disagree, `head` is not a linear
    /// node, or a parameter lies past `params_len`.
    pub fn new(nodes: Vec<Node>, inputs: usize, head: usize, params_len: usize) -> Option<Self> {
        let mut widths = vec![inputs];
        let fits = |at: usize, len: usize| at.checked_add(len).is_some_and(|end| end <= params_len);
        for node in &nodes {
            let known = widths.len();
            let width = match *node {
                Node::Linear { from, weight, bias, inputs, outputs, start, lora, .. } => {
                    let ok = from < known
                        && widths[from] == inputs
                        && fits(weight, inputs.checked_mul(outputs)?)
                        && bias.is_none_or(|b| fits(b, outputs))
                        && start.is_none_or(|s| s < known && widths[s] == outputs && bias.is_none())
                        && lora.is_none_or(|l| {
                            l.rank > 0
                                && l.rank.checked_mul(inputs).is_some_and(|n| fits(l.a, n))
                                && l.rank.checked_mul(outputs).is_some_and(|n| fits(l.b, n))
                        });
                    ok.then_some(outputs)?
                }
                Node::Act { from, .. } => *widths.get(from)?,
                Node::Add { a, b } => {
                    let (wa, wb) = (*widths.get(a)?, *widths.get(b)?);
                    (wa == wb).then_some(wa)?
                }
            };
            widths.push(width);
        }
        matches!(nodes.get(head), Some(Node::Linear { .. })).then_some(Graph { nodes, widths, head })
    }

    /// Values a row in.
    pub fn inputs(&self) -> usize {
        self.widths[0]
    }

    /// Values a row out.
    pub fn outputs(&self) -> usize {
        *self.widths.last().unwrap_or(&0)
    }

    /// The value the head reads.
    fn features_value(&self) -> usize {
        match self.nodes[self.head] {
            Node::Linear { from, .. } => from,
            _ => unreachable!("the head is a linear node (checked in `new`)"),
        }
    }

    /// Values a row of features.
    pub fn features_width(&self) -> usize {
        self.widths[self.features_value()]
    }

    /// The forward pass over `rows` rows of `x`.
    pub fn forward(&self, params: &[f32], x: &[f32], rows: usize) -> Pass {
        assert_eq!(x.len(), rows * self.inputs(), "{rows} rows of {} inputs", self.inputs());
        let mut values: Vec<Vec<f32>> = Vec::with_capacity(self.nodes.len() + 1);
        values.push(x.to_vec());
        let mut merged = Vec::with_capacity(self.nodes.len());
        let mut packed = Vec::new();
        for node in &self.nodes {
            let (value, m) = match *node {
                Node::Linear { from, weight, bias, inputs, outputs, start, lora, .. } => {
                    let base = &params[weight..weight + inputs * outputs];
                    let m = lora.map(|l| merge(params, base, l, inputs, outputs));
                    let w = m.as_deref().unwrap_or(base);
                    let mut out = match (start, bias) {
                        (Some(s), None) => values[s].clone(),
                        (Some(_), Some(_)) => unreachable!("a start or a bias (checked in `new`)"),
                        (None, Some(b)) => params[b..b + outputs].repeat(rows),
                        (None, None) => vec![0.0; rows * outputs],
                    };
                    // x Wᵀ with Wᵀ packed; each chain continues from the start written above.
                    gemm::transpose(w, outputs, inputs, &mut packed);
                    let a = Strided::rows(&values[from], inputs);
                    gemm::gemm(rows, outputs, inputs, a, &packed, &mut out, Start::Existing);
                    (out, m)
                }
                Node::Act { from, activation } => {
                    let mut v = values[from].clone();
                    match activation {
                        Activation::Tanh => math::tanh_(&mut v),
                        Activation::Relu => math::relu_(&mut v),
                    }
                    (v, None)
                }
                Node::Add { a, b } => (values[a].iter().zip(&values[b]).map(|(x, y)| x + y).collect(), None),
            };
            values.push(value);
            merged.push(m);
        }
        Pass { rows, values, merged, front: None }
    }

    /// The network's features (the head's input) in `pass`.
    pub fn features<'a>(&self, pass: &'a Pass) -> &'a [f32] {
        &pass.values[self.features_value()]
    }

    /// The backward pass: writes every parameter's gradient into `grads` (when given) for a loss
    /// whose gradient with respect to the output is `grad_out` (plus `features_grad` on the
    /// features), and returns the input's gradient when `want_input`.
    pub fn backward(
        &self,
        params: &[f32],
        pass: &Pass,
        grad_out: &[f32],
        features_grad: Option<&[f32]>,
        mut grads: Option<&mut [f32]>,
        want_input: bool,
    ) -> Option<Vec<f32>> {
        let rows = pass.rows;
        assert_eq!(grad_out.len(), rows * self.outputs(), "a gradient for each output");
        let mut g: Vec<Option<Vec<f32>>> = vec![None; self.widths.len()];
        g[self.widths.len() - 1] = Some(grad_out.to_vec());
        if let Some(extra) = features_grad {
            assert_eq!(extra.len(), rows * self.features_width(), "a gradient for each feature");
            accumulate(&mut g[self.features_value()], extra);
        }
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let out = g[i + 1].take();
            match *node {
                Node::Linear { from, weight, bias, inputs, outputs, start, lora, frozen } => {
                    let n = inputs * outputs;
                    let base = &params[weight..weight + n];
                    let w = pass.merged[i].as_deref().unwrap_or(base);
                    let grads = grads.as_deref_mut();
                    let Some(go) = out else {
                        if let Some(grads) = grads {
                            zero_linear(grads, weight, n, bias, outputs, lora, inputs);
                        }
                        continue;
                    };
                    match grads {
                        Some(grads) if frozen => zero_linear(grads, weight, n, bias, outputs, lora, inputs),
                        None => {}
                        Some(grads) => {
                        // dW = gᵀ x (each element one chain over the rows); the bias's, column sums.
                        let mut dw = vec![0.0; n];
                        gemm::gemm(outputs, inputs, rows, Strided::transposed(&go, outputs), &pass.values[from], &mut dw, Start::Zero);
                        if let Some(b) = bias {
                            column_sums(&go, rows, outputs, &mut grads[b..b + outputs]);
                        }
                        if let Some(l) = lora {
                            lora_gradients(params, grads, &dw, l, inputs, outputs);
                        }
                        grads[weight..weight + n].copy_from_slice(&dw);
                        }
                    }
                    if let Some(s) = start {
                        accumulate(&mut g[s], &go);
                    }
                    if from > 0 || want_input {
                        // dx = g W, continuing from what other readers of x gave.
                        let into = g[from].get_or_insert_with(|| vec![0.0; rows * inputs]);
                        gemm::gemm(rows, inputs, outputs, Strided::rows(&go, outputs), w, into, Start::Existing);
                    }
                }
                Node::Act { from, activation } => {
                    let Some(mut go) = out else { continue };
                    let y = &pass.values[i + 1];
                    match activation {
                        Activation::Tanh => math::tanh_backward_(&mut go, y),
                        Activation::Relu => math::relu_backward_(&mut go, y),
                    }
                    accumulate(&mut g[from], &go);
                }
                Node::Add { a, b } => {
                    let Some(go) = out else { continue };
                    accumulate(&mut g[a], &go);
                    accumulate(&mut g[b], &go);
                }
            }
        }
        if want_input { Some(g[0].take().unwrap_or_else(|| vec![0.0; rows * self.inputs()])) } else { None }
    }
}

/// `W + s·B·A`: each element the chain starting at `W[o][j]`, then `fma((s·B)[o][k], A[k][j], ·)`
/// over the rank in order.
fn merge(params: &[f32], base: &[f32], l: Lora, inputs: usize, outputs: usize) -> Vec<f32> {
    let mut w = base.to_vec();
    let mut sb = params[l.b..l.b + outputs * l.rank].to_vec();
    math::scale_(&mut sb, l.scale);
    gemm::gemm(outputs, inputs, l.rank, Strided::rows(&sb, l.rank), &params[l.a..l.a + l.rank * inputs], &mut w, Start::Existing);
    w
}

/// LoRA's factors' gradients from the merged weight's `dw`: `dB = s·(dW Aᵀ)`, `dA = s·(Bᵀ dW)`.
fn lora_gradients(params: &[f32], grads: &mut [f32], dw: &[f32], l: Lora, inputs: usize, outputs: usize) {
    let (a, b) = (&params[l.a..l.a + l.rank * inputs], &params[l.b..l.b + outputs * l.rank]);
    let mut a_t = Vec::new();
    gemm::transpose(a, l.rank, inputs, &mut a_t);
    let db = &mut grads[l.b..l.b + outputs * l.rank];
    gemm::gemm(outputs, l.rank, inputs, Strided::rows(dw, inputs), &a_t, db, Start::Zero);
    math::scale_(db, l.scale);
    let da = &mut grads[l.a..l.a + l.rank * inputs];
    gemm::gemm(l.rank, inputs, outputs, Strided::transposed(b, l.rank), dw, da, Start::Zero);
    math::scale_(da, l.scale);
}

/// Zero gradients for a linear node that nothing downstream reads, or that is frozen.
fn zero_linear(grads: &mut [f32], weight: usize, n: usize, bias: Option<usize>, outputs: usize, lora: Option<Lora>, inputs: usize) {
    grads[weight..weight + n].fill(0.0);
    if let Some(b) = bias {
        grads[b..b + outputs].fill(0.0);
    }
    if let Some(l) = lora {
        grads[l.a..l.a + l.rank * inputs].fill(0.0);
        grads[l.b..l.b + outputs * l.rank].fill(0.0);
    }
}

/// Adds `g` into a value's gradient (or sets it, for the first reader met).
fn accumulate(into: &mut Option<Vec<f32>>, g: &[f32]) {
    match into {
        Some(acc) => acc.iter_mut().zip(g).for_each(|(a, b)| *a += b),
        None => *into = Some(g.to_vec()),
    }
}

