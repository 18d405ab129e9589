//! A network as a table of layers over one flat parameter vector, and its passes.
//!
//! A [`Net`] is a list of [`Op`]s applied in order: a linear layer reads its weight `[out, in]`
//! and bias `[out]` at offsets of the parameter vector (an optimiser's flat buffer, where every
//! named parameter of the agent lives), an activation works in place. The forward pass keeps what
//! the backward pass needs (each linear layer's input, each activation's output); the backward
//! pass writes every parameter's gradient at the same offsets of a gradient vector, so that the
//! optimiser's gradient buffer receives them directly. What later layers kinds add (adapters,
//! LoRA, lateral connections, per-task heads) are new rows of the table.

use super::conv::{Conv, Flatten, Pool};
use super::front::{Front, FrontPass};
use super::gemm::{self, Start, Strided};
use super::graph::Graph;
use super::math;
use values::{Input, Value, linear};
use crate::agent::nn::Activation;

/// One row of a network's table.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `y = x Wᵀ + b`, with `W` at `weight` (`[outputs, inputs]` row-major) and `b` at `bias`.
    Linear { weight: usize, bias: usize, inputs: usize, outputs: usize },
    /// An activation, in place.
    Act(Activation),
    /// A convolution of `(row, column, channel)` images, with `W` at `weight`
    /// (`[out channels, in channels, kernel, kernel]`) and `b` at `bias`.
    Conv { weight: usize, bias: usize, conv: Conv },
    /// Images flattened into PyTorch's `(channel, row, column)` order.
    Flatten(Flatten),
    /// Every value divided by the number (images of bytes scaled to `[0, 1]`).
    Divide(f32),
    /// Max pooling of `(row, column, channel)` images.
    MaxPool(Pool),
    /// A residual connection: the value before op `from` (the input when 0) added, element by
    /// element, to the value before this op (of the same width).
    Add { from: usize },
}

/// A network: its table, its input and output widths.
#[derive(Clone, Debug)]
pub struct Net {
    ops: Vec<Op>,
    inputs: usize,
    outputs: usize,
    /// A network with added layers, whose layers do not form one chain (`ops` is then empty).
    graph: Option<Graph>,
    /// The positions (the value before op `i`) that a residual [`Op::Add`] reads later: kept
    /// through the forward pass.
    residual: Vec<bool>,
    /// A dictionary observation's parts, read (each through its own encoder) before the table or
    /// graph, which reads their concatenation; or an image's encoder before a graph.
    front: Option<Box<Front>>,
}

/// What a forward pass keeps: the output of each op (emptied where no backward step reads it) and
/// the number of rows.
pub struct Pass {
    pub(super) rows: usize,
    pub(super) values: Vec<Vec<f32>>,
    /// A graph's LoRA nodes' merged weights (empty for a chain).
    pub(super) merged: Vec<Option<Vec<f32>>>,
    /// The front's pass, with a front.
    pub(super) front: Option<Box<FrontPass>>,
}

impl Pass {
    /// The network's output, `[rows, outputs]` row-major.
    pub fn output(&self) -> &[f32] {
        self.values.last().map_or(&[], |v| v.as_slice())
    }

    /// The network's output, taken.
    pub fn into_output(mut self) -> Vec<f32> {
        self.values.pop().unwrap_or_default()
    }
}

impl Net {
    /// A network of `ops` reading `inputs` values a row; `None` when the table does not chain
    /// (a linear layer whose input width is not the width before it) or reads past `params_len`
    /// parameters.
    pub fn new(ops: Vec<Op>, inputs: usize, params_len: usize) -> Option<Self> {
        let mut width = inputs;
        let mut widths = Vec::with_capacity(ops.len());
        let mut residual = vec![false; ops.len() + 1];
        // Pooling and residual sums read values laid out by rows: an encoder's, before any
        // linear layer (whose outputs may be laid out by columns).
        let mut linear = false;
        for op in &ops {
            widths.push(width);
            if matches!(op, Op::MaxPool(_) | Op::Add { .. }) && linear {
                return None;
            }
            linear |= matches!(op, Op::Linear { .. });
            let (weights, bias, outputs, reads) = match *op {
                Op::Linear { weight, bias, inputs, outputs } => ((weight, inputs.checked_mul(outputs)?), bias, outputs, inputs),
                Op::Conv { weight, bias, conv } => {
                    conv.out_size()?;
                    let weights = conv.patch().checked_mul(conv.out_channels)?;
                    ((weight, weights), bias, conv.outputs(), conv.inputs())
                }
                Op::Flatten(f) if f.width() == width => continue,
                Op::Flatten(_) => return None,
                Op::Act(_) | Op::Divide(_) => continue,
                Op::MaxPool(pool) if pool.inputs() == width && pool.out_size().is_some() => {
                    width = pool.outputs();
                    continue;
                }
                Op::MaxPool(_) => return None,
                Op::Add { from } if widths.get(from) == Some(&width) && from + 1 < widths.len() => {
                    residual[from] = true;
                    continue;
                }
                Op::Add { .. } => return None,
            };
            let bias_len = match *op {
                Op::Conv { conv, .. } => conv.out_channels,
                _ => outputs,
            };
            let fits =
                weights.0.checked_add(weights.1)? <= params_len && bias.checked_add(bias_len)? <= params_len;
            if reads != width || !fits {
                return None;
            }
            width = outputs;
        }
        Some(Net { ops, inputs, outputs: width, graph: None, residual, front: None })
    }

    /// A network that reads the parts of `front` first, then the table `ops` over their
    /// concatenation; `None` as [`Net::new`].
    pub fn with_front(front: Front, ops: Vec<Op>, params_len: usize) -> Option<Self> {
        let net = Net::new(ops, front.outputs(), params_len)?;
        Some(Net { inputs: front.inputs(), front: Some(Box::new(front)), ..net })
    }

    /// A network of added layers over an MLP, run as a graph; with a `front` (an encoder, or a
    /// dictionary's parts), the graph reads what the front gives. `None` when the front gives
    /// another width than the graph reads.
    pub fn from_graph(graph: Graph, front: Option<Front>) -> Option<Self> {
        if front.as_ref().is_some_and(|f| f.outputs() != graph.inputs()) {
            return None;
        }
        Some(Net {
            ops: Vec::new(),
            inputs: front.as_ref().map_or(graph.inputs(), Front::inputs),
            outputs: graph.outputs(),
            graph: Some(graph),
            residual: Vec::new(),
            front: front.map(Box::new),
        })
    }

    /// Values a row in.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The table.
    #[cfg(test)]
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Values a row out.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Values a row of features (the head's input; the input width where there is no hidden layer).
    pub fn features_width(&self) -> usize {
        if let Some(g) = &self.graph {
            return g.features_width();
        }
        match self.head().map(|h| &self.ops[h]) {
            Some(Op::Linear { inputs, .. }) => *inputs,
            _ => self.inputs,
        }
    }

    /// The index of the last linear layer (the head), whose input is the network's features.
    fn head(&self) -> Option<usize> {
        self.ops.iter().rposition(|op| matches!(op, Op::Linear { .. }))
    }

    /// The forward pass over `rows` rows of `x` with parameters `params`, keeping what
    /// [`Net::backward`] needs.
    ///
    /// # Panics
    /// When `x` does not hold `rows` rows of [`Net::inputs`] values or `params` is shorter than the
    /// table was built for (the callers check both: shapes of user input are checked at the
    /// environment's boundary).
    pub fn forward(&self, params: &[f32], x: &[f32], rows: usize) -> Pass {
        self.run(params, x, rows, true)
    }

    /// The output alone (acting, targets), `[rows, outputs]`.
    pub fn infer(&self, params: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
        self.run(params, x, rows, false).into_output()
    }

    /// The forward pass, keeping every value the backward pass reads (`keep`) or the output
    /// alone. Values between layers stay in whichever layout their layer computed them (see
    /// [`linear`]), and the ones kept are laid out by rows at the end.
    fn run(&self, params: &[f32], x: &[f32], rows: usize, keep: bool) -> Pass {
        assert_eq!(x.len(), rows * self.inputs, "{rows} rows of {} inputs", self.inputs);
        let front = self.front.as_ref().map(|f| Box::new(f.forward(params, x, rows, keep)));
        let x = front.as_ref().map_or(x, |f| f.joined.as_slice());
        if let Some(g) = &self.graph {
            let pass = g.forward(params, x, rows);
            return Pass { front, ..pass };
        }
        let mut values: Vec<Value> = Vec::with_capacity(self.ops.len());
        let mut packed = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let value = match *op {
                Op::Linear { weight, bias, inputs, outputs } => {
                    let input = match values.last() {
                        Some(v) => v.as_input(),
                        None => Input { data: x, by_rows: true },
                    };
                    let w = &params[weight..weight + inputs * outputs];
                    linear(input, rows, w, &params[bias..bias + outputs], inputs, outputs, &mut packed)
                }
                Op::Conv { weight, bias, conv } => {
                    let input = values.last().map_or(x, |v| v.data.as_slice());
                    let w = &params[weight..weight + conv.patch() * conv.out_channels];
                    let data = conv.forward(input, rows, w, &params[bias..bias + conv.out_channels], &mut packed);
                    Value { data, by_rows: true }
                }
                Op::Flatten(flatten) => {
                    let input = values.last().map_or(x, |v| v.data.as_slice());
                    Value { data: flatten.forward(input), by_rows: true }
                }
                Op::Divide(d) => {
                    let input = values.last().map_or(x, |v| v.data.as_slice());
                    Value { data: input.iter().map(|v| v / d).collect(), by_rows: true }
                }
                Op::MaxPool(pool) => {
                    let input = values.last().map_or(x, |v| v.data.as_slice());
                    Value { data: pool.forward(input, rows), by_rows: true }
                }
                Op::Add { from } => {
                    let input = values.last().map_or(x, |v| v.data.as_slice());
                    let other = if from == 0 { x } else { values[from - 1].data.as_slice() };
                    Value { data: input.iter().zip(other).map(|(a, b)| a + b).collect(), by_rows: true }
                }
                Op::Act(activation) => {
                    // In place: the linear output before it is read by no backward step (a
                    // residual connection's start is copied: a later op adds it).
                    let mut v = match values.last_mut() {
                        Some(v) if !self.residual[i] => std::mem::take(v),
                        Some(v) => Value { data: v.data.clone(), by_rows: v.by_rows },
                        None => Value { data: x.to_vec(), by_rows: true },
                    };
                    match activation {
                        Activation::Tanh => math::tanh_(&mut v.data),
                        Activation::Relu => math::relu_(&mut v.data),
                    }
                    v
                }
            };
            if !keep
                && !self.residual[i]
                && let Some(v) = values.last_mut()
            {
                *v = Value::default();
            }
            values.push(value);
        }
        let values = values.into_iter().map(|v| v.into_rows(rows, &mut packed)).collect();
        Pass { rows, values, merged: Vec::new(), front }
    }

    /// The input of the head (the trunk's output, the "features" gSDE and SAC's heads read) in
    /// `pass` over `x`.
    pub fn features<'a>(&self, pass: &'a Pass, x: &'a [f32]) -> &'a [f32] {
        if let Some(g) = &self.graph {
            return g.features(pass);
        }
        let x = pass.front.as_ref().map_or(x, |f| f.joined.as_slice());
        match self.head() {
            Some(0) | None => x,
            Some(h) => pass.values[h - 1].as_slice(),
        }
    }

    /// The backward pass: writes into `grads` (at the parameters' offsets) the gradient of a loss
    /// whose gradient with respect to the output of `pass` (a forward pass over `x`) is
    /// `grad_out`, plus `features_grad` with respect to the features where they feed other
    /// layers too (a second head). Every parameter of the table is written (not accumulated).
    ///
    /// # Panics
    /// When `pass` is not a pass of this network over `x`, or a gradient has the wrong length.
    pub fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        pass: &Pass,
        grad_out: &[f32],
        features_grad: Option<&[f32]>,
        grads: &mut [f32],
    ) {
        self.walk(params, x, pass, grad_out, features_grad, Some(grads), false);
    }

    /// The gradient with respect to the input `x` (`[rows, inputs]`) of a loss whose gradient with
    /// respect to the output of `pass` is `grad_out`; the parameters' gradients are written into
    /// `grads` when given, else not computed.
    pub fn input_gradient(
        &self,
        params: &[f32],
        x: &[f32],
        pass: &Pass,
        grad_out: &[f32],
        grads: Option<&mut [f32]>,
    ) -> Vec<f32> {
        self.walk(params, x, pass, grad_out, None, grads, true).expect("asked for the input's gradient")
    }

    /// The backward walk over the table, last op first.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        params: &[f32],
        x: &[f32],
        pass: &Pass,
        grad_out: &[f32],
        features_grad: Option<&[f32]>,
        mut grads: Option<&mut [f32]>,
        want_input: bool,
    ) -> Option<Vec<f32>> {
        // With a front (a dictionary observation's parts, or an encoder before added layers), the
        // table reads what it gives, and its encoders take the gradient of that.
        let front = self.front.as_deref().zip(pass.front.as_deref());
        if let Some(g) = &self.graph {
            assert!(x.len() == pass.rows * self.inputs, "a pass of this network on x");
            let want_graph_input = want_input || front.is_some();
            let dx = g.backward(params, pass, grad_out, features_grad, grads.as_deref_mut(), want_graph_input);
            return match (front, dx) {
                (Some((front, front_pass)), Some(dx)) => front.backward(params, front_pass, &dx, grads, want_input),
                (_, dx) => dx,
            };
        }
        let rows = pass.rows;
        assert!(pass.values.len() == self.ops.len() && x.len() == rows * self.inputs, "a pass of this network on x");
        let (x, want_table_input) = match front {
            Some((_, front_pass)) => (front_pass.joined.as_slice(), true),
            None => (x, want_input),
        };
        assert_eq!(grad_out.len(), rows * self.outputs, "a gradient for each output");
        let head = self.head();
        let mut grad = grad_out.to_vec();
        // The gradients that residual connections send to the values they read, by position.
        let mut residual: Vec<Option<Vec<f32>>> = vec![None; self.ops.len()];
        for (i, op) in self.ops.iter().enumerate().rev() {
            match *op {
                Op::Linear { weight, bias, inputs, outputs } => {
                    if let Some(grads) = grads.as_deref_mut() {
                        let input = if i == 0 { x } else { pass.values[i - 1].as_slice() };
                        // dW = gᵀ x: element (o, j) is one chain over the rows.
                        let dw = &mut grads[weight..weight + outputs * inputs];
                        gemm::gemm(outputs, inputs, rows, Strided::transposed(&grad, outputs), input, dw, Start::Zero);
                        column_sums(&grad, rows, outputs, &mut grads[bias..bias + outputs]);
                    }
                    if i == 0 && !want_table_input {
                        return None;
                    }
                    // dx = g W, starting from the features' other gradient at the head.
                    let extra = features_grad.filter(|_| Some(i) == head);
                    let (mut into, start) = match extra {
                        Some(extra) => {
                            assert_eq!(extra.len(), rows * inputs, "a gradient for each feature");
                            (extra.to_vec(), Start::Existing)
                        }
                        None => (vec![0.0; rows * inputs], Start::Zero),
                    };
                    let w = &params[weight..weight + outputs * inputs];
                    gemm::gemm(rows, inputs, outputs, Strided::rows(&grad, outputs), w, &mut into, start);
                    grad = into;
                }
                Op::Conv { weight, bias, conv } => {
                    let input = if i == 0 { x } else { pass.values[i - 1].as_slice() };
                    let w = &params[weight..weight + conv.patch() * conv.out_channels];
                    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; conv.out_channels]);
                    let want_grads = grads.is_some().then_some((dw.as_mut_slice(), db.as_mut_slice()));
                    // Below a first convolution, only a division of the input, which needs no gradient.
                    let below = i > 1 || i == 1 && !matches!(self.ops[0], Op::Divide(_));
                    let dx = conv.backward(input, rows, w, &grad, want_grads, below || want_table_input);
                    if let Some(grads) = grads.as_deref_mut() {
                        grads[weight..weight + dw.len()].copy_from_slice(&dw);
                        grads[bias..bias + db.len()].copy_from_slice(&db);
                    }
                    match dx {
                        Some(dx) => grad = dx,
                        None => return None,
                    }
                }
                Op::Flatten(flatten) => grad = flatten.backward(&grad),
                Op::Divide(_) if i == 0 && !want_table_input => return None,
                Op::Divide(d) => grad.iter_mut().for_each(|g| *g /= d),
                Op::Act(activation) => {
                    let y = &pass.values[i];
                    match activation {
                        Activation::Tanh => math::tanh_backward_(&mut grad, y),
                        Activation::Relu => math::relu_backward_(&mut grad, y),
                    }
                }
                Op::MaxPool(pool) => {
                    let input = if i == 0 { x } else { pass.values[i - 1].as_slice() };
                    grad = pool.backward(input, rows, &grad);
                }
                Op::Add { from } => match &mut residual[from] {
                    Some(sum) => sum.iter_mut().zip(&grad).for_each(|(s, g)| *s += g),
                    None => residual[from] = Some(grad.clone()),
                },
            }
            // The gradient of the value before op i: its readers' in the chain, then a residual's.
            if let Some(r) = residual[i].take() {
                grad.iter_mut().zip(&r).for_each(|(g, r)| *g += r);
            }
        }
        match front {
            Some((front, front_pass)) => front.backward(params, front_pass, &grad, grads, want_input),
            None => want_input.then_some(grad),
        }
    }
}

/// `out[j] = Σ_r g[r][j]` over `rows` rows of `cols`, each column one chain over the rows in order.
pub(super) fn column_sums(g: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const ONE: [f32; 1] = [1.0];
    // A product with a column of ones: fma(1, g, acc) is exactly acc + g.
    let ones = Strided { data: &ONE, row_stride: 0, col_stride: 0 };
    gemm::gemm(1, cols, rows, ones, g, out, Start::Zero);
}

mod values;

#[cfg(test)]
mod tests;
